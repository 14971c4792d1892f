// What every benchmark scenario returns, and how results are printed.

export interface Target {
  /** what is measured, e.g. "lookup p99 (ms)" */
  metric: string;
  value: number;
  /** human-readable target, e.g. "< 1" */
  target: string;
  met: boolean;
}

export interface ScenarioResult {
  scenario: string;
  description: string;
  /** every figure measured, with its unit in the key */
  figures: Record<string, number | string>;
  targets: Target[];
  notes: string[];
}

export function below(metric: string, value: number, limit: number): Target {
  return { metric, value: round(value), target: `< ${limit}`, met: value < limit };
}

export function atMost(metric: string, value: number, ceiling: number): Target {
  return { metric, value: round(value), target: `<= ${ceiling}`, met: value <= ceiling };
}

export function atLeast(metric: string, value: number, floor: number): Target {
  return { metric, value: round(value), target: `>= ${floor}`, met: value >= floor };
}

export function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Progress line on stderr, so long runs show where they are. */
export function progress(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/** p-th percentile of a list of numbers (nearest rank). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}
