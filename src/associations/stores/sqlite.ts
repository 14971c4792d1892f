// The embedded default store: one SQLite file in WAL mode with
// synchronous=FULL, so a write that was acknowledged is on disk before the
// answer leaves, and survives kill -9 and power loss alike. The engine is
// Node's built-in node:sqlite: no native dependency, and on this workload it
// measured as fast as better-sqlite3 or faster (bench/analysis/store.md).
import { mkdirSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { AssociationStore, ListQuery, RequestTokenRecord, StoreChange } from '../store.js';
import { StoreWriteError, SubjectTakenError, type StoreWriteProblem } from '../store.js';
import type { Association } from '../../api/eks.js';
import { applyChanges, type AssociationChanges, type Subject } from '../types.js';

/**
 * The conditions of the two partial indexes of pattern rows, repeated
 * verbatim in the query that uses them: service-account patterns by
 * (cluster, namespace), namespace patterns by cluster.
 */
const SERVICE_ACCOUNT_PATTERN = "service_account LIKE '%*'";
const NAMESPACE_PATTERN = "namespace LIKE '%*'";

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
  {
    // Patterns (`*`, `build-*`), custom session tags, session name templates and non-transitive tags.
    // The partial indexes hold only pattern rows, so a lookup reads those that may match, never the cluster's.
    version: 2,
    sql: `
      ALTER TABLE associations ADD COLUMN session_tags TEXT;
      ALTER TABLE associations ADD COLUMN session_name_template TEXT;
      ALTER TABLE associations ADD COLUMN transitive_session_tags INTEGER NOT NULL DEFAULT 1;
      CREATE INDEX associations_service_account_patterns ON associations (cluster_name, namespace) WHERE ${SERVICE_ACCOUNT_PATTERN};
      CREATE INDEX associations_namespace_patterns ON associations (cluster_name) WHERE ${NAMESPACE_PATTERN};
    `,
  },
];

/** What a write binds by name (a type, not an interface: node:sqlite binds a Record<string, …>). */
type Row = {
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
  session_tags: string | null;
  session_name_template: string | null;
  transitive_session_tags: number;
};

/**
 * The columns every read selects, in this order. Rows are read as arrays
 * (returnArrays): node:sqlite makes an object row a dictionary-mode object
 * with its column names interned anew, which nearly doubles the instructions
 * of the hot lookup (57,000 against 30,000). Its types know only object rows,
 * hence the casts to these arrays.
 */
const COLUMNS =
  'cluster_name, association_id, namespace, service_account, role_arn, association_arn, tags, created_at, modified_at, owner_arn, disable_session_tags, target_role_arn, external_id, policy, session_tags, session_name_template, transitive_session_tags';
type StoredRow = [
  clusterName: string,
  associationId: string,
  namespace: string,
  serviceAccount: string,
  roleArn: string,
  associationArn: string,
  tags: string,
  createdAt: number,
  modifiedAt: number,
  ownerArn: string | null,
  disableSessionTags: number,
  targetRoleArn: string | null,
  externalId: string | null,
  policy: string | null,
  sessionTags: string | null,
  sessionNameTemplate: string | null,
  transitiveSessionTags: number,
];

function fromRow(row: StoredRow): Association {
  const [clusterName, associationId, namespace, serviceAccount, roleArn, associationArn, tags, createdAt, modifiedAt, ownerArn, disableSessionTags, targetRoleArn, externalId, policy, sessionTags, sessionNameTemplate, transitiveSessionTags] =
    row;
  const association: Association = {
    clusterName,
    namespace,
    serviceAccount,
    roleArn,
    associationId,
    associationArn,
    tags: JSON.parse(tags) as Record<string, string>,
    createdAt,
    modifiedAt,
    disableSessionTags: disableSessionTags === 1,
  };
  if (ownerArn !== null) association.ownerArn = ownerArn;
  if (targetRoleArn !== null) association.targetRoleArn = targetRoleArn;
  if (externalId !== null) association.externalId = externalId;
  if (policy !== null) association.policy = policy;
  if (sessionTags !== null) association.sessionTags = JSON.parse(sessionTags) as Record<string, string>;
  if (sessionNameTemplate !== null) association.sessionNameTemplate = sessionNameTemplate;
  if (transitiveSessionTags === 0) association.transitiveSessionTags = false;
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
    session_tags: a.sessionTags ? JSON.stringify(a.sessionTags) : null,
    session_name_template: a.sessionNameTemplate ?? null,
    transitive_session_tags: a.transitiveSessionTags === false ? 0 : 1,
  };
}

