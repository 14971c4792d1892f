// The change feed that keeps every replica's in-memory caches (webhook, EKS
// Auth) current: LISTEN on one dedicated connection for the sequence numbers
// the trigger announces, fetch those changes through the pool and hand them
// on once each, in order; after a lost connection, reconnect and replay the
// recorded changes that may have been missed.
import { Client, type Pool } from 'pg';
import type { StoreChange } from '../../store.js';
import type { Logger } from '../../../lib/logger.js';
import { CHANNEL } from './migrations.js';
import { fromRow, type Row } from './rows.js';

/** Which change row a write produced: its sequence and its time on the database's clock. */
export interface ChangeMark {
  seq: number;
  at: number;
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
export class ChangeFeed {
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
