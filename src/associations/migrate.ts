// Copying every association from one store into a PostgreSQL store, as they
// are (ids, ARNs, timestamps, owners), for `pod-identity migrate`. Idempotent:
// a second run creates nothing, and a run after more changes in the source
// brings the target up to date. An association whose subject is held by a
// different association in the target is reported, never overwritten.
import { existsSync } from 'node:fs';
import type { AssociationStore } from './store.js';
import { PostgresAssociationStore } from './stores/postgres/store.js';
import { SqliteAssociationStore } from './stores/sqlite.js';
import type { Association } from '../api/eks.js';

export type StoreLocation = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

/** `sqlite:<path>` (a file, e.g. <dataDir>/associations.db) or `postgres://…` / `postgresql://…`. */
export function parseStoreLocation(text: string): StoreLocation {
  if (/^postgres(ql)?:\/\//.test(text)) return { kind: 'postgres', url: text };
  const sqlite = /^sqlite:(?:\/\/)?(.+)$/.exec(text);
  if (sqlite) return { kind: 'sqlite', path: sqlite[1]! };
  throw new Error(`"${text.replace(/:[^:@/]*@/, ':***@')}" is not a store location: expected sqlite:<path> or postgres://…`);
}

export async function openSourceStore(location: StoreLocation): Promise<AssociationStore> {
  if (location.kind === 'postgres') return PostgresAssociationStore.open(location.url, { listen: false, poolSize: 2 });
  // The SQLite store would create a missing file; a migration source must exist.
  if (!existsSync(location.path)) throw new Error(`no SQLite store at ${location.path}`);
  return new SqliteAssociationStore(location.path);
}

export interface CopyCounts {
  total: number;
  done: number;
  created: number;
  updated: number;
  unchanged: number;
  conflicts: number;
}

export interface CopyOptions {
  batchSize?: number;
  onProgress?: (counts: CopyCounts) => void;
  onConflict?: (association: Association, existingId: string) => void;
}

async function countAll(store: AssociationStore, pageSize: number): Promise<number> {
  let total = 0;
  let after: { clusterName: string; associationId: string } | undefined;
  for (;;) {
    const page = await store.listAll(after, pageSize);
    total += page.length;
    if (page.length < pageSize) return total;
    const last = page[page.length - 1]!;
    after = { clusterName: last.clusterName, associationId: last.associationId };
  }
}

export async function copyAssociations(source: AssociationStore, target: PostgresAssociationStore, options: CopyOptions = {}): Promise<CopyCounts> {
  const batchSize = options.batchSize ?? 500;
  const counts: CopyCounts = { total: await countAll(source, 5000), done: 0, created: 0, updated: 0, unchanged: 0, conflicts: 0 };
  let after: { clusterName: string; associationId: string } | undefined;
  for (;;) {
    const page = await source.listAll(after, batchSize);
    if (page.length === 0) break;
    const { outcomes, conflicts } = await target.importAssociations(page);
    for (const outcome of outcomes.values()) counts[outcome]++;
    for (const conflict of conflicts) options.onConflict?.(conflict.association, conflict.existingId);
    counts.conflicts += conflicts.length;
    counts.done += page.length;
    // The count was taken before copying; a source still being written to may grow.
    counts.total = Math.max(counts.total, counts.done);
    options.onProgress?.({ ...counts });
    if (page.length < batchSize) break;
    const last = page[page.length - 1]!;
    after = { clusterName: last.clusterName, associationId: last.associationId };
  }
  return counts;
}
