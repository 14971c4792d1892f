// One phase of the store scenario (bench/store.ts) in a process of its own, so
// that its memory and start-up are the store's alone and no phase inherits
// another's heap or page cache of SQLite:
//   write: on a new file, COUNT + DELETES creates through the association
//          service (each its own durable transaction, with a request token as
//          every SDK sends), UPDATES updates, then DELETES deletes, each timed;
//   read:  on the file a write phase left (COUNT associations), load the
//          store's module (and with it node:sqlite), open the store, LOOKUPS lookups by subject that find one and
//          LOOKUPS that find none (the webhook's usual case), then the full
//          paginated list; each timed, and the resident memory after each.
// Run by bench/store.ts as `node --import tsx bench/lib/store-phase.ts` with
// STORE_PHASE (JSON, StorePhaseSpec) in the environment; prints its figures
// (StorePhase) as JSON on stdout.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** Imported when measured: loading the module is part of the store's start. */
export const loadStore = async () => (await import('../../src/associations/stores/sqlite.js')).SqliteAssociationStore;

export interface StorePhaseSpec {
  phase: 'write' | 'read';
  path: string;
  count: number;
  updates: number;
  deletes: number;
  lookups: number;
}

/** Latencies in ms, in the order they were measured. */
export interface StorePhase {
  createMs?: number[];
  updateMs?: number[];
  deleteMs?: number[];
  writeSeconds?: { create: number; update: number; delete: number };
  /** CPU time (user + system) per operation in µs: what contention with other work does not inflate as much as wall time */
  cpuMicros?: Partial<Record<'create' | 'update' | 'delete' | 'hit' | 'miss', number>>;
  /** store module loaded, store opened (pragmas, migrations, statements), first lookup answered */
  startMs?: { load: number; open: number; firstLookup: number };
  hitMs?: number[];
  missMs?: number[];
  listSeconds?: number;
  /** MiB: before the store's module was loaded (read) or the store opened (write), after open, after the lookups, after the list, after the writes, and the peak */
  rss: { before: number; opened?: number; lookups?: number; listed?: number; written?: number; peak: number };
}

/** the changes' actor in the audit trail (none is written here) */
const BENCH = { actor: { kind: 'access-key', accessKeyId: 'bench' } } as const;
const CLUSTER = 'bench';

/** The i-th association's subject, the same in every phase. */
export const subjectOf = (i: number) => ({ namespace: `ns-${i % 500}`, serviceAccount: `sa-${i}` });

/** CPU µs per operation since `since` (a process.cpuUsage() reading). */
function cpuPer(since: NodeJS.CpuUsage, operations: number): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / operations;
}

