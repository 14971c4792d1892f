// ISO 8601 timestamps, formatted once per millisecond: each EKS Auth decision
// is stamped twice (its audit record and the log line carrying it), and
// Date#toISOString is among the costlier steps of a request under load.
let lastMs = Number.NaN;
let lastText = '';

/** `new Date(ms).toISOString()`, remembered for the last millisecond asked. */
export function isoTime(ms: number): string {
  if (ms !== lastMs) {
    lastText = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastText;
}
