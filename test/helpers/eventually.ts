// Polls a check until it answers, bounded by a deadline: the one way tests wait
// for what another process does (a server's readiness, a log line, an informer).
import assert from 'node:assert/strict';

/** Answers the awaited value, or undefined or false while it is not there yet; may throw (retried). */
export type Check<T> = () => Promise<T | undefined | false> | T | undefined | false;

export interface EventuallyOptions {
  /** how long to keep trying (default 10 s) */
  timeoutMs?: number;
  /** pause between tries (default 100 ms) */
  intervalMs?: number;
  /** appended to a failure, e.g. the end of a server log */
  context?: () => string;
}

/** Thrown by a check to stop waiting at once: the state cannot become good. */
export class GiveUp extends Error {
  override name = 'GiveUp';
}

/**
 * Runs `check` until it answers a value that is neither undefined nor false,
 * and returns that value. An error thrown by `check` is retried (a GiveUp
 * ends the wait); the last one is named in the failure, an AssertionError that
 * names `what` and the timeout and ends with `context()`.
 */
export async function eventually<T>(what: string, check: Check<T>, options: EventuallyOptions = {}): Promise<T> {
  const { timeoutMs = 10_000, intervalMs = 100, context } = options;
  const deadline = Date.now() + timeoutMs;
  const more = () => (context ? `\n${context()}` : '');
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      if (error instanceof GiveUp) assert.fail(`${what}: ${error.message}${more()}`);
      lastError = error;
    }
    if (Date.now() > deadline) {
      const because = lastError === undefined ? '' : ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})`;
      assert.fail(`${what}: not within ${timeoutMs} ms${because}${more()}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
