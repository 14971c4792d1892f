// Prometheus metrics. Each process owns one registry, passed as an option
// (no global state), and serves it on its metrics listener.
import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Registry } from 'prom-client';
import { sendText } from './http.js';

export function createRegistry(prefix: string, defaultLabels: Record<string, string> = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels(defaultLabels);
  collectDefaultMetrics({ register: registry, prefix });
  return registry;
}

export interface HotCounter {
  /** counts one event with these label values, in labelNames order */
  add(...values: string[]): void;
}

/**
 * A counter for hot paths: `add(...labelValues)` bumps a plain number, and the
 * sums reach prom-client only when /metrics is scraped (a labelled inc()
 * hashes its labels on every call).
 */
export function hotCounter<L extends string>(registry: Registry, options: { name: string; help: string; labelNames: readonly L[] }): HotCounter {
  const pending = new Map<string, { labels: Record<string, string>; count: number }>();
  new Counter({
    ...options,
    registers: [registry],
    collect() {
      for (const entry of pending.values()) {
        if (entry.count === 0) continue;
        this.inc(entry.labels as Partial<Record<L, string>>, entry.count);
        entry.count = 0;
      }
    },
  });
  return {
    add(...values) {
      const key = values.join('\u0000');
      const entry = pending.get(key);
      if (entry) entry.count++;
      else pending.set(key, { labels: Object.fromEntries(options.labelNames.map((name, i) => [name, values[i] ?? ''])), count: 1 });
    },
  };
}

/** What /metrics serves: a registry, or the primary's aggregate of its workers' registries. */
export interface MetricsSource {
  metrics(): Promise<string>;
  contentType: string;
}

export type ReadinessCheck = () => Promise<boolean> | boolean;

/** /metrics, /healthz (process alive) and /readyz (the given check). */
export function createMetricsServer(source: MetricsSource, ready: ReadinessCheck): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendText(res, 405, 'method not allowed\n');
      return;
    }
    if (path === '/healthz') {
      sendText(res, 200, 'ok\n');
    } else if (path === '/readyz') {
      Promise.resolve()
        .then(ready)
        .then(
          (ok) => sendText(res, ok ? 200 : 503, ok ? 'ok\n' : 'not ready\n'),
          () => sendText(res, 503, 'not ready\n'),
        );
    } else if (path === '/metrics') {
      source.metrics().then(
        (text) => sendText(res, 200, text, source.contentType),
        () => sendText(res, 500, 'metrics unavailable\n'),
      );
    } else {
      sendText(res, 404, 'not found\n');
    }
  });
}
