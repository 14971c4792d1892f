// The shared store for several server replicas: PostgreSQL through a `pg`
// pool. Same schema and rules as the SQLite store (one association per
// (cluster, namespace, serviceAccount), request tokens written in the same
// transaction as the association they made).
//
// The change feed is what keeps every replica's in-memory caches (webhook,
// EKS Auth) current: a trigger records every row change in
// `association_changes` and announces its sequence number with NOTIFY, so a
// change is seen by every replica whoever made it, even one made with psql.
// Each store LISTENs on one dedicated connection; when that connection is
// lost it reconnects and replays the recorded changes it may have missed.
import { Client, Pool, type PoolClient } from 'pg';
import type { Logger } from '../../lib/logger.js';
import { silentLogger } from '../../lib/logger.js';
import type { AssociationStore, ListQuery, RequestTokenRecord, StoreChange } from '../store.js';
import { SubjectTakenError } from '../store.js';
import type { Association, AssociationChanges, Subject } from '../types.js';

const CHANNEL = 'pod_identity_association_changes';
/** pg_advisory_lock key held while migrating, so replicas starting together migrate once. */
const MIGRATION_LOCK_KEY = 7_283_640_912;
const SUBJECT_CONSTRAINT = 'associations_subject_key';

/**
 * Versioned migrations; each is applied once, in order, in its own
 * transaction, under the advisory lock. Text keys use the "C" collation so
 * ordering (and with it list cursors) is byte order, as in SQLite, whatever
 * the database's locale.
 */
