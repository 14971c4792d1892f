// The consoles' live feeds merged through PostgreSQL, for several replicas on
// one database: each replica that serves a console publishes the decisions
// made in it (the display fields only, never a token or a key) with NOTIFY on
// one channel, in a batch every 250 ms, and hears every other replica's on the
// same dedicated connection. Past MAX_PER_BATCH decisions a batch carries only
// the count of the rest, so that the chart stays whole under load while the
// feed shows a sample. Best effort: what is published while a connection is
// down is not replayed (the audit trail keeps every decision; this is a live
// view).
import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { z } from 'zod';
import type { Logger } from '../lib/logger.js';
import type { DecisionFeed, RelayedDecision } from './feed.js';

const CHANNEL = 'pod_identity_console_decisions';
const FLUSH_MS = 250;
/** decisions relayed one by one per replica and batch (400 a second); the rest are counted */
const MAX_PER_BATCH = 100;
/** PostgreSQL refuses NOTIFY payloads of 8000 bytes or more */
const MAX_PAYLOAD_BYTES = 7900;
const HEARTBEAT_MS = 15_000;

const text = z.string().max(2048);
const relayedDecision = z.object({
  time: text,
  cluster: text,
  namespace: text.optional(),
  serviceAccount: text.optional(),
  pod: text.optional(),
  node: text.optional(),
  roleArn: text.optional(),
  outcome: z.enum(['allowed', 'denied', 'failed']),
  errorType: text.optional(),
  reason: text.optional(),
  requestId: text,
  replica: text,
  worker: z.number().int().nonnegative().optional(),
});
const count = z.number().int().nonnegative();
const message = z.object({
  /** the publishing process (its own messages come back to it, and are skipped) */
  from: z.string(),
  d: z.array(relayedDecision),
  /** decisions past the batch's limit: counted, not listed */
  more: z.object({ issued: count, refused: count }).optional(),
});

type RelayMessage = z.infer<typeof message>;

export interface Uncounted {
  issued: number;
  refused: number;
}

/** One batch as NOTIFY payloads, each under PostgreSQL's limit; the count of the rest rides on the last. */
export function packBatch(from: string, decisions: readonly RelayedDecision[], more: Uncounted): string[] {
  const payloads: string[] = [];
  const encode = (d: readonly RelayedDecision[], withMore: boolean) => JSON.stringify({ from, d, ...(withMore && (more.issued || more.refused) && { more }) });
  let chunk: RelayedDecision[] = [];
  for (const decision of decisions) {
    if (chunk.length > 0 && Buffer.byteLength(encode([...chunk, decision], true)) > MAX_PAYLOAD_BYTES) {
      payloads.push(encode(chunk, false));
      chunk = [];
    }
    // a decision alone over the limit (field values are bounded, but not that far) is dropped
    if (Buffer.byteLength(encode([decision], true)) <= MAX_PAYLOAD_BYTES) chunk.push(decision);
  }
  if (chunk.length > 0 || more.issued || more.refused) payloads.push(encode(chunk, true));
  return payloads;
}

/** A payload from the channel, unless it is unreadable or this process's own. */
export function readBatch(payload: string, self: string): RelayMessage | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch {
    return undefined;
  }
  const result = message.safeParse(parsed);
  return result.success && result.data.from !== self ? result.data : undefined;
}

export interface ReplicaRelayOptions {
  databaseUrl: string;
  feed: DecisionFeed;
  logger: Logger;
}

export class ReplicaRelay {
  /** this process on the channel */
  private readonly id = randomUUID();
  private client: Client | undefined;
  private stopped = false;
  private pending: RelayedDecision[] = [];
  private uncounted: Uncounted = { issued: 0, refused: 0 };
  private flushing = false;
  private reconnectDelayMs = 100;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly flushTimer: NodeJS.Timeout;
  private readonly heartbeatTimer: NodeJS.Timeout;
  private readonly unsubscribe: () => void;

  /** Starts relaying at once; connects in the background and keeps reconnecting. */
  constructor(private readonly options: ReplicaRelayOptions) {
    this.unsubscribe = options.feed.subscribeLocal(({ seq: _seq, ...decision }) => {
      if (this.pending.length < MAX_PER_BATCH) this.pending.push(decision);
      else if (decision.outcome === 'allowed') this.uncounted.issued++;
      else this.uncounted.refused++;
    });
    this.flushTimer = setInterval(() => void this.flush(), FLUSH_MS).unref();
    this.heartbeatTimer = setInterval(() => this.heartbeat(), HEARTBEAT_MS).unref();
    void this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe();
    clearInterval(this.flushTimer);
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }

  private async connect(): Promise<void> {
    const client = new Client({ connectionString: this.options.databaseUrl, connectionTimeoutMillis: 5000, keepAlive: true, application_name: 'pod-identity-console' });
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client));
    client.on('notification', (note) => {
      if (note.channel !== CHANNEL || !note.payload) return;
      const batch = readBatch(note.payload, this.id);
      if (!batch) return;
      for (const decision of batch.d) this.options.feed.addRelayed(decision);
      if (batch.more) this.options.feed.countRelayed(batch.more.issued, batch.more.refused);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (error) {
      client.removeAllListeners('end');
      await client.end().catch(() => {});
      this.options.logger.warn({ err: error, retryInMs: this.reconnectDelayMs }, 'console: cannot reach PostgreSQL to merge the replicas’ feeds; retrying');
      this.scheduleReconnect();
      return;
    }
    if (this.stopped) {
      await client.end().catch(() => {});
      return;
    }
    this.client = client;
    this.reconnectDelayMs = 100;
    this.options.logger.info('console: merging the replicas’ live feeds through PostgreSQL');
  }

  private lost(client: Client, error?: Error): void {
    if (this.stopped || this.client !== client) return;
    this.client = undefined;
    this.options.logger.warn({ err: error }, 'console: the replicas’ feed connection was lost; reconnecting');
    client.end().catch(() => {});
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    this.reconnectTimer = setTimeout(() => void this.connect(), this.reconnectDelayMs).unref();
    this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, 5000);
  }

  private heartbeat(): void {
    const client = this.client;
    if (!client) return;
    // a half-open connection raises no error by itself; a query with a deadline does
    const timer = setTimeout(() => this.lost(client, new Error('heartbeat timed out')), 5000);
    client.query('SELECT 1').then(
      () => clearTimeout(timer),
      (error: Error) => {
        clearTimeout(timer);
        this.lost(client, error);
      },
    );
  }

  /** Publishes what was decided here since the last batch (dropped while disconnected: this is a live view). */
  private async flush(): Promise<void> {
    if (this.flushing || (this.pending.length === 0 && !this.uncounted.issued && !this.uncounted.refused)) return;
    const decisions = this.pending;
    const more = this.uncounted;
    this.pending = [];
    this.uncounted = { issued: 0, refused: 0 };
    const client = this.client;
    if (!client) return;
    this.flushing = true;
    try {
      for (const payload of packBatch(this.id, decisions, more)) await client.query('SELECT pg_notify($1, $2)', [CHANNEL, payload]);
    } catch (error) {
      this.lost(client, error as Error);
    } finally {
      this.flushing = false;
    }
  }
}
