// The load of the agent scenarios (agent-storm, agent-footprint, agent-cold-start):
// distinct pod tokens minted with the dev signer, a warm control plane, and a
// separate load process that sends one GET /v1/credentials per token on an
// open-loop schedule and times each answer from its due time.
import { execFile } from 'node:child_process';
import type { DevSigner } from '../../src/dev/token-signer.js';
import { signRequest } from '../../src/lib/sigv4.js';
import { BENCH_NODE } from './control-plane.js';
import { coreSplit, onCores } from './cpus.js';
import { progress } from './report.js';

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
const { url, tokensFile, requestsFile, total: totalWanted, seconds, sockets, timeoutMs, fresh, preconnect } = JSON.parse(process.argv[1]);
const target = new URL(url);
// GETs with one token each, or raw requests (base64, one a line) sent in turn until \`total\`
const tokens = tokensFile ? readFileSync(tokensFile, 'utf8').split('\\n').filter(Boolean) : ['warm.up.token'];
const raws = requestsFile ? readFileSync(requestsFile, 'utf8').split('\\n').filter(Boolean).map((line) => Buffer.from(line, 'base64')) : undefined;
const total = raws ? totalWanted : tokens.length;
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
    /** opens connections up to maxSockets and resolves once all are connected: clients that keep theirs alive already hold them */
    preconnect() {
      return Promise.all(Array.from({ length: maxSockets - open }, () => new Promise((resolve) => {
        const conn = connection();
        conn.socket.once('connect', () => {
          idle.push(conn);
          resolve();
        });
      })));
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
const answerStatus = new Uint16Array(total);
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
  answerStatus[i] = status;
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
const prebuilt = raws ? Array.from({ length: total }, (_, i) => raws[i % raws.length]) : tokens.map((token) => request(target.host, token));
if (preconnect) await agent.preconnect();

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
// written in full before exiting: process.exit() would cut a long line on a pipe
process.stdout.write(JSON.stringify({
  sent: next,
  statuses, errors, withoutCredentials, firstFailure,
  distinctAccessKeyIds: accessKeyIds.size,
  latencies: Array.from(latencies, (ms) => Math.round(ms * 1000) / 1000),
  answerStatuses: Array.from(answerStatus),
  sendSeconds: (lastSentAt - start) / 1000,
  answerSeconds: (lastAnswerAt - start) / 1000,
  maxSendLag, socketsOpened: agent.opened, retriedAfterKeepAliveClose: agent.retried,
  cpuMs: (cpu.user + cpu.system) / 1000,
}) + '\\n', () => process.exit(0));
`;

export interface StormResult {
  sent: number;
  statuses: Record<string, number>;
  errors: number;
  /** 200 answers whose body lacked a credential field */
  withoutCredentials: number;
  firstFailure?: string;
  distinctAccessKeyIds: number;
  /** ms from due time to the answer's last byte, per request; null for a request that failed */
  latencies: (number | null)[];
  /** the HTTP status of each answer (0: none) */
  answerStatuses: number[];
  /** first due time → last request written */
  sendSeconds: number;
  /** first due time → last answer */
  answerSeconds: number;
  maxSendLag: number;
  socketsOpened: number;
  retriedAfterKeepAliveClose: number;
  cpuMs: number;
}

export interface StormSpec {
  /** where the requests go (the agent's credentials URL for tokens) */
  url: string;
  /** one token a line: a GET /v1/credentials each */
  tokensFile?: string;
  /** or raw HTTP/1.1 requests, base64 one a line, sent in turn `total` times */
  requestsFile?: string;
  total?: number;
  /** all requests are due within this many seconds, evenly paced */
  seconds: number;
  /** connections open at most */
  sockets: number;
  /** a request without an answer by then counts as failed */
  timeoutMs: number;
  /** a new connection per request (a pod's first call) */
  fresh: boolean;
  /** open all `sockets` connections before the first request is due (agents keep theirs alive) */
  preconnect?: boolean;
}

/** Runs the load process once (under withSplitCores, on the load's cores) and returns what it measured. */
export function storm(spec: StormSpec): Promise<StormResult> {
  const [command, args] = onCores(coreSplit()?.load, process.execPath, ['--input-type=module', '-e', STORM_DRIVER, JSON.stringify(spec)]);
  return new Promise((resolveStorm, reject) => {
    execFile(command, args, { maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`storm driver failed: ${stderr || error.message}`));
      else resolveStorm(JSON.parse(stdout.trim().split('\n').pop()!) as StormResult);
    });
  });
}

/** Sum of a metric's samples whose label set contains every `name="value"` given (Prometheus text format). */
export function sumSamples(text: string, metric: string, labels: string[] = []): number {
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

export async function scrape(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`);
  if (!res.ok) throw new Error(`${url}/metrics answered ${res.status}`);
  return res.text();
}

/** `count` tokens of pods `<podPrefix>-<i>`, spread over service accounts sa-0 … sa-<serviceAccounts − 1> of namespace bench. */
export async function mintTokens(signer: DevSigner, count: number, podPrefix: string, serviceAccounts: number): Promise<string[]> {
  const tokens: string[] = [];
  const batch = 100; // jose signs through WebCrypto, whose work runs off the main thread: batches use both cores
  for (let first = 0; first < count; first += batch) {
    const size = Math.min(batch, count - first);
    const minted = await Promise.all(
      Array.from({ length: size }, (_, k) => {
        const pod = first + k;
        return signer.mint({ namespace: 'bench', serviceAccount: `sa-${pod % serviceAccounts}`, podName: `${podPrefix}-${pod}` });
      }),
    );
    tokens.push(...minted);
    if (tokens.length % 2000 === 0 || tokens.length === count) progress(`minted ${tokens.length}/${count} ${podPrefix} tokens`);
  }
  return tokens;
}

/**
 * The control plane serves a whole cluster and is not JIT-cold when one
 * node's pods start: it answers AssumeRoleForPodIdentity for other pods
 * (16 at a time, straight from this process) before the storm is measured.
 */
export async function warmUpServer(apiUrl: string, tokens: string[]): Promise<void> {
  const url = new URL('/clusters/bench/assume-role-for-pod-identity', apiUrl);
  let next = 0;
  const worker = async () => {
    while (next < tokens.length) {
      const body = JSON.stringify({ token: tokens[next++] });
      const headers = await signRequest({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body }, { credentials: BENCH_NODE, region: 'us-east-1', service: 'eks-auth' });
      let res = await fetch(url, { method: 'POST', headers, body });
      // a JIT-cold server may shed a few (429, Retry-After): try those again after the delay, as the agent does
      for (let tries = 1; res.status === 429 && tries < 5; tries++) {
        await res.arrayBuffer();
        await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get('retry-after') ?? 1)));
        res = await fetch(url, { method: 'POST', headers, body });
      }
      if (res.status !== 200) throw new Error(`server warm-up: AssumeRoleForPodIdentity answered ${res.status}: ${await res.text()}`);
      await res.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}
