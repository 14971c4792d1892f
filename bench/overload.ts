// EKS Auth offered twice what it can serve: the built server (local issuer,
// one API worker, the shipped admission bounds) is first measured closed
// loop for its capacity with repeated tokens, then sent 2 × that rate, evenly
// paced (open loop) for
// BENCH_OVERLOAD_SECONDS. The load is shaped like agents' (bench/lib/storm-load.ts):
// 512 kept-alive connections, opened before the first request is due (agents
// hold theirs; a burst of new ones at a saturated listener would time the
// kernel's SYN retries, 1 s, not the server), one request in flight on each
// (no pipelining), each request timed from its due time. The server runs on a
// core of its own, the load on the other (bench/lib/cpus.ts).
// What it takes on must stay fast, what it refuses
// (429 ThrottlingException) must be refused at once, and nothing may wait
// for seconds. A run of the same load with shedding off (maxInFlight and
// maxQueueMs out of reach) is shown beside it: what queueing does instead.
// Run: npm run build && node --import tsx bench/overload.ts
// Knobs: BENCH_OVERLOAD_SECONDS (5), BENCH_OVERLOAD_FACTOR (2)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ASSUME_ROLE_PATH, closedLoop, signedRequests } from './lib/capacity.js';
import { createAssociations, startBenchServer } from './lib/control-plane.js';
import { describeSplit, withSplitCores } from './lib/cpus.js';
import { rawRequest } from './lib/paced-load.js';
import { stopProcess } from './lib/processes.js';
import { below, percentile, progress, round, type ScenarioResult } from './lib/report.js';
import { storm } from './lib/storm-load.js';
import { BENCH_ISSUER, BENCH_SERVICE_ACCOUNTS, tokenMinter } from './lib/tokens.js';

const SECONDS = Number(process.env.BENCH_OVERLOAD_SECONDS ?? 5);
const FACTOR = Number(process.env.BENCH_OVERLOAD_FACTOR ?? 2);
const PODS = 500;
const SOCKETS = 512;
const SHEDDING_OFF = { admission: { maxInFlight: 100_000, maxQueueMs: 60_000 } };

interface ByStatus {
  count: number;
  p99: number;
  max: number;
}

interface Offered {
  capacity: number;
  sent: number;
  /** answers by HTTP status */
  byStatus: Record<string, ByStatus>;
  /** requests that got no answer (client timeout of 10 s, or a closed connection) */
  failed: number;
  p50: number;
  p99: number;
  max: number;
  maxSendLag: number;
  loadCpuMs: number;
}

const NONE: ByStatus = { count: 0, p99: NaN, max: NaN };

async function offer(dir: string, jwksFile: string, tokens: string[], extraConfig: Record<string, unknown>, first: boolean): Promise<Offered> {
  let server: ChildProcess | undefined;
  try {
    const started = await startBenchServer(dir, { issuer: BENCH_ISSUER, jwksFile }, [], 1, undefined, extraConfig);
    server = started.process;
    if (first) await createAssociations(started.apiUrl, Array.from({ length: BENCH_SERVICE_ACCOUNTS }, (_, sa) => `sa-${sa}`));
    const requests = await signedRequests(started.apiUrl, tokens);
    await closedLoop(started.apiUrl, requests, server.pid!, { connections: 32, seconds: 2 });
    const { requestsPerSecond: capacity } = await closedLoop(started.apiUrl, requests, server.pid!, { connections: 32, seconds: 3 });
    const url = new URL(ASSUME_ROLE_PATH, started.apiUrl);
    const requestsFile = join(dir, 'requests.b64');
    writeFileSync(requestsFile, requests.map((r) => rawRequest('POST', url, r.headers, r.body).toString('base64')).join('\n'));
    const total = Math.round(capacity * FACTOR * SECONDS);
    const result = await storm({ url: url.href, requestsFile, total, seconds: SECONDS, sockets: SOCKETS, timeoutMs: 10_000, fresh: false, preconnect: true });
    const byStatus: Record<string, ByStatus> = {};
    const answered: number[] = [];
    for (const status of new Set(result.answerStatuses.filter((s) => s !== 0))) {
      const of = result.latencies.filter((ms, i): ms is number => ms !== null && result.answerStatuses[i] === status);
      byStatus[status] = { count: of.length, p99: percentile(of, 99), max: of.reduce((m, ms) => Math.max(m, ms), 0) };
      answered.push(...of);
    }
    return {
      capacity,
      sent: result.sent,
      byStatus,
      failed: result.errors,
      p50: percentile(answered, 50),
      p99: percentile(answered, 99),
      max: answered.reduce((m, ms) => Math.max(m, ms), 0),
      maxSendLag: result.maxSendLag,
      loadCpuMs: result.cpuMs,
    };
  } finally {
    await stopProcess(server);
  }
}

