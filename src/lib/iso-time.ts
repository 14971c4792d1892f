// ISO 8601 timestamps for every EKS Auth decision (its audit record and the
// log line carrying it). Date#toISOString formats the whole date each time
// (~7,000 instructions a call, measured with callgrind), one of the costlier
// steps of a request; here only the seconds and milliseconds are, and the
// rest is remembered for the current minute.

/** The last minute formatted: its start (epoch ms) and its "YYYY-MM-DDTHH:MM:" text. */
let minuteStart = Number.NaN;
let minuteText = '';

/** Times past this (the end of year 9999) take more than four digits for the year. */
const LAST_FOUR_DIGIT_YEAR_MS = 253_402_300_799_999;

/** `new Date(ms).toISOString()`. */
export function isoTime(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0 || ms > LAST_FOUR_DIGIT_YEAR_MS) return new Date(ms).toISOString();
  let offset = ms - minuteStart;
  if (!(offset >= 0 && offset < 60_000)) {
    minuteStart = ms - (ms % 60_000);
    minuteText = new Date(minuteStart).toISOString().slice(0, 17);
    offset = ms - minuteStart;
  }
  const seconds = Math.floor(offset / 1000);
  const millis = offset % 1000;
  return `${minuteText}${seconds < 10 ? '0' : ''}${seconds}.${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`;
}