// SQLite's extended result codes (node:sqlite puts them in `errcode`; its `code` is always ERR_SQLITE_ERROR).
const SQLITE_CONSTRAINT_PRIMARYKEY = 1555;
const SQLITE_CONSTRAINT_UNIQUE = 2067;
// Primary result codes (an extended code's low byte).
const SQLITE_READONLY = 8;
const SQLITE_IOERR = 10;
const SQLITE_FULL = 13;

/** The engine's codes for a write that lacks space or permission. */
function writeProblem(error: unknown): StoreWriteProblem | undefined {
  const errcode = (error as { errcode?: unknown }).errcode;
  if (typeof errcode !== 'number') return undefined;
  const primary = errcode & 0xff;
  if (primary === SQLITE_FULL) return 'disk full';
  if (primary === SQLITE_READONLY) return 'read-only';
  if (primary === SQLITE_IOERR) return 'I/O error';
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

function isUniqueViolation(error: unknown): boolean {
  const errcode = (error as { errcode?: unknown }).errcode;
  return errcode === SQLITE_CONSTRAINT_UNIQUE || errcode === SQLITE_CONSTRAINT_PRIMARYKEY;
}

/**
 * Runs `work` between BEGIN IMMEDIATE and COMMIT: the write lock is taken up
 * front, so processes sharing the file (API workers) queue on busy_timeout
 * instead of failing to upgrade a read lock. Whatever throws rolls back.
 */
function immediate<T>(db: DatabaseSync, work: () => T): T {
  db.exec('BEGIN IMMEDIATE');
  try {
    const result = work();
    db.exec('COMMIT');
    return result;
  } catch (error) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw error;
  }
}

function migrate(db: DatabaseSync): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
  const applied = new Set((db.prepare('SELECT version FROM schema_migrations').all() as unknown as [number][]).map(([version]) => version));
  for (const migration of MIGRATIONS) {
    if (applied.has(migration.version)) continue;
    immediate(db, () => {
      db.exec(migration.sql);
      db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(migration.version, Date.now());
    });
  }
}

