// Small HTTP helpers shared by every listener: bounded body reading, JSON
// answers, "host:port" parsing and socket timeouts. Plain node:http keeps the
// hot paths free of framework overhead.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Transform, type Readable } from 'node:stream';
import { WireError } from './errors.js';

export const DEFAULT_BODY_LIMIT = 64 * 1024;

/** Reads the whole body, refusing more than `limit` bytes without buffering them. */
export function readBody(req: IncomingMessage, limit = DEFAULT_BODY_LIMIT): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > limit) {
      req.resume();
      reject(new WireError('RequestEntityTooLargeException', `request body exceeds ${limit} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        reject(new WireError('RequestEntityTooLargeException', `request body exceeds ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    });
    req.on('error', (error) => {
      if (!failed) reject(error);
    });
  });
}

/**
 * Reads a fetch() answer's body, at most `limit` bytes: a larger declared
 * length is refused before reading, and a body that grows past the limit is
 * cancelled while it streams, so a huge or endless answer costs at most
 * `limit` bytes of memory. (The request's own signal bounds the time.)
 */
export async function readResponseLimited(res: Response, limit: number, what: string): Promise<Buffer> {
  const tooLarge = () => new Error(`${what} answered more than ${limit} bytes`);
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > limit) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size);
}

/**
 * The same bound for a Node stream (an AWS SDK client's response body): the
 * returned stream fails, and the source is destroyed (its socket closed), as
 * soon as more than `limit` bytes arrive.
 */
export function limitStream(source: Readable, limit: number, what: string): Readable {
  let size = 0;
  const limited = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      if (size > limit) {
        source.destroy();
        done(new Error(`${what} answered more than ${limit} bytes`));
        return;
      }
      done(null, chunk);
    },
  });
  source.on('error', (error) => limited.destroy(error));
  return source.pipe(limited);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

export function sendText(res: ServerResponse, status: number, text: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export interface ListenAddress {
  host: string;
  port: number;
}

/** Parses "host:port", "[v6]:port" or ":port" (all interfaces). */
export function parseListen(value: string): ListenAddress {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value.trim());
  if (!match) throw new Error(`expected host:port, got "${value}"`);
  const port = Number(match[3]);
  if (port > 65535) throw new Error(`port out of range in "${value}"`);
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

export function formatUrlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * How often a listener looks for connections past their header or request
 * timeout. Node checks every 30 s by default, so a slow client lived 30-40 s
 * against a 5 s header timeout; at 250 ms it is closed within a quarter of a
 * second of it. The check walks only connections still waiting for a request.
 */
const TIMEOUT_CHECK_INTERVAL_MS = 250;

/**
 * Explicit socket timeouts so a hung or slow peer cannot hold connections
 * forever. Call before listen(): Node starts the timeout checks when the
 * server starts listening, at the interval set then.
 */
export function applyServerTimeouts(server: Server, options: { requestTimeoutMs?: number; headersTimeoutMs?: number; keepAliveTimeoutMs?: number } = {}): void {
  server.requestTimeout = options.requestTimeoutMs ?? 30_000;
  server.headersTimeout = options.headersTimeoutMs ?? 10_000;
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? 5_000;
  // Read by Node when the server starts listening (not a documented setter, but the property its option is stored in).
  (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = TIMEOUT_CHECK_INTERVAL_MS;
}

export function listen(server: Server, address: ListenAddress): Promise<ListenAddress> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once('error', onError);
    server.listen(address.port, address.host, () => {
      server.off('error', onError);
      const bound = server.address();
      const port = typeof bound === 'object' && bound ? bound.port : address.port;
      resolve({ host: address.host, port });
    });
  });
}

/** Stops accepting, lets in-flight requests finish, then closes idle keep-alive sockets. */
export function closeServer(server: Server, graceMs = 10_000): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}
