// Association store at 100,000 associations (SQLite, the embedded default),
// each SQLite engine on the same workload in the same run, alternating
// (A B, B A, A B, …), every phase in a process of its own (bench/lib/store-engine.ts):
// durable creates, updates and deletes (rate and latency), the hot lookup by
// subject (the EKS Auth and webhook read, per request) that finds one and
// that finds none, the start of a store on a 100,000-row file, the full
// paginated list and resident memory; then the server's start on that file.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ENGINES, type Engine, type StoreEnginePhase, type StoreEngineSpec } from './lib/store-engine.js';
import { median, rssMiB } from './lib/processes.js';
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

function runPhase(spec: StoreEngineSpec): Promise<StoreEnginePhase> {
  const child = spawn(process.execPath, ['--import', 'tsx', resolve('bench/lib/store-engine.ts')], {
    env: { ...process.env, STORE_ENGINE: JSON.stringify(spec) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolvePhase, reject) => {
    child.once('exit', (code) => (code === 0 ? resolvePhase(JSON.parse(out) as StoreEnginePhase) : reject(new Error(`${spec.engine} ${spec.phase} phase exited with ${code}`))));
  });
}

/** Start of `pod-identity server` on the data directory, and its resident memory once started. */
async function serverStart(dataDir: string): Promise<{ ms: number; rssMiB: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-store-cfg-'));
  const config = join(dir, 'c.yaml');
  writeFileSync(config, `dataDir: ${dataDir}\nlisten: 127.0.0.1:0\nwebhookListen: 127.0.0.1:0\nmetricsListen: 127.0.0.1:0\nlogLevel: info\nclusters: [{ name: bench, jwksFile: /dev/null }]\n`);
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

/** One engine's figures from one round's write and read phases. */
function roundFigures(written: StoreEnginePhase, read: StoreEnginePhase, dbBytes: number): Record<string, number> {
  const { createMs = [], updateMs = [], deleteMs = [], hitMs = [], missMs = [] } = { ...written, ...read };
  const start = read.startMs!;
  const cpu = { ...written.cpuMicros, ...read.cpuMicros };
  return {
    'create rate (per s)': round(createMs.length / written.writeSeconds!.create, 0),
    'create p50 (ms)': round(percentile(createMs, 50), 3),
    'create p99 (ms)': round(percentile(createMs, 99), 3),
    'update rate (per s)': round(updateMs.length / written.writeSeconds!.update, 0),
    'update p50 (ms)': round(percentile(updateMs, 50), 3),
    'update p99 (ms)': round(percentile(updateMs, 99), 3),
    'delete rate (per s)': round(deleteMs.length / written.writeSeconds!.delete, 0),
    'delete p50 (ms)': round(percentile(deleteMs, 50), 3),
    'delete p99 (ms)': round(percentile(deleteMs, 99), 3),
    'create CPU (µs)': round(cpu.create!, 1),
    'update CPU (µs)': round(cpu.update!, 1),
    'delete CPU (µs)': round(cpu.delete!, 1),
    'lookup p50 (ms)': round(percentile(hitMs, 50), 4),
    'lookup p99 (ms)': round(percentile(hitMs, 99), 4),
    'lookups per s (one at a time)': round(hitMs.length / (sum(hitMs) / 1000), 0),
    'lookup CPU (µs)': round(cpu.hit!, 2),
    'lookup, none found, p50 (ms)': round(percentile(missMs, 50), 4),
    'lookup, none found, p99 (ms)': round(percentile(missMs, 99), 4),
    'lookup, none found, CPU (µs)': round(cpu.miss!, 2),
    'engine load (ms)': round(start.load, 1),
    'store open, 100,000 rows (ms)': round(start.open, 2),
    'first lookup (ms)': round(start.firstLookup, 2),
    'full list, pages of 100 (s)': round(read.listSeconds!, 2),
    'resident before the engine (MiB)': round(read.rss.before, 1),
    'resident after open (MiB)': round(read.rss.opened!, 1),
    'resident after the lookups (MiB)': round(read.rss.lookups!, 1),
    'resident after the list (MiB)': round(read.rss.listed!, 1),
    'resident peak, writes (MiB)': round(written.rss.peak, 1),
    'database size (MB)': round(dbBytes / 1e6, 1),
  };
}

export async function run(): Promise<ScenarioResult> {
  const engines = Object.keys(ENGINES) as Engine[];
  const dataDirs: string[] = [];
  const rounds: Record<Engine, Record<string, number>[]> = Object.fromEntries(engines.map((e) => [e, []])) as unknown as Record<Engine, Record<string, number>[]>;
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? engines : [...engines].reverse();
      for (const engine of order) {
        const dataDir = mkdtempSync(join(tmpdir(), 'bench-store-'));
        dataDirs.push(dataDir);
        const path = join(dataDir, 'associations.db');
        const spec = { engine, path, count: COUNT, updates: UPDATES, deletes: DELETES, lookups: LOOKUPS };
        progress(`store: round ${r + 1}/${ROUNDS}, ${engine}: ${COUNT + DELETES} creates, ${UPDATES} updates, ${DELETES} deletes (load ${loadavg()[0]!.toFixed(2)})`);
        const written = await runPhase({ ...spec, phase: 'write' });
        progress(`store: round ${r + 1}/${ROUNDS}, ${engine}: start, ${LOOKUPS} lookups found + ${LOOKUPS} none found, full list (load ${loadavg()[0]!.toFixed(2)})`);
        const read = await runPhase({ ...spec, phase: 'read' });
        const figures = { ...roundFigures(written, read, fileSize(path) + fileSize(`${path}-wal`)), 'load average (1 min)': round(loadavg()[0]!, 2) };
        rounds[engine].push(figures);
        progress(`store: round ${r + 1}/${ROUNDS}, ${engine}: ${JSON.stringify(figures)}`);
      }
    }

    progress('store: server start time on the full database (3 runs)');
    const starts = [await serverStart(dataDirs[0]!), await serverStart(dataDirs[0]!), await serverStart(dataDirs[0]!)];
    const startMs = Math.max(...starts.map((s) => s.ms));

    const figures: Record<string, number | string> = { associations: COUNT, rounds: ROUNDS };
    for (const engine of engines) {
      for (const name of Object.keys(rounds[engine][0]!)) figures[`${engine}: ${name}, median`] = median(rounds[engine].map((f) => f[name]!));
    }
    figures['server start, worst of 3 (ms)'] = round(startMs, 0);
    figures['server resident after start (MiB)'] = round(median(starts.map((s) => s.rssMiB)), 1);
    const lookupP99 = Math.max(...engines.map((e) => figures[`${e}: lookup p99 (ms), median`] as number));
    return {
      scenario: 'store',
      description: `SQLite association store with ${COUNT.toLocaleString('en')} associations: ${engines.join(' and ')}, ${ROUNDS} alternating rounds`,
      figures,
      targets: [below('lookup p99 (ms)', lookupP99, 1), below('server start (ms)', startMs, 2000), atLeast('associations listed', COUNT, COUNT)],
      notes: [
        'Each create, update and delete is its own transaction with synchronous=FULL (durable before the answer), which bounds the write rate by fsync; creates carry a request token, as every SDK sends one.',
        'Every phase runs in a process of its own; the figures are the median of the rounds.',
        'per round: ' + JSON.stringify(rounds),
      ],
    };
  } finally {
    for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run().then((result) => console.log(JSON.stringify(result, null, 2)));
}
