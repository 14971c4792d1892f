// Evenly paced, open-loop HTTP/1.1 load, run as its own process:
//   node --import tsx bench/lib/paced-load.ts '<json PacedLoadSpec>'
// One request is due every 1000/rate ms; whatever is due is written at once,
// round-robin over kept-alive connections (pipelined when an answer is late),
// so a slow answer never holds back the next request (open loop: no
// coordinated omission). Each latency runs from the write to the last byte of
// the answer; how far writes fell behind their due time (the client's timer
// granularity and stalls) is reported beside it as maxSendLag.
// Requests are prebuilt raw bytes (the client does no signing or encoding
// while it runs); answers are parsed only as far as status and
// Content-Length. Prints one JSON line: PacedLoadResult.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface PacedLoadSpec {
  host: string;
  port: number;
  rate: number;
  seconds: number;
  connections: number;
  /** pause between opening one connection and the next (ms); default 0 */
  connectGapMs?: number;
  /** a file with one base64-encoded raw HTTP/1.1 request per line, used in turn (cycled when fewer than needed) */
  requestsFile: string;
}

export interface PacedLoadResult {
  sent: number;
  answered: number;
  non2xx: number;
  /** requests without an answer 5 s after the last was due */
  unanswered: number;
  achievedRate: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  /** the furthest a write fell behind its due time (ms): the client's own lag */
  maxSendLag: number;
  /** this load generator's own CPU per answered request (µs): what it took from the machine */
  loaderCpuMicros: number;
  /** the answers by HTTP status: how many, and their latency p99 and max (ms) */
  byStatus: Record<string, { count: number; p99: number; max: number }>;
}

interface Connection {
  socket: Socket;
  /** write times of the requests still waiting for an answer, oldest first */
  due: number[];
  buffer: Buffer;
}

const HEAD_END = Buffer.from('\r\n\r\n');
const LENGTH_HEADERS = [Buffer.from('\r\ncontent-length:'), Buffer.from('\r\nContent-Length:')];

/** The Content-Length of the answer whose head ends at `headEnd` (0 when absent). */
function contentLength(buffer: Buffer, headEnd: number): number {
  for (const name of LENGTH_HEADERS) {
    const at = buffer.indexOf(name);
    if (at < 0 || at > headEnd) continue;
    let value = 0;
    for (let i = at + name.length; i < headEnd; i++) {
      const c = buffer[i]!;
      if (c === 32) continue;
      if (c < 48 || c > 57) break;
      value = value * 10 + (c - 48);
    }
    return value;
  }
  return 0;
}

