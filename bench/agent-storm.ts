// Node agent, cold-start storm and memory: 10,000 distinct pods (one token
// each, spread over 100 associated service accounts) ask ONE freshly started
// agent for credentials within 10 s, evenly paced (open loop); then the
// agent's resident memory is read with all of them cached, and every token is
// asked for once more (replay: all must come from the cache).
//
// Setup as in bench/agent.ts: a real `pod-identity server` (local issuer, dev
// token signer, audit records at info as in production) and a real
// `pod-identity agent` process with its shipped flags, except
// --max-cache-size, raised to the number of tokens (the default, 2000, would
// evict most of the storm). The server is warmed up first with calls for
// other pods (a control plane serving a cluster is not JIT-cold); the agent
// is not. Tokens are minted before the storm (timed, not counted) and handed
// to the load process through a temp file.
//
// The load process (its own `node`, neither the bench nor the agent) sends
// request i at start + i·interval whatever earlier answers are doing, and
// times each answer from that due time, so its own lag counts against the
// agent. Pods are separate clients, so requests are not squeezed over a few
// connections: a due request takes an idle kept-alive connection or opens a
// new one, up to 256 (BENCH_STORM_SOCKETS); only past that does it wait for
// the first one free (pipelining over a few sockets would let one slow answer
// delay the next ones). With BENCH_STORM_FRESH_CONNECTIONS=1 every request
// opens its own connection instead, as each pod's SDK does on its first call.
//
// "Upstream calls" are the AssumeRoleForPodIdentity requests the server
// counted (its /metrics, all statuses), before vs after; the agent's own
// attempt counter is shown beside it.
//
//   npm run build && node --import tsx bench/agent-storm.ts
//   knobs (defaults): BENCH_STORM_TOKENS=10000 BENCH_STORM_SECONDS=10 BENCH_STORM_SERVICE_ACCOUNTS=100
//     BENCH_STORM_SOCKETS=256 BENCH_STORM_FRESH_CONNECTIONS=0 BENCH_STORM_SERVER_WARM_UP=2000 BENCH_STORM_SETTLE_SECONDS=3
//   BENCH_STORM_AGENT_NODE_ARGS / BENCH_STORM_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEV_ISSUER, openDevSigner, type DevSigner } from '../src/dev/token-signer.js';
import { signRequest } from '../src/lib/sigv4.js';
import { BENCH_NODE, createAssociations, nodeArgsFrom, startBenchAgent, startBenchServer } from './lib/control-plane.js';
import { cpuMs, cpuSplitMs, rssMiB, stopProcess } from './lib/processes.js';
import { atLeast, below, percentile, progress, round, type ScenarioResult, type Target } from './lib/report.js';

const TOKENS = Number(process.env.BENCH_STORM_TOKENS ?? 10_000);
const SECONDS = Number(process.env.BENCH_STORM_SECONDS ?? 10);
const SERVICE_ACCOUNTS = Number(process.env.BENCH_STORM_SERVICE_ACCOUNTS ?? 100);
const SOCKETS = Number(process.env.BENCH_STORM_SOCKETS ?? 256);
/** a new connection per request instead of a kept-alive pool */
const FRESH_CONNECTIONS = process.env.BENCH_STORM_FRESH_CONNECTIONS === '1';
/** AssumeRoleForPodIdentity calls sent straight to the server before the storm, with other pods' tokens */
const SERVER_WARM_UP = Number(process.env.BENCH_STORM_SERVER_WARM_UP ?? 2000);
const RATE = TOKENS / SECONDS;
/** the agent's shipped per-listener limit (--rate-limit, --rate-limit-burst) */
const AGENT_RATE_LIMIT = 1000;
/** quiet time before reading resident memory: in-flight buffers freed, a GC or two done */
const SETTLE_MS = Number(process.env.BENCH_STORM_SETTLE_SECONDS ?? 3) * 1000;
/** a request without an answer by then counts as failed */
const REQUEST_TIMEOUT_MS = 10_000;

/**
 * The load process: one GET per token, request i due at start + i·interval;
 * prints one JSON line (StormResult). A pool of kept-alive connections with
 * one request in flight on each, like separate clients: a due request takes
 * an idle connection, or opens a new one while fewer than `sockets` are open,
 * or else waits for the first one free (still timed from its due time).
 * Written on node:net with prebuilt request bytes rather than node:http: an
 * open-loop node:http client costs about 330 µs of CPU per request here at
 * 1,000/s (measured alone), this one about 170 µs, and the load process
 * shares the machine's two cores with the agent and the server.
 */
