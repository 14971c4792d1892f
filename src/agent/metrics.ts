// The agent's Prometheus metrics, and the event hooks that feed them into the
// cache, the upstream and the handler.
import { hotCounter, hotHistogram } from '../lib/metrics.js';
import { Counter, Gauge, Histogram, type Registry } from '../lib/prometheus.js';
import type { CacheEvents } from './cache.js';
import type { UpstreamEvents } from './upstream.js';

export interface ResponseCounter {
  /** counts one response with this HTTP status, answered `seconds` after the request arrived */
  count(status: number, seconds: number): void;
}

export interface AgentMetrics {
  responses: ResponseCounter;
  cache: CacheEvents;
  upstream: UpstreamEvents;
  /** reports the number of cached entries, and of tokens waiting for their first answer, when scraped */
  watchCache(cache: { readonly size: number; readonly pendingCount: number }): void;
}

export function createAgentMetrics(registry: Registry): AgentMetrics {
  const registers = [registry];
  // The two counters touched by every request are tallied as plain numbers
  // and handed to prom-client when scraped (hotCounter).
  const responses = hotCounter(registry, { name: 'pod_identity_agent_responses_total', help: 'Responses of the credentials endpoint by HTTP status', labelNames: ['code'] });
  const latency = hotHistogram(registry, {
    name: 'pod_identity_agent_request_duration_seconds',
    help: 'Time from a pod\'s credentials request to the agent\'s answer, by HTTP status',
    labelName: 'code',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });
  const hits = hotCounter(registry, { name: 'pod_identity_agent_cache_hits_total', help: 'Requests answered from the cache', labelNames: [] });
  const misses = new Counter({ name: 'pod_identity_agent_cache_misses_total', help: 'Requests that needed an upstream call', registers });
  const stale = new Counter({ name: 'pod_identity_agent_cache_stale_served_total', help: 'Requests served older, still valid credentials because upstream failed or was slow', registers });
  const evictions = new Counter({ name: 'pod_identity_agent_cache_evictions_total', help: 'Cache entries dropped, by reason', labelNames: ['reason'], registers });
  const refreshes = new Counter({ name: 'pod_identity_agent_cache_refreshes_total', help: 'Background refreshes, by outcome', labelNames: ['outcome'], registers });
  const upstreamLatency = new Histogram({
    name: 'pod_identity_agent_upstream_request_duration_seconds',
    help: 'EKS Auth call latency per attempt, by outcome',
    labelNames: ['outcome'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
    registers,
  });
  const upstreamErrors = new Counter({ name: 'pod_identity_agent_upstream_errors_total', help: 'Failed EKS Auth attempts, by error code (timeout, network or the EKS Auth error type)', labelNames: ['code'], registers });
  let watched = { size: 0, pendingCount: 0 };
  new Gauge({
    name: 'pod_identity_agent_cache_entries',
    help: 'Credentials currently cached',
    registers,
    collect() {
      this.set(watched.size);
    },
  });
  new Gauge({
    name: 'pod_identity_agent_cache_pending_tokens',
    help: 'Tokens waiting for their first EKS Auth answer (kept apart from cached credentials)',
    registers,
    collect() {
      this.set(watched.pendingCount);
    },
  });

  return {
    responses: {
      count(status, seconds) {
        const code = String(status);
        responses.add(code);
        latency.observe(code, seconds);
      },
    },
    cache: {
      hit: () => {
        hits.add();
      },
      miss: () => misses.inc(),
      stale: () => stale.inc(),
      evicted: (reason) => evictions.inc({ reason }),
      refreshed: (outcome) => refreshes.inc({ outcome }),
    },
    upstream: {
      attempt(outcome, seconds) {
        upstreamLatency.observe({ outcome }, seconds);
        if (outcome !== 'ok') upstreamErrors.inc({ code: outcome });
      },
    },
    watchCache(cache) {
      watched = cache;
    },
  };
}
