// How CLI commands print results: JSON by default (for scripts), or an
// aligned table for people (`--output table`).
import { InvalidArgumentError, Option } from 'commander';

export type OutputFormat = 'json' | 'table';

/** `-o, --output` taking one of `formats`, the first being the default. */
export function outputOption<F extends string>(formats: readonly [F, ...F[]]): Option {
  const choices = formats.join(' or ');
  return new Option('-o, --output <format>', choices).default(formats[0]).argParser((value): F => {
    if (!(formats as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected ${choices}`);
    return value as F;
  });
}

function cell(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** Renders rows as a table with the given columns (in order). */
export function renderTable(rows: Record<string, unknown>[], columns: string[]): string {
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join('\n');
}

/** How long ago, as kubectl says it: 45s, 12m, 5h, 3d. */
export function age(since: Date | undefined, now = Date.now()): string {
  if (!since) return '';
  const seconds = Math.max(0, Math.floor((now - since.getTime()) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172_800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

export function printResult(format: OutputFormat, value: unknown, table: () => string): void {
  process.stdout.write(`${format === 'json' ? JSON.stringify(value, null, 2) : table()}\n`);
}