const STORM_DRIVER = `
import { connect } from 'node:net';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
const { url, tokensFile, seconds, sockets, timeoutMs, fresh } = JSON.parse(process.argv[1]);
const target = new URL(url);
const tokens = readFileSync(tokensFile, 'utf8').split('\\n').filter(Boolean);
const total = tokens.length;
const interval = (seconds * 1000) / total;
const request = (host, token) => Buffer.from('GET ' + target.pathname + ' HTTP/1.1\\r\\nhost: ' + host + '\\r\\nauthorization: ' + token + '\\r\\n\\r\\n', 'latin1');

/**
 * A pool of up to maxSockets connections to host:port; answer(i, status, body)
 * or failed(i, message) once per sent request. fresh: a new connection for
 * every request, closed after its answer (a pod's first call).
 */
function client(host, port, maxSockets, answer, failed, fresh = false) {
  const idle = [];
  const waiting = [];
  let waitingHead = 0;
  let open = 0;
  let opened = 0;
  let retried = 0;
  const requests = [];
  const dispatch = (conn, i) => {
    conn.index = i;
    conn.timer = setTimeout(() => fail(conn, 'no answer within ' + timeoutMs + ' ms'), timeoutMs);
    conn.socket.write(requests[i]);
  };
  const retire = (conn) => {
    conn.closed = true;
    open--;
    conn.socket.destroy();
    const at = idle.indexOf(conn);
    if (at >= 0) idle.splice(at, 1);
  };
  const release = (conn) => {
    if (fresh) {
      retire(conn);
      if (waitingHead < waiting.length) dispatch(connection(), waiting[waitingHead++]);
    } else if (waitingHead < waiting.length) dispatch(conn, waiting[waitingHead++]);
    else idle.push(conn);
  };
  const fail = (conn, message) => {
    if (conn.closed) return;
    retire(conn);
    if (conn.index >= 0) {
      clearTimeout(conn.timer);
      // A kept-alive connection the agent closed (its 5 s idle timeout) just as
      // a request went out on it: resend once on a new one, as HTTP clients do.
      if (conn.answered > 0 && !conn.buffer) {
        retried++;
        dispatch(connection(), conn.index);
        conn.index = -1;
        return;
      }
      failed(conn.index, message);
      conn.index = -1;
    }
    if (waitingHead < waiting.length) dispatch(connection(), waiting[waitingHead++]);
  };
  const connection = () => {
    open++;
    opened++;
    const conn = { socket: connect(port, host), buffer: null, index: -1, timer: undefined, closed: false, answered: 0 };
    conn.socket.setNoDelay(true);
    conn.socket.on('data', (data) => {
      const buffer = (conn.buffer = conn.buffer ? Buffer.concat([conn.buffer, data]) : data);
      const headEnd = buffer.indexOf('\\r\\n\\r\\n');
      if (headEnd < 0) return;
      const head = buffer.latin1Slice(0, headEnd);
      const length = /\\r\\ncontent-length: *(\\d+)/i.exec(head);
      if (!length) return fail(conn, 'answer without content-length');
      const end = headEnd + 4 + Number(length[1]);
      if (buffer.length < end) return;
      conn.buffer = null;
      const i = conn.index;
      conn.index = -1;
      clearTimeout(conn.timer);
      conn.answered++;
      answer(i, Number(head.slice(9, 12)), buffer.subarray(headEnd + 4, end));
      if (/\\r\\nconnection: *close/i.test(head)) fail(conn, 'closed by the agent');
      else release(conn);
    });
    conn.socket.on('error', (error) => fail(conn, error.message));
    conn.socket.on('close', () => fail(conn, 'connection closed'));
    return conn;
  };
  return {
    send(i, bytes) {
      requests[i] = bytes;
      const conn = idle.pop() ?? (open < maxSockets ? connection() : undefined);
      if (conn) dispatch(conn, i);
      else waiting.push(i);
    },
    get opened() { return opened; },
    get retried() { return retried; },
    close() { for (const conn of idle) { conn.closed = true; conn.socket.destroy(); } },
  };
}

// Warm this process's own code on a local server first, so the load
// generator's cold JIT is not counted against the agent.
{
  const body = JSON.stringify({ AccessKeyId: 'A', SecretAccessKey: 'S', Token: 'T'.repeat(400), AccountId: '1', Expiration: 'E' });
  const local = createServer((req, res) => res.end(body)).listen(0, '127.0.0.1');
  await new Promise((resolve) => local.once('listening', resolve));
  const { port } = local.address();
  let left = 3000;
  let warmed;
  const warm = client('127.0.0.1', port, 32, (i, status, answer) => {
    JSON.parse(answer.toString());
    if (--left === 0) warmed();
  }, () => {});
  await new Promise((resolve) => {
    warmed = resolve;
    for (let i = 0; i < left; i++) warm.send(i, request('127.0.0.1:' + port, tokens[0]));
  });
  warm.close();
  local.close();
  local.closeAllConnections();
}

const latencies = new Float64Array(total).fill(NaN);
const statuses = {};
const accessKeyIds = new Set();
let errors = 0, withoutCredentials = 0, finished = 0, maxSendLag = 0, lastAnswerAt = 0, lastSentAt = 0, firstFailure;
let done;
const allDone = new Promise((resolve) => (done = resolve));
const cpuBefore = process.cpuUsage();
let start = 0;
const settle = () => {
  if (++finished === total) done();
};
const agent = client(target.hostname, Number(target.port), sockets, (i, status, body) => {
  const now = performance.now();
  lastAnswerAt = now;
  latencies[i] = now - (start + i * interval);
  statuses[status] = (statuses[status] ?? 0) + 1;
  if (status !== 200) {
    firstFailure ??= status + ' ' + body.toString().slice(0, 300);
  } else {
    try {
      const c = JSON.parse(body.toString());
      if (c.AccessKeyId && c.SecretAccessKey && c.Token && c.Expiration) accessKeyIds.add(c.AccessKeyId);
      else withoutCredentials++;
    } catch {
      withoutCredentials++;
    }
  }
  settle();
}, (i, message) => {
  errors++;
  firstFailure ??= message;
  settle();
}, fresh);
const prebuilt = tokens.map((token) => request(target.host, token));

start = performance.now();
let next = 0;
const pacer = setInterval(() => {
  const now = performance.now();
  const dueCount = Math.min(total, Math.floor((now - start) / interval) + 1);
  while (next < dueCount) {
    maxSendLag = Math.max(maxSendLag, now - (start + next * interval));
    agent.send(next, prebuilt[next]);
    next++;
  }
  if (next === total) {
    lastSentAt = now;
    clearInterval(pacer);
  }
}, 1);
await allDone;
agent.close();
const cpu = process.cpuUsage(cpuBefore);
console.log(JSON.stringify({
  sent: next,
  statuses, errors, withoutCredentials, firstFailure,
  distinctAccessKeyIds: accessKeyIds.size,
  latencies: Array.from(latencies, (ms) => Math.round(ms * 1000) / 1000),
  sendSeconds: (lastSentAt - start) / 1000,
  answerSeconds: (lastAnswerAt - start) / 1000,
  maxSendLag, socketsOpened: agent.opened, retriedAfterKeepAliveClose: agent.retried,
  cpuMs: (cpu.user + cpu.system) / 1000,
}));
process.exit(0);
`;