export function run(): Promise<ScenarioResult> {
  return withSplitCores(async (split) => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-overload-'));
    const minter = tokenMinter();
    const jwksFile = join(dir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify(minter.jwks));
    try {
      const tokens = await Promise.all(Array.from({ length: PODS }, (_, pod) => minter.mint(pod)));
      progress(`overload: shipped admission bounds, ${FACTOR} × capacity for ${SECONDS} s`);
      const shed = await offer(dir, jwksFile, tokens, {}, true);
      progress(`overload: shedding off, ${FACTOR} × capacity for ${SECONDS} s`);
      const queued = await offer(dir, jwksFile, tokens, SHEDDING_OFF, false);

      const ok = shed.byStatus['200'] ?? NONE;
      const refused = shed.byStatus['429'] ?? NONE;
      const others = Object.entries(shed.byStatus).filter(([s]) => s !== '200' && s !== '429');
      return {
        scenario: 'overload',
        description: `EKS Auth offered ${FACTOR} × its measured capacity (repeated tokens, one API worker) for ${SECONDS} s, open loop: shed with 429 vs queued`,
        figures: {
          'capacity, closed loop (req/s)': round(shed.capacity, 0),
          'offered (req/s)': round(shed.capacity * FACTOR, 0),
          'sent': shed.sent,
          'accepted (200) / refused (429) / other / no answer': `${ok.count} / ${refused.count} / ${others.map(([s, v]) => `${s}: ${v.count}`).join(', ') || 0} / ${shed.failed}`,
          'accepted: p99 / max (ms)': `${round(ok.p99, 2)} / ${round(ok.max, 2)}`,
          'refused: p99 / max (ms)': `${round(refused.p99, 2)} / ${round(refused.max, 2)}`,
          'all answers: p50 / p99 / max (ms)': `${round(shed.p50, 2)} / ${round(shed.p99, 2)} / ${round(shed.max, 2)}`,
          'client send lag max (ms)': round(shed.maxSendLag, 1),
        'load process CPU per request (µs)': round((shed.loadCpuMs * 1000) / shed.sent, 1),
          'shedding off: capacity / offered (req/s)': `${round(queued.capacity, 0)} / ${round(queued.capacity * FACTOR, 0)}`,
          'shedding off: answered / no answer': `${queued.sent - queued.failed} / ${queued.failed}`,
          'shedding off: p99 / max (ms)': `${round(queued.p99, 1)} / ${round(queued.max, 1)}`,
        },
        targets: [
          below('accepted requests p99 (ms)', ok.p99, 100),
          below('refused requests p99 (ms)', refused.p99, 10),
          below('slowest answer (ms)', shed.failed > 0 ? Infinity : shed.max, 1000),
        ],
        notes: [
          `Capacity is measured closed loop (32 kept-alive connections) right before, on the same process; then ${FACTOR} × that is sent evenly paced, each request timed from its due time, over ${SOCKETS} kept-alive connections opened beforehand with one request in flight on each (as agents send), a request due while all are busy waiting for the first one free.`,
        'A closed loop batches requests (32 ready in each turn of the loop): open loop, each arrives alone and costs more, so the open-loop capacity is lower (about 0.8 × here) and 2 × the closed-loop figure is about 2.5 × what the process serves.',
          `Cores: ${describeSplit(split)}.`,
        ],
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run().then((result) => console.log(JSON.stringify(result, null, 2)));
}
