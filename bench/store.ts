// Association store at 100,000 associations (SQLite on node:sqlite, the
// embedded default), every phase in a process of its own
// (bench/lib/store-phase.ts), repeated in rounds because the machine is
// shared: durable creates, updates and deletes (rate, latency, CPU), the hot
// lookup by subject (the EKS Auth and webhook read, per request) that finds
// one and that finds none, the start of a store on a 100,000-row file, the
// full paginated list and resident memory; then the server's start on that file.
// Knobs: BENCH_STORE_COUNT (100000), BENCH_STORE_UPDATES and BENCH_STORE_DELETES
// (10000 each), BENCH_STORE_ROUNDS (3); BENCH_STORE_KEEP=1 keeps the files
// (for bench/lib/lookup-cost.ts).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { StorePhase, StorePhaseSpec } from './lib/store-phase.js';
import { median, rssMiB } from './lib/processes.js';
import { writeUnusedJwks } from './lib/tokens.js';
import { atLeast, below, percentile, progress, round, type ScenarioResult } from './lib/report.js';

const COUNT = Number(process.env.BENCH_STORE_COUNT ?? 100_000);
const UPDATES = Number(process.env.BENCH_STORE_UPDATES ?? 10_000);
const DELETES = Number(process.env.BENCH_STORE_DELETES ?? 10_000);
const LOOKUPS = 100_000;
const ROUNDS = Number(process.env.BENCH_STORE_ROUNDS ?? 3);

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function runPhase(spec: StorePhaseSpec): Promise<StorePhase> {
  const child = spawn(process.execPath, ['--import', 'tsx', resolve('bench/lib/store-phase.ts')], {
    env: { ...process.env, STORE_PHASE: JSON.stringify(spec) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolvePhase, reject) => {
    child.once('exit', (code) => (code === 0 ? resolvePhase(JSON.parse(out) as StorePhase) : reject(new Error(`store ${spec.phase} phase exited with ${code}`))));
  });
}

/** Start of `pod-identity server` on the data directory, and its resident memory once started. */
async function serverStart(dataDir: string): Promise<{ ms: number; rssMiB: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-store-cfg-'));
  const config = join(dir, 'c.yaml');
  writeFileSync(config, `dataDir: ${dataDir}\nlisten: 127.0.0.1:0\nwebhookListen: 127.0.0.1:0\nmetricsListen: 127.0.0.1:0\nlogLevel: info\nclusters: [{ name: bench, jwksFile: ${writeUnusedJwks(join(dir, 'jwks.json'))} }]\n`);
  const started = performance.now();
  const child = spawn(process.execPath, [resolve('dist/cli/main.js'), 'server', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  const result = await new Promise<{ ms: number; rssMiB: number }>((resolveStart, reject) => {
    let log = '';
    const timer = setTimeout(() => reject(new Error(`server did not start in 30 s:\n${log}`)), 30_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('server started')) {
        clearTimeout(timer);
        resolveStart({ ms: performance.now() - started, rssMiB: rssMiB(child.pid!) });
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}:\n${log}`)));
  });
  child.removeAllListeners('exit');
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
  return result;
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

/** The figures of one round's write and read phases. */
function roundFigures(written: StorePhase, read: StorePhase, dbBytes: number): Record<string, number> {
  const { createMs = [], updateMs = [], deleteMs = [] } = written;
  const { hitMs = [], missMs = [] } = read;
  const start = read.startMs!;
  const cpu = { ...written.cpuMicros, ...read.cpuMicros };
  return {
    'create rate (per s)': round(createMs.length / written.writeSeconds!.create, 0),
    'create p50 (ms)': round(percentile(createMs, 50), 3),
    'create p99 (ms)': round(percentile(createMs, 99), 3),
    'create CPU (µs)': round(cpu.create!, 1),
    'update rate (per s)': round(updateMs.length / written.writeSeconds!.update, 0),
    'update p50 (ms)': round(percentile(updateMs, 50), 3),
    'update p99 (ms)': round(percentile(updateMs, 99), 3),
    'update CPU (µs)': round(cpu.update!, 1),
    'delete rate (per s)': round(deleteMs.length / written.writeSeconds!.delete, 0),
    'delete p50 (ms)': round(percentile(deleteMs, 50), 3),
    'delete p99 (ms)': round(percentile(deleteMs, 99), 3),
    'delete CPU (µs)': round(cpu.delete!, 1),
    'lookup p50 (ms)': round(percentile(hitMs, 50), 4),
    'lookup p99 (ms)': round(percentile(hitMs, 99), 4),
    'lookups per s (one at a time)': round(hitMs.length / (sum(hitMs) / 1000), 0),
    'lookup CPU (µs)': round(cpu.hit!, 2),
    'lookup, none found, p50 (ms)': round(percentile(missMs, 50), 4),
    'lookup, none found, p99 (ms)': round(percentile(missMs, 99), 4),
    'lookup, none found, CPU (µs)': round(cpu.miss!, 2),
    'store module load (ms)': round(start.load, 1),
    'store open, 100,000 rows (ms)': round(start.open, 2),
    'first lookup (ms)': round(start.firstLookup, 2),
    'full list, pages of 100 (s)': round(read.listSeconds!, 2),
    'resident before the store (MiB)': round(read.rss.before, 1),
    'resident after open (MiB)': round(read.rss.opened!, 1),
    'resident after the lookups (MiB)': round(read.rss.lookups!, 1),
    'resident after the list (MiB)': round(read.rss.listed!, 1),
    'resident peak, writes (MiB)': round(written.rss.peak, 1),
    'database size (MB)': round(dbBytes / 1e6, 1),
    'load average (1 min)': round(loadavg()[0]!, 2),
  };
}

export async function run(): Promise<ScenarioResult> {
  const dataDirs: string[] = [];
  const rounds: Record<string, number>[] = [];
  try {
    for (let r = 1; r <= ROUNDS; r++) {
      const dataDir = mkdtempSync(join(tmpdir(), 'bench-store-'));
      dataDirs.push(dataDir);
      const path = join(dataDir, 'associations.db');
      const spec = { path, count: COUNT, updates: UPDATES, deletes: DELETES, lookups: LOOKUPS };
      progress(`store: round ${r}/${ROUNDS}: ${COUNT + DELETES} creates, ${UPDATES} updates, ${DELETES} deletes (load ${loadavg()[0]!.toFixed(2)})`);
      const written = await runPhase({ ...spec, phase: 'write' });
      progress(`store: round ${r}/${ROUNDS}: start, ${LOOKUPS} lookups found + ${LOOKUPS} none found, full list (load ${loadavg()[0]!.toFixed(2)})`);
      const read = await runPhase({ ...spec, phase: 'read' });
      rounds.push(roundFigures(written, read, fileSize(path) + fileSize(`${path}-wal`)));
      progress(`store: round ${r}/${ROUNDS}: ${JSON.stringify(rounds.at(-1))}`);
    }

    progress('store: server start time on the full database (3 runs)');
    const starts = [await serverStart(dataDirs[0]!), await serverStart(dataDirs[0]!), await serverStart(dataDirs[0]!)];
    const startMs = Math.max(...starts.map((s) => s.ms));

    const figures: Record<string, number | string> = { associations: COUNT, rounds: ROUNDS };
    for (const name of Object.keys(rounds[0]!)) figures[name] = median(rounds.map((f) => f[name]!));
    figures['server start, worst of 3 (ms)'] = round(startMs, 0);
    figures['server resident after start (MiB)'] = round(median(starts.map((s) => s.rssMiB)), 1);
    const each = (name: string) => `${name}: ${rounds.map((f) => f[name]).join(', ')}`;
    return {
      scenario: 'store',
      description: `SQLite association store (node:sqlite) with ${COUNT.toLocaleString('en')} associations, ${ROUNDS} rounds`,
      figures,
      targets: [below('lookup p99 (ms)', figures['lookup p99 (ms)'] as number, 1), below('server start (ms)', startMs, 2000), atLeast('associations listed', COUNT, COUNT)],
      notes: [
        'Each create, update and delete is its own transaction with synchronous=FULL (durable before the answer), which bounds the write rate by fsync; creates carry a request token, as every SDK sends one.',
        'Every phase runs in a process of its own; a figure is the median of the rounds (a read phase that lists fewer than all associations fails the run).',
        `By round: ${['create p99 (ms)', 'create CPU (µs)', 'lookup p99 (ms)', 'lookup CPU (µs)', 'resident after the lookups (MiB)', 'load average (1 min)'].map(each).join('; ')}.`,
      ],
    };
  } finally {
    if (process.env.BENCH_STORE_KEEP === '1') progress(`store: kept ${dataDirs.join(', ')}`);
    else for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run().then((result) => console.log(JSON.stringify(result, null, 2)));
}