interface StormResult {
  sent: number;
  statuses: Record<string, number>;
  errors: number;
  /** 200 answers whose body lacked a credential field */
  withoutCredentials: number;
  firstFailure?: string;
  distinctAccessKeyIds: number;
  /** ms from due time to the answer's last byte, per request; null for a request that failed */
  latencies: (number | null)[];
  /** first due time → last request written */
  sendSeconds: number;
  /** first due time → last answer */
  answerSeconds: number;
  maxSendLag: number;
  socketsOpened: number;
  retriedAfterKeepAliveClose: number;
  cpuMs: number;
}

function storm(url: string, tokensFile: string): Promise<StormResult> {
  const spec = { url, tokensFile, seconds: SECONDS, sockets: SOCKETS, timeoutMs: REQUEST_TIMEOUT_MS, fresh: FRESH_CONNECTIONS };
  return new Promise((resolveStorm, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', STORM_DRIVER, JSON.stringify(spec)], { maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`storm driver failed: ${stderr || error.message}`));
      else resolveStorm(JSON.parse(stdout.trim().split('\n').pop()!) as StormResult);
    });
  });
}

/** Sum of a metric's samples whose label set contains every `name="value"` given (Prometheus text format). */
function sumSamples(text: string, metric: string, labels: string[] = []): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(metric)) continue;
    const rest = line.slice(metric.length);
    const labelEnd = rest.startsWith('{') ? rest.indexOf('}') + 1 : 0;
    if (labelEnd === 0 && !rest.startsWith(' ')) continue;
    if (!labels.every((label) => rest.slice(0, labelEnd).includes(label))) continue;
    sum += Number(rest.slice(labelEnd).trim().split(' ')[0]);
  }
  return sum;
}