const MIGRATIONS: { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE associations (
        cluster_name TEXT COLLATE "C" NOT NULL,
        association_id TEXT COLLATE "C" NOT NULL,
        namespace TEXT COLLATE "C" NOT NULL,
        service_account TEXT COLLATE "C" NOT NULL,
        role_arn TEXT NOT NULL,
        association_arn TEXT NOT NULL,
        tags JSONB NOT NULL DEFAULT '{}',
        created_at DOUBLE PRECISION NOT NULL,
        modified_at DOUBLE PRECISION NOT NULL,
        owner_arn TEXT,
        disable_session_tags BOOLEAN NOT NULL DEFAULT FALSE,
        target_role_arn TEXT,
        external_id TEXT,
        policy TEXT,
        CONSTRAINT associations_pkey PRIMARY KEY (cluster_name, association_id),
        CONSTRAINT ${SUBJECT_CONSTRAINT} UNIQUE (cluster_name, namespace, service_account)
      );
      CREATE TABLE request_tokens (
        cluster_name TEXT COLLATE "C" NOT NULL,
        token TEXT COLLATE "C" NOT NULL,
        fingerprint TEXT NOT NULL,
        association_id TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (cluster_name, token)
      );
      CREATE TABLE association_changes (
        seq BIGSERIAL PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('upsert', 'delete')),
        association JSONB NOT NULL,
        changed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
      );
      CREATE INDEX association_changes_changed_at ON association_changes (changed_at);
      CREATE FUNCTION record_association_change() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        change_seq BIGINT;
      BEGIN
        IF TG_OP = 'DELETE' THEN
          INSERT INTO association_changes (kind, association) VALUES ('delete', to_jsonb(OLD)) RETURNING seq INTO change_seq;
        ELSE
          INSERT INTO association_changes (kind, association) VALUES ('upsert', to_jsonb(NEW)) RETURNING seq INTO change_seq;
        END IF;
        PERFORM pg_notify('${CHANNEL}', change_seq::text);
        RETURN NULL;
      END
      $$;
      CREATE TRIGGER associations_changed AFTER INSERT OR UPDATE OR DELETE ON associations
        FOR EACH ROW EXECUTE FUNCTION record_association_change();
    `,
  },
];

const COLUMNS =
  'cluster_name, association_id, namespace, service_account, role_arn, association_arn, tags, created_at, modified_at, owner_arn, disable_session_tags, target_role_arn, external_id, policy';

/** A row as `pg` returns it, and as `to_jsonb(row)` records it in a change. */
interface Row {
  cluster_name: string;
  association_id: string;
  namespace: string;
  service_account: string;
  role_arn: string;
  association_arn: string;
  tags: Record<string, string>;
  created_at: number;
  modified_at: number;
  owner_arn: string | null;
  disable_session_tags: boolean;
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
    tags: row.tags,
    createdAt: Number(row.created_at),
    modifiedAt: Number(row.modified_at),
    disableSessionTags: row.disable_session_tags,
  };
  if (row.owner_arn !== null) association.ownerArn = row.owner_arn;
  if (row.target_role_arn !== null) association.targetRoleArn = row.target_role_arn;
  if (row.external_id !== null) association.externalId = row.external_id;
  if (row.policy !== null) association.policy = row.policy;
  return association;
}

/** Parameters $1…$14 in COLUMNS order. */
function toParams(a: Association): unknown[] {
  return [
    a.clusterName,
    a.associationId,
    a.namespace,
    a.serviceAccount,
    a.roleArn,
    a.associationArn,
    JSON.stringify(a.tags),
    a.createdAt,
    a.modifiedAt,
    a.ownerArn ?? null,
    a.disableSessionTags,
    a.targetRoleArn ?? null,
    a.externalId ?? null,
    a.policy ?? null,
  ];
}

function isSubjectViolation(error: unknown): boolean {
  const e = error as { code?: string; constraint?: string };
  return e.code === '23505' && e.constraint === SUBJECT_CONSTRAINT;
}

/** Connection-level failures after which a pooled client must not be reused. */
function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: string }).code ?? '';
  return !/^[0-9A-Z]{5}$/.test(code) || code.startsWith('08') || code.startsWith('57P');
}

/** Which change row a write produced: its sequence and its time on the database's clock. */
interface ChangeMark {
  seq: number;
  at: number;
}

/** Reads the change the trigger just recorded in this transaction. Only call after a DML that touched exactly one row. */
async function lastChange(client: PoolClient): Promise<ChangeMark> {
  const { rows } = await client.query<{ seq: string; at: number }>(
    `SELECT seq::text AS seq, (extract(epoch FROM changed_at) * 1000)::float8 AS at FROM association_changes
      WHERE seq = currval(pg_get_serial_sequence('association_changes', 'seq'))`,
  );
  return { seq: Number(rows[0]!.seq), at: rows[0]!.at };
}

export async function migratePostgres(pool: Pool, logger: Logger = silentLogger()): Promise<number[]> {
  const client = await pool.connect();
  const applied: number[] = [];
  try {
    // Session-level lock on a dedicated connection: replicas that start
    // together queue here, and the later ones find nothing left to apply.
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())');
      const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
      const done = new Set(rows.map((r) => r.version));
      for (const migration of MIGRATIONS) {
        if (done.has(migration.version)) continue;
        await client.query('BEGIN');
        try {
          await client.query(migration.sql);
          await client.query('INSERT INTO schema_migrations (version) VALUES ($1)', [migration.version]);
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => {});
          throw error;
        }
        applied.push(migration.version);
        logger.info({ version: migration.version }, 'postgres: applied schema migration');
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => {});
    }
  } finally {
    client.release();
  }
  return applied;
}

/** `postgres://user:secret@host/db` → `postgres://user:***@host/db`, for logs and messages. */
export function redactDatabaseUrl(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:/@]*:)[^@]*@/, '$1***@');
}

export interface PostgresStoreOptions {
  logger?: Logger;
  /** pool size per replica (default 10) */
  poolSize?: number;
  /** LISTEN for changes made elsewhere (default true); a one-shot tool such as `migrate` turns it off */
  listen?: boolean;
  /** how long recorded changes are kept for replicas catching up after a lost connection (default 24 h) */
  changeRetentionMs?: number;
  /** the change connection is checked this often (default 5 s) */
  heartbeatMs?: number;
}

export type ImportOutcome = 'created' | 'updated' | 'unchanged';

