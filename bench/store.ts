// Association store at 100,000 associations (SQLite, the embedded default):
// create rate through the service, lookup p99 by subject (the EKS Auth and
// webhook hot path), full paginated list, server start time, database size.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AssociationService } from '../src/associations/service.js';
import { SqliteAssociationStore } from '../src/associations/stores/sqlite.js';
import { writeUnusedJwks } from './lib/tokens.js';
import { atLeast, below, percentile, progress, round, type ScenarioResult } from './lib/report.js';

const COUNT = Number(process.env.BENCH_STORE_COUNT ?? 100_000);
const LOOKUPS = 100_000;

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

async function serverStartMs(dataDir: string): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-store-cfg-'));
  const config = join(dir, 'c.yaml');
  writeFileSync(config, `dataDir: ${dataDir}\nlisten: 127.0.0.1:0\nwebhookListen: 127.0.0.1:0\nmetricsListen: 127.0.0.1:0\nlogLevel: info\nclusters: [{ name: bench, jwksFile: ${writeUnusedJwks(join(dir, 'jwks.json'))} }]\n`);
  const started = performance.now();
  const child = spawn(process.execPath, [resolve('dist/cli/main.js'), 'server', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = await new Promise<number>((resolveStart, reject) => {
    let log = '';
    const timer = setTimeout(() => reject(new Error(`server did not start in 30 s:\n${log}`)), 30_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('server started')) {
        clearTimeout(timer);
        resolveStart(performance.now() - started);
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}:\n${log}`)));
  });
  child.removeAllListeners('exit');
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
  return ms;
}

export async function run(): Promise<ScenarioResult> {
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-store-'));
  const dbPath = join(dataDir, 'associations.db');
  const store = new SqliteAssociationStore(dbPath);
  const service = new AssociationService({ store, region: 'us-east-1', accountId: '000000000000', clusters: () => ['bench'] });
  try {
    progress(`store: creating ${COUNT} associations (each its own durable transaction)`);
    const subjects: { namespace: string; serviceAccount: string }[] = [];
    const createStart = performance.now();
    for (let i = 0; i < COUNT; i++) {
      const subject = { namespace: `ns-${i % 500}`, serviceAccount: `sa-${i}` };
      subjects.push(subject);
      await service.create('bench', { ...subject, roleArn: `arn:aws:iam::111122223333:role/role-${i % 1000}`, tags: { team: `t${i % 50}` } }, { actor: { kind: 'access-key', accessKeyId: 'bench' } });
      if ((i + 1) % 20_000 === 0) progress(`store: ${i + 1}/${COUNT} created`);
    }
    const createSeconds = (performance.now() - createStart) / 1000;

    progress(`store: ${LOOKUPS} lookups by subject`);
    const lookupMs: number[] = [];
    for (let i = 0; i < LOOKUPS; i++) {
      const subject = subjects[(i * 7919) % subjects.length]!;
      const t = performance.now();
      const found = await store.findBySubject({ clusterName: 'bench', ...subject });
      lookupMs.push(performance.now() - t);
      if (!found) throw new Error(`lookup missed ${subject.namespace}/${subject.serviceAccount}`);
    }

    progress('store: full paginated list (pages of 100)');
    const listStart = performance.now();
    let listed = 0;
    let nextToken: string | undefined;
    do {
      const page = await service.list('bench', { maxResults: 100, nextToken });
      listed += page.associations.length;
      nextToken = page.nextToken;
    } while (nextToken);
    const listSeconds = (performance.now() - listStart) / 1000;
    if (listed !== COUNT) throw new Error(`listed ${listed} of ${COUNT}`);
    await store.close();

    const dbBytes = fileSize(dbPath) + fileSize(`${dbPath}-wal`);
    progress('store: server start time on the full database (3 runs)');
    const starts = [await serverStartMs(dataDir), await serverStartMs(dataDir), await serverStartMs(dataDir)];
    const startMs = Math.max(...starts);

    return {
      scenario: 'store',
      description: `SQLite association store with ${COUNT.toLocaleString('en')} associations`,
      figures: {
        'associations': COUNT,
        'create rate (per s)': round(COUNT / createSeconds, 0),
        'lookup p50 (ms)': round(percentile(lookupMs, 50), 4),
        'lookup p99 (ms)': round(percentile(lookupMs, 99), 4),
        'full list, pages of 100 (s)': round(listSeconds, 2),
        'server start, worst of 3 (ms)': round(startMs, 0),
        'database size (MB)': round(dbBytes / 1e6, 1),
      },
      targets: [below('lookup p99 (ms)', percentile(lookupMs, 99), 1), below('server start (ms)', startMs, 2000), atLeast('associations listed', listed, COUNT)],
      notes: ['Each create is its own transaction with synchronous=FULL (durable before the answer), which bounds the create rate by fsync.'],
    };
  } finally {
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run().then((result) => console.log(JSON.stringify(result, null, 2)));
}
