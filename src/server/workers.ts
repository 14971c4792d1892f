// API workers. One Node process answers on one core, so with `workers` above
// 1 the server forks that many processes (node:cluster) behind the one API
// listener. The primary keeps what must run once (webhook, CRD sync, the
// metrics listener) and coordinates the workers:
//   - relays SQLite store changes between processes, so every cache hears of
//     every change (PostgreSQL notifies each connection itself);
//   - gathers the workers' metrics for /metrics;
//   - hears the workers' EKS Auth decisions, for the console's live feed
//     (only when the console is on: otherwise no decision crosses the channel);
//   - restarts a worker that dies, and drains them all on shutdown.
// Each worker enforces its share of the configured throttles, because the
// primary hands connections out in turn: each to the first worker that is
// free (Node's round-robin), so a burst of connections arriving in one
// instant can split unevenly. A worker re-runs the primary's
// command line (`pod-identity server …`, cli/server.ts), so it reads the same
// configuration, and goes on as a worker because node:cluster marks it one.
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import { relayChanges, type RelayedStore } from '../associations/change-relay.js';
import { openStore } from '../associations/open-store.js';
import type { AssociationStore, StoreChange } from '../associations/store.js';
import { AuditLog, type AuditEntry } from '../lib/audit.js';
import type { Logger } from '../lib/logger.js';
import { isDecisionRecord } from '../console/decisions.js';
import { createRegistry } from '../lib/metrics.js';
import { startApiListener, type ApiListener } from './api-listener.js';
import type { ServerConfig } from '../config/schema.js';

type Metrics = MetricObjectWithValues<MetricValue<string>>[];

type ToPrimary =
  | { t: 'listening'; url: string }
  | { t: 'failed'; message: string }
  | { t: 'change'; change: StoreChange }
  | { t: 'metrics'; id: number; metrics: Metrics }
  | { t: 'decision'; record: AuditEntry };
type ToWorker = { t: 'change'; change: StoreChange } | { t: 'metrics'; id: number } | { t: 'stop' };

/** Our messages travel under this key, apart from other IPC on the same channel (prom-client's, Node's own). */
const KEY = 'podIdentity';
/** A dead worker is replaced after 1 s; each failed attempt in a row doubles that, up to 30 s. */
const RESTART_DELAY_MS = 1000;
const MAX_RESTART_DELAY_MS = 30_000;
const METRICS_TIMEOUT_MS = 2000;
/** How long a stopping worker may take to drain before it is killed. */
const STOP_TIMEOUT_MS = 15_000;

function unwrap<T>(message: unknown): T | undefined {
  return typeof message === 'object' && message !== null && KEY in message ? ((message as Record<string, unknown>)[KEY] as T) : undefined;
}

function toWorker(worker: Worker, message: ToWorker): void {
  if (worker.isConnected()) worker.send({ [KEY]: message });
}

function toPrimary(message: ToPrimary): void {
  if (process.connected) process.send?.({ [KEY]: message });
}

export function workerCount(setting: number | 'auto', cores = availableParallelism()): number {
  return setting === 'auto' ? cores : setting;
}

/** One worker's config: each enforces 1/workers of every throttle's rate and burst. */
export function workerConfig(config: ServerConfig, workers: number): ServerConfig {
  if (workers <= 1) return config;
  const share = (limit: { rate: number; burst: number }) => ({ rate: limit.rate / workers, burst: Math.max(1, Math.ceil(limit.burst / workers)) });
  const { perCluster, perServiceAccount } = config.throttle;
  return {
    ...config,
    throttle: {
      ...(perCluster && { perCluster: share(perCluster) }),
      ...(perServiceAccount && { perServiceAccount: share(perServiceAccount) }),
    },
  };
}

/** SQLite's change feed stays in its own process, so with workers it is relayed; PostgreSQL notifies every connection itself. */
function relayIfLocal(config: ServerConfig, store: AssociationStore, send: (change: StoreChange) => void): RelayedStore | undefined {
  return config.databaseUrl ? undefined : relayChanges(store, send);
}

export interface ApiWorkerOptions {
  logger: Logger;
  /** the primary's store; wrapped in a change relay when it is SQLite */
  store: AssociationStore;
  /** hears each EKS Auth decision record a worker makes, with the worker's id (workers send them only when the console is on) */
  onDecision?: (record: AuditEntry, worker: number) => void;
}

/** The primary's side: forks, supervises, relays and stops the API workers. */
export class ApiWorkers {
  /** the store the primary's own parts use: hears the workers' changes */
  readonly store: AssociationStore;
  private readonly relay?: RelayedStore;
  private readonly listening = new Set<Worker>();
  private readonly metricsRequests = new Map<number, { results: Metrics[]; waiting: number; done: (results: Metrics[]) => void }>();
  private nextRequestId = 0;
  private failedRestarts = 0;
  private closing = false;
  private url = '';

  constructor(
    config: ServerConfig,
    private readonly count: number,
    private readonly options: ApiWorkerOptions,
  ) {
    this.relay = relayIfLocal(config, options.store, (change) => this.broadcast(change));
    this.store = this.relay ?? options.store;
  }

  /** Forks every worker and resolves with the API listener's URL once all listen; stops them all if one cannot. */
  async start(): Promise<string> {
    try {
      await Promise.all(Array.from({ length: this.count }, () => this.fork()));
    } catch (error) {
      await this.close();
      throw error;
    }
    this.options.logger.info({ workers: this.count }, 'API workers listening');
    return this.url;
  }

  /** Ready while at least one worker listens: a worker being replaced lowers capacity, not availability. */
  ready(): boolean {
    return !this.closing && this.listening.size > 0;
  }