export class PostgresAssociationStore implements AssociationStore {
  private readonly listeners = new Set<(change: StoreChange) => void>();
  private feed: ChangeFeed | undefined;
  private pruneTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly pool: Pool,
    private readonly logger: Logger,
  ) {}

  /** Connects, migrates (safely, with several replicas at once) and starts the change feed. */
  static async open(databaseUrl: string, options: PostgresStoreOptions = {}): Promise<PostgresAssociationStore> {
    const logger = options.logger ?? silentLogger();
    const pool = new Pool({
      connectionString: databaseUrl,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      statement_timeout: 10_000,
      application_name: 'pod-identity',
    });
    // An idle pooled connection that breaks must not take the process down;
    // the pool drops it and the next checkout opens a fresh one.
    pool.on('error', (error) => logger.warn({ err: error }, 'postgres: idle pooled connection failed'));
    const store = new PostgresAssociationStore(pool, logger);
    try {
      await migratePostgres(pool, logger);
      if (options.listen ?? true) {
        store.feed = new ChangeFeed(databaseUrl, pool, logger, (change) => store.emit(change), options.heartbeatMs ?? 5000);
        await store.feed.start();
        const retentionMs = options.changeRetentionMs ?? 24 * 3600_000;
        const prune = () => {
          pool
            .query('DELETE FROM association_changes WHERE changed_at < now() - make_interval(secs => $1)', [retentionMs / 1000])
            .catch((error: unknown) => logger.warn({ err: error }, 'postgres: pruning old change records failed'));
        };
        prune();
        store.pruneTimer = setInterval(prune, Math.min(retentionMs, 10 * 60_000));
        store.pruneTimer.unref();
      }
    } catch (error) {
      await store.close().catch(() => {});
      throw error;
    }
    return store;
  }

  async create(association: Association, requestToken?: { token: string; fingerprint: string }) {
    const result = await this.transaction(async (client): Promise<{ created: true; mark: ChangeMark } | { created: false; record: RequestTokenRecord }> => {
      if (requestToken) {
        // Claim the token first: a concurrent create with the same token waits
        // on this row, then finds it taken and answers what the first one made.
        const claimed = await client.query(
          'INSERT INTO request_tokens (cluster_name, token, fingerprint, association_id, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (cluster_name, token) DO NOTHING',
          [association.clusterName, requestToken.token, requestToken.fingerprint, association.associationId, association.createdAt],
        );
        if (claimed.rowCount === 0) {
          const { rows } = await client.query<{ fingerprint: string; association_id: string }>(
            'SELECT fingerprint, association_id FROM request_tokens WHERE cluster_name = $1 AND token = $2',
            [association.clusterName, requestToken.token],
          );
          return { created: false, record: { fingerprint: rows[0]!.fingerprint, associationId: rows[0]!.association_id } };
        }
      }
      try {
        await client.query(`INSERT INTO associations (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`, toParams(association));
      } catch (error) {
        if (isSubjectViolation(error)) throw new SubjectTakenError(association);
        throw error;
      }
      return { created: true, mark: await lastChange(client) };
    });
    if (!result.created) return result;
    this.deliver(result.mark, { kind: 'upsert', association });
    return { created: true as const, association };
  }

  async get(clusterName: string, associationId: string) {
    const { rows } = await this.pool.query<Row>('SELECT * FROM associations WHERE cluster_name = $1 AND association_id = $2', [clusterName, associationId]);
    return rows[0] ? fromRow(rows[0]) : undefined;
  }

  async findBySubject(subject: Subject) {
    const { rows } = await this.pool.query<Row>('SELECT * FROM associations WHERE cluster_name = $1 AND namespace = $2 AND service_account = $3', [
      subject.clusterName,
      subject.namespace,
      subject.serviceAccount,
    ]);
    return rows[0] ? fromRow(rows[0]) : undefined;
  }

  async list(clusterName: string, query: ListQuery) {
    const { rows } = await this.pool.query<Row>(
      `SELECT * FROM associations
        WHERE cluster_name = $1 AND association_id > $2
          AND ($3::text IS NULL OR namespace = $3)
          AND ($4::text IS NULL OR service_account = $4)
        ORDER BY association_id LIMIT $5`,
      [clusterName, query.afterId ?? '', query.namespace ?? null, query.serviceAccount ?? null, query.limit],
    );
    return rows.map(fromRow);
  }

  async listAll(afterKey?: { clusterName: string; associationId: string }, limit = 1000) {
    const { rows } = await this.pool.query<Row>(
      'SELECT * FROM associations WHERE (cluster_name, association_id) > ($1, $2) ORDER BY cluster_name, association_id LIMIT $3',
      [afterKey?.clusterName ?? '', afterKey?.associationId ?? '', limit],
    );
    return rows.map(fromRow);
  }

  async update(clusterName: string, associationId: string, changes: AssociationChanges) {
    const result = await this.transaction(async (client) => {
      const { rows } = await client.query<Row>('SELECT * FROM associations WHERE cluster_name = $1 AND association_id = $2 FOR UPDATE', [clusterName, associationId]);
      if (!rows[0]) return undefined;
      const current = fromRow(rows[0]);
      // tags are replaced only when given; every other key present as undefined clears its field
      const next: Association = { ...current, ...changes, tags: changes.tags ?? current.tags };
      for (const key of ['targetRoleArn', 'externalId', 'policy'] as const) {
        if (next[key] === undefined || next[key] === '') delete next[key];
      }
      await client.query(
        `UPDATE associations SET role_arn = $3, disable_session_tags = $4, target_role_arn = $5, external_id = $6, policy = $7, modified_at = $8, tags = $9
          WHERE cluster_name = $1 AND association_id = $2`,
        [clusterName, associationId, next.roleArn, next.disableSessionTags, next.targetRoleArn ?? null, next.externalId ?? null, next.policy ?? null, next.modifiedAt, JSON.stringify(next.tags)],
      );
      return { next, mark: await lastChange(client) };
    });
    if (!result) return undefined;
    this.deliver(result.mark, { kind: 'upsert', association: result.next });
    return result.next;
  }

  async delete(clusterName: string, associationId: string) {
    const result = await this.transaction(async (client) => {
      const { rows } = await client.query<Row>('DELETE FROM associations WHERE cluster_name = $1 AND association_id = $2 RETURNING *', [clusterName, associationId]);
      if (!rows[0]) return undefined;
      return { deleted: fromRow(rows[0]), mark: await lastChange(client) };
    });
    if (!result) return undefined;
    this.deliver(result.mark, { kind: 'delete', association: result.deleted });
    return result.deleted;
  }

  /**
   * Copies associations as they are (same ids, ARNs and timestamps), for
   * `pod-identity migrate`: a missing one is inserted, a differing one is
   * overwritten, an equal one is left alone. One whose subject is held by a
   * different association is not copied; it is answered as a conflict.
   */
  async importAssociations(associations: Association[]): Promise<{ outcomes: Map<string, ImportOutcome>; conflicts: { association: Association; existingId: string }[] }> {
    return this.transaction(async (client) => {
      const outcomes = new Map<string, ImportOutcome>();
      const conflicts: { association: Association; existingId: string }[] = [];
      if (associations.length === 0) return { outcomes, conflicts };
      const subjects = await client.query<{ cluster_name: string; namespace: string; service_account: string; association_id: string }>(
        `SELECT a.cluster_name, a.namespace, a.service_account, a.association_id FROM associations a
           JOIN unnest($1::text[], $2::text[], $3::text[]) AS s(cluster_name, namespace, service_account)
             ON a.cluster_name = s.cluster_name AND a.namespace = s.namespace AND a.service_account = s.service_account
         FOR UPDATE OF a`,
        [associations.map((a) => a.clusterName), associations.map((a) => a.namespace), associations.map((a) => a.serviceAccount)],
      );
      const holder = new Map(subjects.rows.map((r) => [JSON.stringify([r.cluster_name, r.namespace, r.service_account]), r.association_id]));
      const copy: Association[] = [];
      for (const association of associations) {
        const existingId = holder.get(JSON.stringify([association.clusterName, association.namespace, association.serviceAccount]));
        if (existingId !== undefined && existingId !== association.associationId) conflicts.push({ association, existingId });
        else copy.push(association);
      }
      if (copy.length === 0) return { outcomes, conflicts };
      const params: unknown[] = [];
      const values = copy.map((a) => {
        const base = params.length;
        params.push(...toParams(a));
        return `(${Array.from({ length: 14 }, (_, i) => `$${base + i + 1}`).join(', ')})`;
      });
      const mutable = ['namespace', 'service_account', 'role_arn', 'association_arn', 'tags', 'created_at', 'modified_at', 'owner_arn', 'disable_session_tags', 'target_role_arn', 'external_id', 'policy'];
      const { rows } = await client.query<{ association_id: string; inserted: boolean }>(
        `INSERT INTO associations AS a (${COLUMNS}) VALUES ${values.join(', ')}
         ON CONFLICT (cluster_name, association_id) DO UPDATE SET ${mutable.map((c) => `${c} = EXCLUDED.${c}`).join(', ')}
           WHERE (${mutable.map((c) => `a.${c}`).join(', ')}) IS DISTINCT FROM (${mutable.map((c) => `EXCLUDED.${c}`).join(', ')})
         RETURNING a.association_id, (xmax = 0) AS inserted`,
        params,
      );
      for (const a of copy) outcomes.set(a.associationId, 'unchanged');
      for (const row of rows) outcomes.set(row.association_id, row.inserted ? 'created' : 'updated');
      return { outcomes, conflicts };
    });
  }

  onChange(listener: (change: StoreChange) => void) {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  async ping() {
    await this.pool.query('SELECT 1');
    const down = this.feed?.downForMs() ?? 0;
    // Caches fed by a dead change feed may be stale: not ready until it is back.
    if (down > 5000) throw new Error(`postgres change feed disconnected for ${Math.round(down / 1000)} s`);
  }

  async close() {
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    await this.feed?.stop();
    await this.pool.end();
  }

  private async transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      broken = isConnectionError(error) && !(error instanceof SubjectTakenError);
      if (!broken) await client.query('ROLLBACK').catch(() => (broken = true));
      throw error;
    } finally {
      client.release(broken);
    }
  }

  /** A write of this replica: tell listeners now, and let the feed skip it when its notification arrives. */
  private deliver(mark: ChangeMark, change: StoreChange) {
    if (this.feed) this.feed.deliver(mark, change);
    else this.emit(change);
  }

  private emit(change: StoreChange) {
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (error) {
        this.logger.error({ err: error }, 'association change listener failed');
      }
    }
  }
}