async function scrape(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`);
  if (!res.ok) throw new Error(`${url}/metrics answered ${res.status}`);
  return res.text();
}

/** What the server and the agent counted so far. */
async function counters(serverMetricsUrl: string, agentMetricsUrl: string) {
  const [server, agent] = await Promise.all([scrape(serverMetricsUrl), scrape(agentMetricsUrl)]);
  const assume = ['operation="AssumeRoleForPodIdentity"'];
  return {
    upstreamCalls: sumSamples(server, 'pod_identity_api_requests_total', assume),
    serverSeconds: sumSamples(server, 'pod_identity_api_request_duration_seconds_sum', assume),
    agentAttempts: sumSamples(agent, 'pod_identity_agent_upstream_request_duration_seconds_count'),
    agentAttemptSeconds: sumSamples(agent, 'pod_identity_agent_upstream_request_duration_seconds_sum'),
    agentUpstreamErrors: sumSamples(agent, 'pod_identity_agent_upstream_errors_total'),
    cacheHits: sumSamples(agent, 'pod_identity_agent_cache_hits_total'),
    cacheMisses: sumSamples(agent, 'pod_identity_agent_cache_misses_total'),
    cacheEntries: sumSamples(agent, 'pod_identity_agent_cache_entries'),
    evictions: sumSamples(agent, 'pod_identity_agent_cache_evictions_total'),
  };
}

/** The agent's own view of its memory (prom-client default metrics): where resident memory goes. */
async function agentMemory(agentMetricsUrl: string) {
  const text = await scrape(agentMetricsUrl);
  const mib = (metric: string) => sumSamples(text, metric) / 2 ** 20;
  return { heapUsed: mib('nodejs_heap_size_used_bytes'), heapTotal: mib('nodejs_heap_size_total_bytes'), external: mib('nodejs_external_memory_bytes') };
}

/** Highest resident memory of a process while `during` runs, sampled every 100 ms. */
async function peakRss<T>(pid: number, during: Promise<T>): Promise<{ result: T; peakMiB: number }> {
  let peakMiB = rssMiB(pid);
  const sampler = setInterval(() => {
    peakMiB = Math.max(peakMiB, rssMiB(pid));
  }, 100);
  try {
    return { result: await during, peakMiB };
  } finally {
    clearInterval(sampler);
  }
}

async function mintTokens(signer: DevSigner, count: number, podPrefix: string): Promise<string[]> {
  const tokens: string[] = [];
  const batch = 100; // jose signs through WebCrypto, whose work runs off the main thread: batches use both cores
  for (let first = 0; first < count; first += batch) {
    const size = Math.min(batch, count - first);
    const minted = await Promise.all(
      Array.from({ length: size }, (_, k) => {
        const pod = first + k;
        return signer.mint({ namespace: 'bench', serviceAccount: `sa-${pod % SERVICE_ACCOUNTS}`, podName: `${podPrefix}-${pod}` });
      }),
    );
    tokens.push(...minted);
    if (tokens.length % 2000 === 0 || tokens.length === count) progress(`agent-storm: minted ${tokens.length}/${count} ${podPrefix} tokens`);
  }
  return tokens;
}

/**
 * The control plane serves a whole cluster and is not JIT-cold when one
 * node's pods start: it answers AssumeRoleForPodIdentity for other pods
 * (16 at a time, straight from this process) before the storm is measured.
 */
async function warmUpServer(apiUrl: string, tokens: string[]): Promise<void> {
  const url = new URL('/clusters/bench/assume-role-for-pod-identity', apiUrl);
  let next = 0;
  const worker = async () => {
    while (next < tokens.length) {
      const body = JSON.stringify({ token: tokens[next++] });
      const headers = await signRequest({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body }, { credentials: BENCH_NODE, region: 'us-east-1', service: 'eks-auth' });
      const res = await fetch(url, { method: 'POST', headers, body });
      if (res.status !== 200) throw new Error(`server warm-up: AssumeRoleForPodIdentity answered ${res.status}: ${await res.text()}`);
      await res.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

/** p-th percentile latency of the requests due in each second, in order: where in the storm the slow ones were. */
function perSecond(latencies: (number | null)[], p: number): string {
  const perRequestMs = (SECONDS * 1000) / latencies.length;
  const seconds: number[][] = [];
  latencies.forEach((ms, i) => {
    if (ms !== null) (seconds[Math.floor((i * perRequestMs) / 1000)] ??= []).push(ms);
  });
  return seconds.map((list) => round(percentile(list, p), 0)).join(', ');
}

/** Latency figures of one storm, and how many requests got role credentials. */
function summarize(label: string, r: StormResult) {
  const latencies = r.latencies.filter((ms): ms is number => ms !== null);
  const ok = r.statuses['200'] ?? 0;
  const max = latencies.length ? latencies.reduce((m, ms) => Math.max(m, ms), 0) : NaN;
  return {
    ok: ok - r.withoutCredentials,
    max,
    figures: {
      [`${label}: answered 200 with credentials`]: ok - r.withoutCredentials,
      [`${label}: other answers (status: count)`]: Object.entries(r.statuses).filter(([s]) => s !== '200').map(([s, n]) => `${s}: ${n}`).join(', ') || 'none',
      [`${label}: client errors and timeouts`]: r.errors ? `${r.errors} (first: ${r.firstFailure ?? '?'})` : 0,
      [`${label}: requests resent after a kept-alive connection closed`]: r.retriedAfterKeepAliveClose,
      [`${label}: distinct AccessKeyIds handed out`]: r.distinctAccessKeyIds,
      [`${label}: requests sent within (s)`]: round(r.sendSeconds, 2),
      [`${label}: requests/s achieved (answers / first due → last answer)`]: round(latencies.length / r.answerSeconds, 0),
      [`${label}: p50 (ms)`]: round(percentile(latencies, 50), 2),
      [`${label}: p90 (ms)`]: round(percentile(latencies, 90), 2),
      [`${label}: p99 (ms)`]: round(percentile(latencies, 99), 2),
      [`${label}: max (ms)`]: round(max, 2),
      [`${label}: p99 by second of due time (ms)`]: perSecond(r.latencies, 99),
      [`${label}: client send lag max (ms)`]: round(r.maxSendLag, 2),
      [`${label}: client sockets opened`]: r.socketsOpened,
      [`${label}: load process CPU per request (µs)`]: round((r.cpuMs * 1000) / Math.max(1, r.sent), 0),
    },
  };
}

function equals(metric: string, value: number, expected: number): Target {
  return { metric, value, target: `= ${expected}`, met: value === expected };
}

export async function run(): Promise<ScenarioResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-agent-storm-'));
  const children: ChildProcess[] = [];
  try {
    const signer = await openDevSigner(join(dir, 'signer'));
    progress(`agent-storm: minting ${TOKENS} tokens (${TOKENS} pods over ${SERVICE_ACCOUNTS} service accounts) with the dev signer`);
    const mintStarted = performance.now();
    const tokens = await mintTokens(signer, TOKENS, 'storm-pod');
    const mintSeconds = (performance.now() - mintStarted) / 1000;
    const warmUpTokens = await mintTokens(signer, SERVER_WARM_UP, 'warm-up-pod');
    const tokensFile = join(dir, 'tokens.txt');
    writeFileSync(tokensFile, tokens.join('\n'));

    progress(`agent-storm: starting server, ${SERVICE_ACCOUNTS} associations, agent`);
    const server = await startBenchServer(dir, { issuer: DEV_ISSUER, jwksFile: signer.jwksFile }, nodeArgsFrom('BENCH_STORM_SERVER_NODE_ARGS'));
    children.push(server.process);
    await createAssociations(server.apiUrl, Array.from({ length: SERVICE_ACCOUNTS }, (_, sa) => `sa-${sa}`));
    const apiUrl = server.apiUrl;
    if (SERVER_WARM_UP > 0) {
      progress(`agent-storm: warming the server up with ${SERVER_WARM_UP} AssumeRoleForPodIdentity calls for other pods`);
      await warmUpServer(apiUrl, warmUpTokens);
    }

    const agentFlags = ['--max-cache-size', String(Math.max(2000, TOKENS))];
    // The shipped limit (1,000 req/s, burst 1,000) is left alone unless a knob asks for more than it allows.
    if (RATE > AGENT_RATE_LIMIT) agentFlags.push('--rate-limit', String(Math.ceil(RATE * 2)), '--rate-limit-burst', String(Math.ceil(RATE * 2)));
    const { process: agent, credentialsUrl: agentUrl, metricsUrl: agentMetricsUrl } = await startBenchAgent(apiUrl, agentFlags, nodeArgsFrom('BENCH_STORM_AGENT_NODE_ARGS'));
    children.push(agent);
    const serverMetricsUrl = server.metricsUrl;

    await new Promise((r) => setTimeout(r, 1000));
    const idleRss = rssMiB(agent.pid!);
    const idleMemory = await agentMemory(agentMetricsUrl);
    const before = await counters(serverMetricsUrl, agentMetricsUrl);
    const agentCpuBefore = cpuSplitMs(agent.pid!);
    const serverCpuBefore = cpuSplitMs(server.process.pid!);
    const loadBefore = loadavg()[0]!;

    progress(`agent-storm: storm — ${TOKENS} distinct tokens in ${SECONDS} s (${round(RATE, 0)} req/s evenly paced) through one cold agent`);
    const { result: cold, peakMiB } = await peakRss(agent.pid!, storm(agentUrl, tokensFile));
    const since = (before: { user: number; system: number }, now: { user: number; system: number }) => ({ user: now.user - before.user, system: now.system - before.system });
    const agentSplit = since(agentCpuBefore, cpuSplitMs(agent.pid!));
    const serverSplit = since(serverCpuBefore, cpuSplitMs(server.process.pid!));
    const agentCpu = agentSplit.user + agentSplit.system;
    const serverCpu = serverSplit.user + serverSplit.system;
    const afterStorm = await counters(serverMetricsUrl, agentMetricsUrl);
    const loadAfter = loadavg()[0]!;

    progress(`agent-storm: settling ${SETTLE_MS / 1000} s, then reading the agent's resident memory`);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const cachedRss = rssMiB(agent.pid!);
    const cachedMemory = await agentMemory(agentMetricsUrl);
    const cachedEntries = (await counters(serverMetricsUrl, agentMetricsUrl)).cacheEntries;

    progress(`agent-storm: replay — the same ${TOKENS} tokens again at the same pace (all from the cache)`);
    const replayCpuBefore = cpuMs(agent.pid!);
    const replay = await storm(agentUrl, tokensFile);
    const replayCpu = cpuMs(agent.pid!) - replayCpuBefore;
    const afterReplay = await counters(serverMetricsUrl, agentMetricsUrl);

    const upstreamCalls = afterStorm.upstreamCalls - before.upstreamCalls;
    const replayUpstreamCalls = afterReplay.upstreamCalls - afterStorm.upstreamCalls;
    const stormSummary = summarize('storm', cold);
    const replaySummary = summarize('replay', replay);
    const cachedMB = cachedRss * 1.048576;
    if (stormSummary.ok === 0) throw new Error(`no request got credentials; first failure: ${cold.firstFailure ?? 'none recorded'}`);

    return {
      scenario: 'agent-storm',
      description: `agent cold-start storm: ${TOKENS} distinct pod tokens (${SERVICE_ACCOUNTS} service accounts) in ${SECONDS} s through one freshly started agent${FRESH_CONNECTIONS ? ', a new connection per request' : ''}, then its memory with all cached, then a replay from the cache`,
      figures: {
        'tokens minted before the storm (not counted): time (s)': round(mintSeconds, 1),
        'tokens minted: ms per token (batches of 100)': round((mintSeconds * 1000) / TOKENS, 3),
        ...stormSummary.figures,
        'storm: upstream calls (server AssumeRoleForPodIdentity count)': upstreamCalls,
        'storm: upstream attempts counted by the agent': afterStorm.agentAttempts - before.agentAttempts,
        'storm: upstream errors counted by the agent': afterStorm.agentUpstreamErrors - before.agentUpstreamErrors,
        'storm: cache misses / hits': `${afterStorm.cacheMisses - before.cacheMisses} / ${afterStorm.cacheHits - before.cacheHits}`,
        'storm: mean upstream call seen by the agent (ms)': round((1000 * (afterStorm.agentAttemptSeconds - before.agentAttemptSeconds)) / Math.max(1, afterStorm.agentAttempts - before.agentAttempts), 2),
        'storm: mean AssumeRoleForPodIdentity time inside the server (ms)': round((1000 * (afterStorm.serverSeconds - before.serverSeconds)) / Math.max(1, upstreamCalls), 2),
        'storm: agent CPU, user + system (ms)': `${agentSplit.user} + ${agentSplit.system}`,
        'storm: agent CPU per cold request (µs)': round((agentCpu * 1000) / TOKENS, 0),
        'storm: server CPU, user + system (ms)': `${serverSplit.user} + ${serverSplit.system}`,
        'storm: server CPU per request (µs)': round((serverCpu * 1000) / Math.max(1, upstreamCalls), 0),
        'agent RSS idle, right after start (MiB)': round(idleRss, 1),
        'agent RSS peak during the storm (MiB)': round(peakMiB, 1),
        [`agent RSS with ${cachedEntries} cached entries, ${SETTLE_MS / 1000} s after the storm (MiB)`]: round(cachedRss, 1),
        'agent RSS per cached entry (KiB, (cached − idle) / entries)': round(((cachedRss - idleRss) * 1024) / Math.max(1, cachedEntries), 2),
        'agent V8 heap used / heap total / external, idle (MiB)': `${round(idleMemory.heapUsed, 1)} / ${round(idleMemory.heapTotal, 1)} / ${round(idleMemory.external, 1)}`,
        'agent V8 heap used / heap total / external, cached (MiB)': `${round(cachedMemory.heapUsed, 1)} / ${round(cachedMemory.heapTotal, 1)} / ${round(cachedMemory.external, 1)}`,
        'cache evictions during storm and replay': afterReplay.evictions - before.evictions,
        ...replaySummary.figures,
        'replay: upstream calls': replayUpstreamCalls,
        'replay: agent CPU per request (µs)': round((replayCpu * 1000) / TOKENS, 0),
        'load average (1 min) before / after the storm': `${round(loadBefore, 2)} / ${round(loadAfter, 2)}`,
      },
      targets: [
        atLeast('storm: requests answered 200 with credentials', stormSummary.ok, TOKENS),
        equals('storm: upstream calls (one per distinct token)', upstreamCalls, TOKENS),
        below('storm: slowest request (ms)', stormSummary.max, 1000),
        below(`agent resident memory with ${cachedEntries} cached entries (MB)`, cachedMB, 100),
        atLeast('replay: requests answered 200 from the cache', replaySummary.ok, TOKENS),
        equals('replay: upstream calls', replayUpstreamCalls, 0),
      ],
      notes: [
        `Load from a separate process: request i is due at start + i·${round(1000 / RATE, 3)} ms whatever earlier answers do (open loop), and timed from that due time to its answer's last byte; ${FRESH_CONNECTIONS ? 'a new connection per request (a pod\'s first call)' : `kept-alive connections, one request in flight on each, a new one opened whenever all are busy, up to ${SOCKETS}`}.`,
        `The server answered ${SERVER_WARM_UP} AssumeRoleForPodIdentity calls for other pods before the storm (warm, as a control plane serving a cluster is); the agent starts cold.`,
        `The agent runs with its shipped flags except --max-cache-size ${Math.max(2000, TOKENS)} (default 2000: a storm of ${TOKENS} pods would evict most of its entries and re-call upstream on their next refresh).`,
        'Upstream calls are the AssumeRoleForPodIdentity requests counted by the server (all statuses); each cold request costs one SigV4-signed call, which the server verifies (SigV4, RS256 token, association, local issuer, audit record at info).',
        'CPU figures are user+system time from /proc over the storm (10 ms ticks): they do not depend on what else the machine runs.',
        `Resident memory is VmRSS of the agent process; MB = 10^6 bytes (MiB × 1.048576) for the target.`,
      ],
    };
  } finally {
    for (const child of children.reverse()) await stopProcess(child);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run().then((result) => console.log(JSON.stringify(result, null, 2)));
}