  /** Each live worker's metrics, as JSON; a worker that does not answer within 2 s is left out. */
  workerMetrics(): Promise<Metrics[]> {
    const workers = [...this.listening];
    if (workers.length === 0) return Promise.resolve([]);
    const id = ++this.nextRequestId;
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(this.metricsRequests.get(id)?.results ?? []), METRICS_TIMEOUT_MS);
      const finish = (results: Metrics[]) => {
        clearTimeout(timer);
        this.metricsRequests.delete(id);
        resolve(results);
      };
      this.metricsRequests.set(id, { results: [], waiting: workers.length, done: finish });
      for (const worker of workers) toWorker(worker, { t: 'metrics', id });
    });
  }

  /** Asks every worker to drain and waits for it to exit (killing it after STOP_TIMEOUT_MS). */
  async close(): Promise<void> {
    this.closing = true;
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => worker.process.kill('SIGKILL'), STOP_TIMEOUT_MS);
            worker.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            toWorker(worker, { t: 'stop' });
          }),
      ),
    );
  }

  private fork(): Promise<void> {
    const worker = cluster.fork();
    return new Promise((resolve, reject) => {
      let started = false;
      worker.on('message', (message: unknown) => {
        const m = unwrap<ToPrimary>(message);
        if (m?.t === 'listening') {
          started = true;
          this.url = m.url;
          this.listening.add(worker);
          resolve();
        } else if (m?.t === 'failed') {
          reject(new Error(m.message));
        } else {
          this.onMessage(worker, m);
        }
      });
      worker.once('exit', (code, signal) => {
        this.listening.delete(worker);
        if (!started) {
          reject(new Error(`API worker ${worker.id} exited (${signal ?? `code ${code}`}) before it listened`));
          return;
        }
        if (this.closing) return;
        this.options.logger.error({ worker: worker.id, code, signal }, 'API worker died; starting a new one');
        this.scheduleRestart();
      });
    });
  }

  private restartDelay(): number {
    return Math.min(MAX_RESTART_DELAY_MS, RESTART_DELAY_MS * 2 ** this.failedRestarts);
  }

  private scheduleRestart(): void {
    setTimeout(() => {
      if (this.closing) return;
      this.fork().then(
        () => {
          this.failedRestarts = 0;
        },
        (error: unknown) => {
          this.failedRestarts++;
          this.options.logger.error({ err: error, retryInMs: this.restartDelay() }, 'API worker failed to start; trying again');
          this.scheduleRestart();
        },
      );
    }, this.restartDelay());
  }

  private onMessage(from: Worker, m: ToPrimary | undefined): void {
    if (m?.t === 'change') {
      this.relay?.receive(m.change);
      this.broadcast(m.change, from);
    } else if (m?.t === 'decision') {
      this.options.onDecision?.(m.record, from.id);
    } else if (m?.t === 'metrics') {
      const request = this.metricsRequests.get(m.id);
      if (!request) return;
      request.results.push(m.metrics);
      if (--request.waiting === 0) request.done(request.results);
    }
  }

  private broadcast(change: StoreChange, except?: Worker): void {
    for (const worker of this.listening) if (worker !== except) toWorker(worker, { t: 'change', change });
  }
}

/**
 * The worker's side: the API listener on its own store connection and
 * registry, until the primary says stop or goes away. Signals are the
 * primary's to handle (a terminal's Ctrl-C reaches every process of the group).
 */
export async function runApiWorker(config: ServerConfig, rootLogger: Logger): Promise<void> {
  const logger = rootLogger.child({ worker: cluster.worker?.id });
  const registry = createRegistry('server');
  // what has started so far, for stop() at any point of start-up
  const started: { relay?: RelayedStore; store?: AssociationStore; api?: ApiListener; audit?: AuditLog } = {};

  // Listening for the primary comes first, so a stop sent during start-up is not lost.
  let stopping = false;
  const stop = (code = 0) => {
    if (stopping) return;
    stopping = true;
    Promise.resolve(started.api?.close())
      .then(() => started.audit?.close())
      .then(() => started.store?.close())
      .then(
        () => process.exit(code),
        (error: unknown) => {
          logger.error({ err: error }, 'API worker shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => stop());
  process.on('disconnect', () => stop());
  process.on('message', (message: unknown) => {
    const m = unwrap<ToWorker>(message);
    if (m?.t === 'change') started.relay?.receive(m.change);
    else if (m?.t === 'stop') stop();
    else if (m?.t === 'metrics') {
      registry.getMetricsAsJSON().then(
        (metrics) => toPrimary({ t: 'metrics', id: m.id, metrics }),
        () => toPrimary({ t: 'metrics', id: m.id, metrics: [] }),
      );
    }
  });

  const opened = await openStore(config, logger);
  started.relay = relayIfLocal(config, opened, (change) => toPrimary({ t: 'change', change }));
  started.store = started.relay ?? opened;
  const audit = (started.audit = new AuditLog(logger, config.audit.file));
  // the console runs in the primary: it sees this worker's decisions only if they are sent there
  if (config.consoleListen) audit.subscribe((record) => isDecisionRecord(record) && toPrimary({ t: 'decision', record }));
  try {
    started.api = await startApiListener(workerConfig(config, workerCount(config.workers)), { store: started.store, logger, registry, audit });
  } catch (error) {
    toPrimary({ t: 'failed', message: `API listener ${config.listen}: ${(error as Error).message}` });
    stop(1);
    return;
  }
  toPrimary({ t: 'listening', url: started.api.url });
}