/** How far back a reconnecting feed replays, to cover writes that committed out of sequence order. */
const REPLAY_OVERLAP_MS = 60_000;
/** How long delivered sequence numbers are remembered for de-duplication. */
const SEEN_WINDOW_MS = 10 * 60_000;

interface ChangeRecord {
  seq: string;
  kind: 'upsert' | 'delete';
  association: Row;
  at: number;
}

/**
 * LISTEN on one dedicated connection; fetch the announced changes through the
 * pool and hand them to the store's listeners once each, in sequence order,
 * never older than what was already delivered for the same association.
 */
class ChangeFeed {
  private client: Client | undefined;
  private stopped = false;
  private downSince: number | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private reconnectDelayMs = 100;
  /** seq → database time of the change */
  private readonly seen = new Map<number, number>();
  /** cluster/associationId → newest seq delivered */
  private readonly newest = new Map<string, { seq: number; at: number }>();
  /** database time up to which every change is known to have been delivered (minus the overlap) */
  private watermark = 0;
  /** de-duplication state is trimmed when `seen` reaches this size (amortised: it doubles) */
  private trimAt = 4096;
  private pending: number[] = [];
  /** one fetch at a time, in order */
  private work: Promise<void> = Promise.resolve();

  constructor(
    private readonly databaseUrl: string,
    private readonly pool: Pool,
    private readonly logger: Logger,
    private readonly emit: (change: StoreChange) => void,
    private readonly heartbeatMs: number,
  ) {}

