// Prometheus metrics. Each process owns one registry, passed as an option
// (no global state), and serves it on its metrics listener.
import type { Server } from 'node:http';
import { sendText } from './http.js';
import { http } from './node-http.js';
import { collectProcessMetrics, Counter, Gauge, Registry } from './prometheus.js';
import { VERSION } from './version.js';

/**
 * A process's registry: prom-client's default metrics under their standard
 * names (`process_*`, `nodejs_*`, so stock Node.js dashboards work) and
 * `pod_identity_build_info`. A server's API workers each have one too; the
 * primary adds theirs to its own (the build info counted once).
 */
export function createRegistry(component: 'server' | 'agent'): Registry {
  const registry = new Registry();
  collectProcessMetrics(registry);
  new Gauge({
    name: 'pod_identity_build_info',
    help: 'Always 1: the version and the component (server or agent) of this process',
    labelNames: ['version', 'component'],
    aggregator: 'first',
    registers: [registry],
  }).set({ version: VERSION, component }, 1);
  return registry;
}

export interface HotCounter {
  /** counts one event with these label values, in labelNames order */
  add(...values: string[]): void;
}

/** A node of a hot counter's tree of label values: its children by the next value, and the count of the series ending here. */
interface LabelNode {
  children: Map<string, LabelNode>;
  labels?: Record<string, string>;
  count: number;
}

/**
 * A counter for hot paths: `add(...labelValues)` bumps a plain number, and the
 * sums reach prom-client only when /metrics is scraped (a labelled inc()
 * hashes its labels on every call). Series are found through one small map
 * per label, so a request's label values are never joined into a new key.
 */
export function hotCounter<L extends string>(registry: Registry, options: { name: string; help: string; labelNames: readonly L[] }): HotCounter {
  const root: LabelNode = { children: new Map(), count: 0 };
  const series: LabelNode[] = [];
  new Counter({
    ...options,
    registers: [registry],
    collect() {
      for (const entry of series) {
        if (entry.count === 0) continue;
        this.inc(entry.labels as Partial<Record<L, string>>, entry.count);
        entry.count = 0;
      }
    },
  });
  return {
    add(...values) {
      let node = root;
      for (let i = 0; i < options.labelNames.length; i++) {
        const value = values[i] ?? '';
        let child = node.children.get(value);
        if (!child) node.children.set(value, (child = { children: new Map(), count: 0 }));
        node = child;
      }
      if (!node.labels) {
        node.labels = Object.fromEntries(options.labelNames.map((name, i) => [name, values[i] ?? '']));
        series.push(node);
      }
      node.count++;
    },
  };
}

export interface HotHistogram {
  /** records one observation for this label value */
  observe(labelValue: string, value: number): void;
}

/**
 * A histogram with one label, for hot paths: `observe` adds to plain numbers
 * (prom-client's hashes its labels and looks up its bucket by a number turned
 * into a property name, several µs a request under load). It is registered
 * as a metric of its own, answering what prom-client's Histogram answers, so
 * the text format and the workers' aggregation treat it as one.
 */
export function hotHistogram(registry: Registry, options: { name: string; help: string; labelName: string; buckets: readonly number[] }): HotHistogram {
  const bounds = [...options.buckets].sort((a, b) => a - b);
  /** per label value: observations per bucket (the last one +Inf), their sum and count */
  const series = new Map<string, { counts: number[]; sum: number; count: number }>();
  const metric = {
    name: options.name,
    help: options.help,
    type: 'histogram',
    aggregator: 'sum',
    async get() {
      const values = [];
      for (const [labelValue, s] of series) {
        const labels = { [options.labelName]: labelValue };
        let cumulative = 0;
        for (let i = 0; i < bounds.length; i++) {
          cumulative += s.counts[i]!;
          values.push({ labels: { le: bounds[i]!, ...labels }, value: cumulative, metricName: `${options.name}_bucket` });
        }
        values.push(
          { labels: { le: '+Inf', ...labels }, value: s.count, metricName: `${options.name}_bucket` },
          { labels, value: s.sum, metricName: `${options.name}_sum` },
          { labels, value: s.count, metricName: `${options.name}_count` },
        );
      }
      return { name: options.name, help: options.help, type: 'histogram', values, aggregator: 'sum' };
    },
    reset() {
      series.clear();
    },
  };
  registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
  return {
    observe(labelValue, value) {
      let s = series.get(labelValue);
      if (!s) series.set(labelValue, (s = { counts: new Array<number>(bounds.length + 1).fill(0), sum: 0, count: 0 }));
      let i = 0;
      while (i < bounds.length && value > bounds[i]!) i++;
      s.counts[i]!++;
      s.sum += value;
      s.count++;
    },
  };
}

/** What /metrics serves: a registry, or the primary's aggregate of its workers' registries. */
export interface MetricsSource {
  metrics(): Promise<string>;
  contentType: string;
}

/** What keeps the process from being ready, one line each; none when it is ready. */
export type ReadinessCheck = () => Promise<readonly string[]> | readonly string[];

function readinessText(problems: readonly string[]): string {
  return problems.length === 0 ? 'ok\n' : `not ready:\n${problems.map((p) => `- ${p}\n`).join('')}`;
}

/** /metrics, /healthz (process alive) and /readyz (the given check; its problems are the body of a 503). */
export function createMetricsServer(source: MetricsSource, ready: ReadinessCheck): Server {
  return http.createServer((req, res) => {
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
          (problems) => sendText(res, problems.length === 0 ? 200 : 503, readinessText(problems)),
          (error: unknown) => sendText(res, 503, readinessText([`readiness check failed: ${(error as Error).message}`])),
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