export class SqliteAssociationStore implements AssociationStore {
  private readonly db: DatabaseSync;
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
    this.db = new DatabaseSync(path, { returnArrays: true });
    this.db.exec('PRAGMA journal_mode = WAL');
    this.db.exec('PRAGMA synchronous = FULL');
    this.db.exec('PRAGMA busy_timeout = 5000');
    this.db.exec('PRAGMA foreign_keys = ON');
    migrate(this.db);
    this.statements = {
      insert: this.db.prepare(
        `INSERT INTO associations (${COLUMNS}) VALUES (@cluster_name, @association_id, @namespace, @service_account, @role_arn, @association_arn, @tags, @created_at, @modified_at, @owner_arn, @disable_session_tags, @target_role_arn, @external_id, @policy, @session_tags, @session_name_template, @transitive_session_tags)`,
      ),
      get: this.db.prepare(`SELECT ${COLUMNS} FROM associations WHERE cluster_name = ? AND association_id = ?`),
      bySubject: this.db.prepare(`SELECT ${COLUMNS} FROM associations WHERE cluster_name = ? AND namespace = ? AND service_account = ?`),
      // the exact row, the namespace's service-account patterns, the cluster's namespace patterns: three index seeks
      candidates: this.db.prepare(
        `SELECT ${COLUMNS} FROM associations WHERE cluster_name = @cluster AND namespace = @namespace AND service_account = @serviceAccount
         UNION ALL SELECT ${COLUMNS} FROM associations WHERE cluster_name = @cluster AND namespace = @namespace AND ${SERVICE_ACCOUNT_PATTERN}
         UNION ALL SELECT ${COLUMNS} FROM associations WHERE cluster_name = @cluster AND ${NAMESPACE_PATTERN}`,
      ),
      list: this.db.prepare(
        `SELECT ${COLUMNS} FROM associations WHERE cluster_name = @cluster AND association_id > @after
           AND (@namespace IS NULL OR namespace = @namespace)
           AND (@serviceAccount IS NULL OR service_account = @serviceAccount)
         ORDER BY association_id LIMIT @limit`,
      ),
      listAll: this.db.prepare(
        `SELECT ${COLUMNS} FROM associations WHERE (cluster_name, association_id) > (@cluster, @id)
         ORDER BY cluster_name, association_id LIMIT @limit`,
      ),
      update: this.db.prepare(
        `UPDATE associations SET role_arn = @role_arn, disable_session_tags = @disable_session_tags, tags = @tags,
           target_role_arn = @target_role_arn, external_id = @external_id, policy = @policy, modified_at = @modified_at,
           session_tags = @session_tags, session_name_template = @session_name_template, transitive_session_tags = @transitive_session_tags
         WHERE cluster_name = @cluster_name AND association_id = @association_id`,
      ),
      delete: this.db.prepare('DELETE FROM associations WHERE cluster_name = ? AND association_id = ?'),
      ping: this.db.prepare('SELECT 1'),
      getToken: this.db.prepare('SELECT fingerprint, association_id FROM request_tokens WHERE cluster_name = ? AND token = ?'),
      insertToken: this.db.prepare('INSERT INTO request_tokens (cluster_name, token, fingerprint, association_id, created_at) VALUES (?, ?, ?, ?, ?)'),
      // a write that changes nothing but still has to reach the disk (a WAL frame, synced)
      probeWrite: this.db.prepare('UPDATE schema_migrations SET applied_at = applied_at WHERE version = (SELECT MAX(version) FROM schema_migrations)'),
    } satisfies Record<string, StatementSync>;
    // The update binds a whole row and sets the columns an update may change.
    this.statements.update.setAllowUnknownNamedParameters(true);
  }

  async create(association: Association, requestToken?: { token: string; fingerprint: string }) {
    const result = this.write((): { created: true; association: Association } | { created: false; record: RequestTokenRecord } => {
      if (requestToken) {
        const row = this.statements.getToken.get(association.clusterName, requestToken.token) as [fingerprint: string, associationId: string] | undefined;
        if (row) return { created: false, record: { fingerprint: row[0], associationId: row[1] } };
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
    if (result.created) this.emit({ kind: 'upsert', association: result.association });
    return result;
  }

  async get(clusterName: string, associationId: string) {
    const row = this.statements.get.get(clusterName, associationId) as StoredRow | undefined;
    return row ? fromRow(row) : undefined;
  }

  async findBySubject(subject: Subject) {
    return this.findBySubjectSync(subject);
  }

  /** Synchronous lookup, for callers on a hot path that can use it directly. */
  findBySubjectSync(subject: Subject): Association | undefined {
    const row = this.statements.bySubject.get(subject.clusterName, subject.namespace, subject.serviceAccount) as StoredRow | undefined;
    return row ? fromRow(row) : undefined;
  }

  async findCandidates(subject: Subject) {
    const rows = this.statements.candidates.all({ cluster: subject.clusterName, namespace: subject.namespace, serviceAccount: subject.serviceAccount }) as unknown as StoredRow[];
    return rows.map(fromRow);
  }

  async list(clusterName: string, query: ListQuery) {
    const rows = this.statements.list.all({
      cluster: clusterName,
      after: query.afterId ?? '',
      namespace: query.namespace ?? null,
      serviceAccount: query.serviceAccount ?? null,
      limit: query.limit,
    }) as unknown as StoredRow[];
    return rows.map(fromRow);
  }

  async listAll(afterKey?: { clusterName: string; associationId: string }, limit = 1000) {
    const rows = this.statements.listAll.all({ cluster: afterKey?.clusterName ?? '', id: afterKey?.associationId ?? '', limit }) as unknown as StoredRow[];
    return rows.map(fromRow);
  }

  async update(clusterName: string, associationId: string, changes: AssociationChanges) {
    const updated = this.write(() => {
      const row = this.statements.get.get(clusterName, associationId) as StoredRow | undefined;
      if (!row) return undefined;
      const next = applyChanges(fromRow(row), changes);
      this.statements.update.run(toRow(next));
      return next;
    });
    if (updated) this.emit({ kind: 'upsert', association: updated });
    return updated;
  }

  async delete(clusterName: string, associationId: string) {
    const deleted = this.write(() => {
      const row = this.statements.get.get(clusterName, associationId) as StoredRow | undefined;
      if (!row) return undefined;
      this.statements.delete.run(clusterName, associationId);
      return fromRow(row);
    });
    if (deleted) this.emit({ kind: 'delete', association: deleted });
    return deleted;
  }

  onChange(listener: (change: StoreChange) => void) {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  async countByCluster() {
    // rows are arrays (returnArrays): [cluster_name, count]
    const rows = this.db.prepare('SELECT cluster_name, count(*) FROM associations GROUP BY cluster_name').all() as unknown as [string, number][];
    return Object.fromEntries(rows);
  }

  async ping() {
    this.statements.ping.get();
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

  /**
   * Runs a write transaction (BEGIN IMMEDIATE); the engine's out-of-space and
   * permission failures become StoreWriteError, remembered until a write
   * succeeds.
   */
  private write<T>(work: () => T): T {
    try {
      const result = immediate(this.db, work);
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
    if (this.db.isOpen) this.db.close();
  }

  private emit(change: StoreChange) {
    for (const listener of this.listeners) listener(change);
  }
}
