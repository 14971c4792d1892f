// How CLI commands print results: JSON by default (for scripts), or an
// aligned table for people (`--output table`).

export type OutputFormat = 'json' | 'table';

export function parseOutputFormat(value: string): OutputFormat {
  if (value !== 'json' && value !== 'table') throw new Error(`--output must be json or table, not "${value}"`);
  return value;
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

export function printResult(format: OutputFormat, value: unknown, table: () => string): void {
  process.stdout.write(`${format === 'json' ? JSON.stringify(value, null, 2) : table()}\n`);
}