function procMiB(field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

async function timed<T>(latencies: number[], work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await work();
  latencies.push(performance.now() - started);
  return result;
}

async function writePhase(spec: StorePhaseSpec): Promise<StorePhase> {
  const { AssociationService } = await import('../../src/associations/service.js');
  const Store = await loadStore();
  const rssBefore = procMiB('VmRSS');
  const store = new Store(spec.path);
  const service = new AssociationService({ store, region: 'us-east-1', accountId: '000000000000', clusters: () => [CLUSTER] });
  const createMs: number[] = [];
  const updateMs: number[] = [];
  const deleteMs: number[] = [];
  const ids: string[] = [];
  const cpuMicros: StorePhase['cpuMicros'] = {};
  let started = performance.now();
  let cpu = process.cpuUsage();
  // The last DELETES are made to be deleted, so COUNT remain for the read phase.
  for (let i = 0; i < spec.count + spec.deletes; i++) {
    const input = { ...subjectOf(i), roleArn: `arn:aws:iam::111122223333:role/role-${i % 1000}`, tags: { team: `t${i % 50}` }, clientRequestToken: randomUUID() };
    const made = await timed(createMs, () => service.create(CLUSTER, input, BENCH));
    ids.push(made.associationId);
  }
  const create = (performance.now() - started) / 1000;
  cpuMicros.create = cpuPer(cpu, createMs.length);
  started = performance.now();
  cpu = process.cpuUsage();
  for (let i = 0; i < spec.updates; i++) {
    const id = ids[(i * 7919) % spec.count]!;
    await timed(updateMs, () => service.update(CLUSTER, id, { roleArn: `arn:aws:iam::111122223333:role/updated-${i}` }, BENCH));
  }
  const update = (performance.now() - started) / 1000;
  cpuMicros.update = cpuPer(cpu, updateMs.length);
  started = performance.now();
  cpu = process.cpuUsage();
  for (const id of ids.slice(spec.count)) await timed(deleteMs, () => service.delete(CLUSTER, id, BENCH));
  const deleted = (performance.now() - started) / 1000;
  cpuMicros.delete = cpuPer(cpu, deleteMs.length);
  const written = procMiB('VmRSS');
  await store.close();
  return { createMs, updateMs, deleteMs, writeSeconds: { create, update, delete: deleted }, cpuMicros, rss: { before: rssBefore, written, peak: procMiB('VmHWM') } };
}

async function readPhase(spec: StorePhaseSpec): Promise<StorePhase> {
  const { AssociationService } = await import('../../src/associations/service.js');
  const rssBefore = procMiB('VmRSS');
  const t0 = performance.now();
  const Store = await loadStore();
  const t1 = performance.now();
  const store = new Store(spec.path);
  const t2 = performance.now();
  if (!(await store.findBySubject({ clusterName: CLUSTER, ...subjectOf(0) }))) throw new Error('the first lookup missed');
  const t3 = performance.now();
  const rssOpened = procMiB('VmRSS');
  const hitMs: number[] = [];
  const missMs: number[] = [];
  const cpuMicros: StorePhase['cpuMicros'] = {};
  let cpu = process.cpuUsage();
  for (let i = 0; i < spec.lookups; i++) {
    const subject = { clusterName: CLUSTER, ...subjectOf((i * 7919) % spec.count) };
    if (!(await timed(hitMs, () => store.findBySubject(subject)))) throw new Error(`lookup missed ${subject.namespace}/${subject.serviceAccount}`);
  }
  cpuMicros.hit = cpuPer(cpu, spec.lookups);
  cpu = process.cpuUsage();
  for (let i = 0; i < spec.lookups; i++) {
    const subject = { clusterName: CLUSTER, namespace: `ns-${i % 500}`, serviceAccount: `absent-${i}` };
    if (await timed(missMs, () => store.findBySubject(subject))) throw new Error(`lookup found ${subject.serviceAccount}`);
  }
  cpuMicros.miss = cpuPer(cpu, spec.lookups);
  const rssLookups = procMiB('VmRSS');
  const service = new AssociationService({ store, region: 'us-east-1', accountId: '000000000000', clusters: () => [CLUSTER] });
  const listStart = performance.now();
  let listed = 0;
  let nextToken: string | undefined;
  do {
    const page = await service.list(CLUSTER, { maxResults: 100, nextToken });
    listed += page.associations.length;
    nextToken = page.nextToken;
  } while (nextToken);
  const listSeconds = (performance.now() - listStart) / 1000;
  if (listed !== spec.count) throw new Error(`listed ${listed} of ${spec.count}`);
  const rssListed = procMiB('VmRSS');
  await store.close();
  return {
    startMs: { load: t1 - t0, open: t2 - t1, firstLookup: t3 - t2 },
    hitMs,
    missMs,
    cpuMicros,
    listSeconds,
    rss: { before: rssBefore, opened: rssOpened, lookups: rssLookups, listed: rssListed, peak: procMiB('VmHWM') },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const spec = JSON.parse(process.env.STORE_PHASE ?? '{}') as StorePhaseSpec;
  const phase = spec.phase === 'write' ? await writePhase(spec) : await readPhase(spec);
  process.stdout.write(JSON.stringify(phase));
}
