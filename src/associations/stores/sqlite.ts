// The embedded default store: one SQLite file in WAL mode with
// synchronous=FULL, so a write that was acknowledged is on disk before the
// answer leaves, and survives kill -9 and power loss alike.
import { mkdirSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { AssociationStore, ListQuery, RequestTokenRecord, StoreChange } from '../store.js';
import { StoreWriteError, SubjectTakenError, type StoreWriteProblem } from '../store.js';
import type { Association } from '../../api/eks.js';
import { applyChanges, type AssociationChanges, type Subject } from '../types.js';

/** Versioned migrations; a version is applied once, in order, in its own transaction. */
const MIGRATIONS: { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE associations (
        cluster_name TEXT NOT NULL,
        association_id TEXT NOT NULL,
        namespace TEXT NOT NULL,
        service_account TEXT NOT NULL,
        role_arn TEXT NOT NULL,
        association_arn TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        modified_at INTEGER NOT NULL,
        owner_arn TEXT,
        disable_session_tags INTEGER NOT NULL DEFAULT 0,
        target_role_arn TEXT,
        external_id TEXT,
        policy TEXT,
        PRIMARY KEY (cluster_name, association_id),
        UNIQUE (cluster_name, namespace, service_account)
      );
      CREATE TABLE request_tokens (
        cluster_name TEXT NOT NULL,
        token TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        association_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (cluster_name, token)
      );
    `,
  },
];

interface Row {
  cluster_name: string;
  association_id: string;
  namespace: string;
  service_account: string;
  role_arn: string;
  association_arn: string;
  tags: string;
  created_at: number;
  modified_at: number;
  owner_arn: string | null;
  disable_session_tags: number;
  target_role_arn: string | null;
  external_id: string | null;
  policy: string | null;
}

function fromRow(row: Row): Association {
  const association: Association = {
    clusterName: row.cluster_name,
    namespace: row.namespace,
    serviceAccount: row.service_account,
    roleArn: row.role_arn,
    associationId: row.association_id,
    associationArn: row.association_arn,
    tags: JSON.parse(row.tags) as Record<string, string>,
    createdAt: row.created_at,
    modifiedAt: row.modified_at,
    disableSessionTags: row.disable_session_tags === 1,
  };
  if (row.owner_arn !== null) association.ownerArn = row.owner_arn;
  if (row.target_role_arn !== null) association.targetRoleArn = row.target_role_arn;
  if (row.external_id !== null) association.externalId = row.external_id;
  if (row.policy !== null) association.policy = row.policy;
  return association;
}

function toRow(a: Association): Row {
  return {
    cluster_name: a.clusterName,
    association_id: a.associationId,
    namespace: a.namespace,
    service_account: a.serviceAccount,
    role_arn: a.roleArn,
    association_arn: a.associationArn,
    tags: JSON.stringify(a.tags),
    created_at: a.createdAt,
    modified_at: a.modifiedAt,
    owner_arn: a.ownerArn ?? null,
    disable_session_tags: a.disableSessionTags ? 1 : 0,
    target_role_arn: a.targetRoleArn ?? null,
    external_id: a.externalId ?? null,
    policy: a.policy ?? null,
  };
}

function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' || (error as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** The engine's codes for a write that lacks space or permission (better-sqlite3 gives SQLite's extended codes). */
function writeProblem(error: unknown): StoreWriteProblem | undefined {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string') return undefined;
  if (code === 'SQLITE_FULL') return 'disk full';
  if (code.startsWith('SQLITE_READONLY')) return 'read-only';
  if (code.startsWith('SQLITE_IOERR')) return 'I/O error';
  return undefined;
}

/** How often /readyz may cost a write: often enough to notice a full disk, rarely enough to be free. */
const WRITE_PROBE_INTERVAL_MS = 10_000;
/**
 * Free space a full disk must regain before the store calls itself ready: a
 * one-page probe can succeed in what a failed write left allocated, while the
 * largest association (50 tags, a policy) and its WAL frames need far more.
 */
const MIN_FREE_BYTES_AFTER_FULL = 1024 * 1024;

function migrateSqlite(db: Database.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
  const applied = new Set(db.prepare('SELECT version FROM schema_migrations').pluck().all() as number[]);
  for (const migration of MIGRATIONS) {
    if (applied.has(migration.version)) continue;
    db.transaction(() => {
      db.exec(migration.sql);
      db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(migration.version, Date.now());
    })();
  }
}

export class SqliteAssociationStore implements AssociationStore {
  private readonly db: Database.Database;
  private readonly listeners = new Set<(change: StoreChange) => void>();
  private readonly statements;
  /** the last write's failure, until a write succeeds again */
  private writeFailure: StoreWriteError | undefined;
  private lastProbeAt = Number.NEGATIVE_INFINITY;
  /** the file system the database is on; undefined in memory */
  private readonly dir: string | undefined;

  /** `path` is a file, or ':memory:' for tests of callers that need no durability. */
  constructor(path: string) {
    this.dir = path === ':memory:' ? undefined : dirname(path);
    if (this.dir !== undefined) mkdirSync(this.dir, { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
    migrateSqlite(this.db);
    const columns = 'cluster_name, association_id, namespace, service_account, role_arn, association_arn, tags, created_at, modified_at, owner_arn, disable_session_tags, target_role_arn, external_id, policy';
    this.statements = {
      insert: this.db.prepare(
        `INSERT INTO associations (${columns}) VALUES (@cluster_name, @association_id, @namespace, @service_account, @role_arn, @association_arn, @tags, @created_at, @modified_at, @owner_arn, @disable_session_tags, @target_role_arn, @external_id, @policy)`,
      ),
      get: this.db.prepare('SELECT * FROM associations WHERE cluster_name = ? AND association_id = ?'),
      bySubject: this.db.prepare('SELECT * FROM associations WHERE cluster_name = ? AND namespace = ? AND service_account = ?'),
      list: this.db.prepare(
        `SELECT * FROM associations WHERE cluster_name = @cluster AND association_id > @after
           AND (@namespace IS NULL OR namespace = @namespace)
           AND (@serviceAccount IS NULL OR service_account = @serviceAccount)
         ORDER BY association_id LIMIT @limit`,
      ),
      listAll: this.db.prepare(
        `SELECT * FROM associations WHERE (cluster_name, association_id) > (@cluster, @id)
         ORDER BY cluster_name, association_id LIMIT @limit`,
      ),
      update: this.db.prepare(
        `UPDATE associations SET role_arn = @role_arn, disable_session_tags = @disable_session_tags, tags = @tags,
           target_role_arn = @target_role_arn, external_id = @external_id, policy = @policy, modified_at = @modified_at
         WHERE cluster_name = @cluster_name AND association_id = @association_id`,
      ),
      delete: this.db.prepare('DELETE FROM associations WHERE cluster_name = ? AND association_id = ?'),
      getToken: this.db.prepare('SELECT fingerprint, association_id FROM request_tokens WHERE cluster_name = ? AND token = ?'),
      insertToken: this.db.prepare('INSERT INTO request_tokens (cluster_name, token, fingerprint, association_id, created_at) VALUES (?, ?, ?, ?, ?)'),
      // a write that changes nothing but still has to reach the disk (a WAL frame, synced)
      probeWrite: this.db.prepare('UPDATE schema_migrations SET applied_at = applied_at WHERE version = (SELECT MAX(version) FROM schema_migrations)'),
    };
  }

  async create(association: Association, requestToken?: { token: string; fingerprint: string }) {
    const run = this.db.transaction((): { created: true; association: Association } | { created: false; record: RequestTokenRecord } => {
      if (requestToken) {
        const row = this.statements.getToken.get(association.clusterName, requestToken.token) as { fingerprint: string; association_id: string } | undefined;
        if (row) return { created: false, record: { fingerprint: row.fingerprint, associationId: row.association_id } };
      }
      try {
        this.statements.insert.run(toRow(association));
      } catch (error) {
        if (isUniqueViolation(error)) throw new SubjectTakenError(association);
        throw error;
      }
      if (requestToken) {
        this.statements.insertToken.run(association.clusterName, requestToken.token, requestToken.fingerprint, association.associationId, association.createdAt);
      }
      return { created: true, association };
    });
    const result = this.write(() => run.immediate());
    if (result.created) this.emit({ kind: 'upsert', association: result.association });
    return result;
  }

  async get(clusterName: string, associationId: string) {
    const row = this.statements.get.get(clusterName, associationId) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  async findBySubject(subject: Subject) {
    return this.findBySubjectSync(subject);
  }

  /** Synchronous lookup, for callers on a hot path that can use it directly. */
  findBySubjectSync(subject: Subject): Association | undefined {
    const row = this.statements.bySubject.get(subject.clusterName, subject.namespace, subject.serviceAccount) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  async list(clusterName: string, query: ListQuery) {
    const rows = this.statements.list.all({
      cluster: clusterName,
      after: query.afterId ?? '',
      namespace: query.namespace ?? null,
      serviceAccount: query.serviceAccount ?? null,
      limit: query.limit,
    }) as Row[];
    return rows.map(fromRow);
  }

  async listAll(afterKey?: { clusterName: string; associationId: string }, limit = 1000) {
    const rows = this.statements.listAll.all({ cluster: afterKey?.clusterName ?? '', id: afterKey?.associationId ?? '', limit }) as Row[];
    return rows.map(fromRow);
  }

  async update(clusterName: string, associationId: string, changes: AssociationChanges) {
    const run = this.db.transaction(() => {
      const row = this.statements.get.get(clusterName, associationId) as Row | undefined;
      if (!row) return undefined;
      const next = applyChanges(fromRow(row), changes);
      this.statements.update.run(toRow(next));
      return next;
    });
    const updated = this.write(() => run.immediate());
    if (updated) this.emit({ kind: 'upsert', association: updated });
    return updated;
  }

  async delete(clusterName: string, associationId: string) {
    const run = this.db.transaction(() => {
      const row = this.statements.get.get(clusterName, associationId) as Row | undefined;
      if (!row) return undefined;
      this.statements.delete.run(clusterName, associationId);
      return fromRow(row);
    });
    const deleted = this.write(() => run.immediate());
    if (deleted) this.emit({ kind: 'delete', association: deleted });
    return deleted;
  }

  onChange(listener: (change: StoreChange) => void) {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  async ping() {
    this.db.prepare('SELECT 1').get();
    // Reads work on a full disk; writes are what fail. Try one now and then,
    // and at every check while writes fail, so readiness comes back by itself.
    const now = Date.now();
    if (this.writeFailure === undefined && now - this.lastProbeAt < WRITE_PROBE_INTERVAL_MS) return;
    this.lastProbeAt = now;
    if (this.writeFailure?.problem === 'disk full' && this.dir !== undefined) {
      const { bavail, bsize } = statfsSync(this.dir);
      if (bavail * bsize < MIN_FREE_BYTES_AFTER_FULL) throw this.writeFailure;
    }
    this.write(() => this.statements.probeWrite.run());
  }

  /** Runs a write; the engine's out-of-space and permission failures become StoreWriteError, remembered until a write succeeds. */
  private write<T>(work: () => T): T {
    try {
      const result = work();
      this.writeFailure = undefined;
      return result;
    } catch (error) {
      const problem = writeProblem(error);
      if (problem === undefined) throw error;
      this.writeFailure = new StoreWriteError(problem, { cause: error });
      throw this.writeFailure;
    }
  }

  async close() {
    if (this.db.open) this.db.close();
  }

  private emit(change: StoreChange) {
    for (const listener of this.listeners) listener(change);
  }
}