function percentileOf(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

async function main(spec: PacedLoadSpec): Promise<PacedLoadResult> {
  const requests = readFileSync(spec.requestsFile, 'utf8').split('\n').filter(Boolean).map((line) => Buffer.from(line, 'base64'));
  const total = Math.round(spec.rate * spec.seconds);
  const latencies = new Float64Array(total);
  const statuses = new Uint16Array(total);
  let answered = 0;
  let non2xx = 0;
  let lastAnswerAt = 0;

  // Parses as many complete answers as the buffer holds, reading bytes in
  // place: allocating strings per answer would make this process's own
  // garbage collection show up as server latency.
  const onAnswer = (conn: Connection) => {
    for (;;) {
      const headEnd = conn.buffer.indexOf(HEAD_END);
      if (headEnd < 0) return;
      const end = headEnd + 4 + contentLength(conn.buffer, headEnd);
      if (conn.buffer.length < end) return;
      const status = (conn.buffer[9]! - 48) * 100 + (conn.buffer[10]! - 48) * 10 + (conn.buffer[11]! - 48);
      if (status < 200 || status > 299) non2xx++;
      lastAnswerAt = performance.now();
      statuses[answered] = status;
      latencies[answered++] = lastAnswerAt - conn.due.shift()!;
      conn.buffer = conn.buffer.subarray(end);
    }
  };

  // One after another, `connectGapMs` apart: clients connect over time. (A
  // server with API workers hands each new connection to the first worker
  // that is free: 64 connections in one instant split unevenly, 56/44 here.)
  const connections: Connection[] = [];
  for (let i = 0; i < spec.connections; i++) {
    if (i > 0 && spec.connectGapMs) await new Promise((r) => setTimeout(r, spec.connectGapMs));
    connections.push(
      await new Promise<Connection>((resolve, reject) => {
        const socket = connect(spec.port, spec.host, () => resolve(conn));
        const conn: Connection = { socket, due: [], buffer: Buffer.alloc(0) };
        socket.setNoDelay(true);
        socket.on('data', (data: Buffer) => {
          conn.buffer = conn.buffer.length ? Buffer.concat([conn.buffer, data]) : data;
          onAnswer(conn);
        });
        socket.once('error', reject);
      }),
    );
  }

  const interval = 1000 / spec.rate;
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  let sent = 0;
  let maxSendLag = 0;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now();
      const dueCount = Math.min(total, Math.floor((now - start) / interval) + 1);
      while (sent < dueCount) {
        maxSendLag = Math.max(maxSendLag, now - (start + sent * interval));
        const conn = connections[sent % connections.length]!;
        conn.due.push(now);
        conn.socket.write(requests[sent % requests.length]!);
        sent++;
      }
      if (sent === total) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
  const waitUntil = performance.now() + 5000;
  while (answered < total && performance.now() < waitUntil) await new Promise((r) => setTimeout(r, 20));
  const elapsed = (lastAnswerAt - start) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  for (const conn of connections) conn.socket.destroy();
  const byStatus: PacedLoadResult['byStatus'] = {};
  for (const status of new Set(statuses.subarray(0, answered))) {
    const of = latencies.subarray(0, answered).filter((_ms, i) => statuses[i] === status).sort();
    byStatus[status] = { count: of.length, p99: percentileOf(of, 99), max: of[of.length - 1]! };
  }
  const sorted = latencies.subarray(0, answered).sort();
  return {
    byStatus,
    sent,
    answered,
    non2xx,
    unanswered: total - answered,
    achievedRate: answered / elapsed,
    p50: percentileOf(sorted, 50),
    p90: percentileOf(sorted, 90),
    p99: percentileOf(sorted, 99),
    p999: percentileOf(sorted, 99.9),
    max: answered ? sorted[answered - 1]! : NaN,
    maxSendLag,
    loaderCpuMicros: (cpu.user + cpu.system) / Math.max(1, answered),
  };
}

/** The raw bytes of one HTTP/1.1 request (keep-alive). */
export function rawRequest(method: string, url: URL, headers: Record<string, string>, body = ''): Buffer {
  const lines = [`${method} ${url.pathname}${url.search} HTTP/1.1`, `host: ${url.host}`];
  for (const [name, value] of Object.entries(headers)) if (name.toLowerCase() !== 'host') lines.push(`${name}: ${value}`);
  if (body && !Object.keys(headers).some((n) => n.toLowerCase() === 'content-length')) lines.push(`content-length: ${Buffer.byteLength(body)}`);
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), Buffer.from(body)]);
}

/** Runs the paced load in its own process against `url`'s host and port. */
export function pacedLoad(url: URL, requests: Buffer[], options: { rate: number; seconds: number; connections: number; connectGapMs?: number }): Promise<PacedLoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-paced-'));
  const requestsFile = join(dir, 'requests.b64');
  writeFileSync(requestsFile, requests.map((r) => r.toString('base64')).join('\n'));
  const spec: PacedLoadSpec = { host: url.hostname, port: Number(url.port), requestsFile, ...options };
  return new Promise<PacedLoadResult>((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), JSON.stringify(spec)], { maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      rmSync(dir, { recursive: true, force: true });
      if (error) reject(new Error(`paced load failed: ${stderr || error.message}`));
      else resolve(JSON.parse(stdout.trim().split('\n').pop()!) as PacedLoadResult);
    });
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(JSON.parse(process.argv[2]!) as PacedLoadSpec).then(
    (result) => console.log(JSON.stringify(result)),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
