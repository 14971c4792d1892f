// The shared store for several server replicas: PostgreSQL through a `pg`
// pool. Same rules as the SQLite store (one association per (cluster,
// namespace, serviceAccount), request tokens written in the same transaction
// as the association they made). Its schema is migrations.ts; a trigger there
// records every row change and NOTIFYs it, so change-feed.ts hears every
// change, whichever replica (or psql) made it.
import { Pool, type PoolClient } from 'pg';
import type { Association } from '../../../api/eks.js';
import type { Logger } from '../../../lib/logger.js';
import { silentLogger } from '../../../lib/logger.js';
import type { AssociationStore, ListQuery, RequestTokenRecord, StoreChange } from '../../store.js';
import { StoreWriteError, SubjectTakenError } from '../../store.js';
import { applyChanges, type AssociationChanges, type Subject } from '../../types.js';
import { isWireError } from '../../../lib/errors.js';
import { ChangeFeed, type ChangeMark } from './change-feed.js';
import { importAssociations, type ImportResult } from './import.js';
import { migratePostgres } from './migrations.js';
import { COLUMN_COUNT, COLUMNS, fromRow, isSubjectViolation, NAMESPACE_PATTERN, SERVICE_ACCOUNT_PATTERN, toParams, type Row } from './rows.js';

/** Connection-level failures after which a pooled client must not be reused. */
/** PostgreSQL's codes for a write that lacks space (disk_full) or permission (a read-only transaction, e.g. a standby). */
function storeWriteError(error: unknown): StoreWriteError | undefined {
  const code = (error as { code?: unknown }).code;
  if (code === '53100') return new StoreWriteError('disk full', { cause: error });
  if (code === '25006') return new StoreWriteError('read-only', { cause: error });
  return undefined;
}

function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: string }).code ?? '';
  return !/^[0-9A-Z]{5}$/.test(code) || code.startsWith('08') || code.startsWith('57P');
}

/** Reads the change the trigger just recorded in this transaction. Only call after a DML that touched exactly one row. */
async function lastChange(client: PoolClient): Promise<ChangeMark> {
  const { rows } = await client.query<{ seq: string; at: number }>(
    `SELECT seq::text AS seq, (extract(epoch FROM changed_at) * 1000)::float8 AS at FROM association_changes
      WHERE seq = currval(pg_get_serial_sequence('association_changes', 'seq'))`,
  );
  return { seq: Number(rows[0]!.seq), at: rows[0]!.at };
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
        await client.query(`INSERT INTO associations (${COLUMNS}) VALUES (${Array.from({ length: COLUMN_COUNT }, (_, i) => `$${i + 1}`).join(', ')})`, toParams(association));
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

  async findCandidates(subject: Subject) {
    const { rows } = await this.pool.query<Row>(
      // the exact row, the namespace's service-account patterns, the cluster's namespace patterns: three index seeks
      `SELECT * FROM associations WHERE cluster_name = $1 AND namespace = $2 AND service_account = $3
       UNION ALL SELECT * FROM associations WHERE cluster_name = $1 AND namespace = $2 AND ${SERVICE_ACCOUNT_PATTERN}
       UNION ALL SELECT * FROM associations WHERE cluster_name = $1 AND ${NAMESPACE_PATTERN}`,
      [subject.clusterName, subject.namespace, subject.serviceAccount],
    );
    return rows.map(fromRow);
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
      const next = applyChanges(fromRow(rows[0]), changes);
      await client.query(
        `UPDATE associations SET role_arn = $3, disable_session_tags = $4, target_role_arn = $5, external_id = $6, policy = $7, modified_at = $8, tags = $9,
            session_tags = $10, session_name_template = $11, transitive_session_tags = $12
          WHERE cluster_name = $1 AND association_id = $2`,
        [
          clusterName,
          associationId,
          next.roleArn,
          next.disableSessionTags,
          next.targetRoleArn ?? null,
          next.externalId ?? null,
          next.policy ?? null,
          next.modifiedAt,
          JSON.stringify(next.tags),
          next.sessionTags ? JSON.stringify(next.sessionTags) : null,
          next.sessionNameTemplate ?? null,
          next.transitiveSessionTags !== false,
        ],
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
   * `pod-identity migrate`, in one transaction (import.ts).
   */
  async importAssociations(associations: Association[]): Promise<ImportResult> {
    return this.transaction((client) => importAssociations(client, associations));
  }

  onChange(listener: (change: StoreChange) => void) {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  async countByCluster() {
    const { rows } = await this.pool.query<{ cluster_name: string; n: string }>('SELECT cluster_name, count(*) AS n FROM associations GROUP BY cluster_name');
    return Object.fromEntries(rows.map((r) => [r.cluster_name, Number(r.n)]));
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
      // Our own refusals (a taken subject, a tag limit) leave the connection as good as it was.
      broken = isConnectionError(error) && !(error instanceof SubjectTakenError) && !isWireError(error);
      if (!broken) await client.query('ROLLBACK').catch(() => (broken = true));
      throw storeWriteError(error) ?? error;
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
