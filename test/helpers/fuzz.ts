// The one setting of every property-based test: a fixed seed, so a run is
// the same run everywhere (CI included) and a failure replays, and a bounded
// number of runs per property, so the suite stays fast.
import type { Parameters } from 'fast-check';

const SEED = 0x25_25;

export function fuzzRuns<T>(numRuns: number): Parameters<T> {
  return { seed: SEED, numRuns };
}

/** Whatever the thrown value, the name of what crossed the boundary: a WireError's code, else what it is. */
export function thrownCode(error: unknown): string {
  if (error instanceof Error && 'code' in error && 'status' in error) return String((error as { code: unknown }).code);
  return `not a WireError: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`;
}