  async start(): Promise<void> {
    this.watermark = await this.connect();
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.heartbeatMs);
    this.heartbeatTimer.unref();
  }

  /** 0 while connected, else how long the feed has been down. */
  downForMs(): number {
    return this.downSince === undefined ? 0 : Date.now() - this.downSince;
  }

  deliver(mark: ChangeMark, change: StoreChange): void {
    this.accept(mark.seq, mark.at, change);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.heartbeatTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
    await this.work;
  }

  /** Opens the LISTEN connection; answers the database's clock at the time LISTEN took effect. */
  private async connect(): Promise<number> {
    const client = new Client({ connectionString: this.databaseUrl, connectionTimeoutMillis: 5000, keepAlive: true, application_name: 'pod-identity-changes' });
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client));
    client.on('notification', (message) => {
      if (message.channel !== CHANNEL || !message.payload) return;
      this.pending.push(Number(message.payload));
      this.schedule(() => this.fetchPending());
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      const { rows } = await client.query<{ now: number }>('SELECT (extract(epoch FROM now()) * 1000)::float8 AS now');
      this.client = client;
      return rows[0]!.now;
    } catch (error) {
      client.removeAllListeners('end');
      await client.end().catch(() => {});
      throw error;
    }
  }

  private lost(client: Client, error?: Error) {
    if (this.stopped || this.client !== client) return;
    this.client = undefined;
    this.downSince ??= Date.now();
    this.logger.warn({ err: error }, 'postgres: change feed connection lost; reconnecting');
    client.end().catch(() => {});
    this.scheduleReconnect();
  }

  private scheduleReconnect() {
    if (this.stopped) return;
    this.reconnectTimer = setTimeout(() => void this.reconnect(), this.reconnectDelayMs);
    this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, 5000);
  }

  private async reconnect() {
    if (this.stopped) return;
    try {
      await this.connect();
    } catch (error) {
      this.logger.warn({ err: error, retryInMs: this.reconnectDelayMs }, 'postgres: change feed reconnect failed');
      this.scheduleReconnect();
      return;
    }
    if (this.stopped) {
      await this.stop();
      return;
    }
    const downMs = this.downForMs();
    this.downSince = undefined;
    this.reconnectDelayMs = 100;
    this.logger.info({ downMs }, 'postgres: change feed reconnected; replaying missed changes');
    // Notifications sent while we were away are gone: replay from the records.
    const since = this.watermark - REPLAY_OVERLAP_MS;
    this.schedule(() => this.replay(since));
  }

  private heartbeat() {
    const client = this.client;
    if (!client) return;
    // A half-open TCP connection raises no error by itself; a query with a deadline does.
    const timer = setTimeout(() => this.lost(client, new Error('change feed heartbeat timed out')), Math.max(this.heartbeatMs, 3000));
    client.query('SELECT 1').then(
      () => clearTimeout(timer),
      (error: Error) => {
        clearTimeout(timer);
        this.lost(client, error);
      },
    );
  }

  private schedule(task: () => Promise<void>) {
    this.work = this.work.then(task).catch((error: unknown) => {
      this.logger.error({ err: error }, 'postgres: reading association changes failed');
      // Whatever was announced is still recorded: replay it on a fresh connection.
      const client = this.client;
      if (client) this.lost(client, error as Error);
    });
  }

  private async fetchPending() {
    if (this.pending.length === 0) return;
    const seqs = this.pending.filter((seq) => !this.seen.has(seq));
    this.pending = [];
    if (seqs.length === 0) return;
    const { rows } = await this.pool.query<ChangeRecord>(
      `SELECT seq::text AS seq, kind, association, (extract(epoch FROM changed_at) * 1000)::float8 AS at
         FROM association_changes WHERE seq = ANY($1::bigint[]) ORDER BY seq`,
      [seqs],
    );
    for (const row of rows) this.accept(Number(row.seq), row.at, { kind: row.kind, association: fromRow(row.association) });
  }

  private async replay(since: number) {
    const { rows } = await this.pool.query<ChangeRecord>(
      `SELECT seq::text AS seq, kind, association, (extract(epoch FROM changed_at) * 1000)::float8 AS at
         FROM association_changes WHERE changed_at >= to_timestamp($1::float8 / 1000) ORDER BY seq`,
      [since],
    );
    for (const row of rows) this.accept(Number(row.seq), row.at, { kind: row.kind, association: fromRow(row.association) });
  }

  private accept(seq: number, at: number, change: StoreChange) {
    if (this.seen.has(seq)) return;
    this.seen.set(seq, at);
    if (at > this.watermark) this.watermark = at;
    const key = `${change.association.clusterName}/${change.association.associationId}`;
    const newest = this.newest.get(key);
    if (newest && newest.seq > seq) return; // an older state of something already delivered newer
    this.newest.set(key, { seq, at });
    this.forget();
    this.emit(change);
  }

  /** Drops de-duplication state older than any replay can reach. */
  private forget() {
    if (this.seen.size < this.trimAt) return;
    const horizon = this.watermark - SEEN_WINDOW_MS;
    for (const [seq, at] of this.seen) if (at < horizon) this.seen.delete(seq);
    for (const [key, entry] of this.newest) if (entry.at < horizon) this.newest.delete(key);
    this.trimAt = Math.max(4096, this.seen.size * 2);
  }
}
