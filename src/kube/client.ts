// The one Kubernetes API client of the server and the CLI: JSON requests
// (TokenReview, pod and service-account reads, the issuer's JWKS, status
// patches of PodIdentityAssociation resources) and line-by-line watches, over
// one keep-alive connection pool per cluster, each bounded in time and size.
// Credentials come from the cluster's kubeconfig (loadKubeAccess: client
// certificate or bearer token).
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import { loadKubeAccess, type KubeAccess } from './kubeconfig.js';

const DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024;
/** A watch event is one object (etcd keeps them under ~1.5 MiB); a longer line is not one. */
const MAX_WATCH_LINE_CHARS = 4 * 1024 * 1024;

export interface KubeResponse {
  status: number;
  /** the parsed JSON answer; undefined when it was not JSON */
  body: unknown;
}

interface KubeRequestOptions {
  /** sent as JSON */
  body?: unknown;
  /** of the body; default application/json (a status patch: application/merge-patch+json) */
  contentType?: string;
  /** deadline of the whole request, the answer's body included; default 2 s */
  timeoutMs?: number;
  /** a larger answer fails the request; default 4 MiB */
  maxBytes?: number;
}

export interface KubeClient {
  /** where the API server is, for logs */
  server: string;
  request(method: 'GET' | 'POST' | 'PATCH', path: string, options?: KubeRequestOptions): Promise<KubeResponse>;
  /**
   * GETs a watch and hands each line of the stream to `onLine` until the
   * server ends it, it fails (also when `onLine` throws, or no byte arrives
   * for `idleMs`) or `signal` aborts (then it resolves).
   */
  watch(path: string, onLine: (line: string) => void, signal: AbortSignal, idleMs: number): Promise<void>;
  close(): void;
}

export function kubeClientFromKubeconfig(path: string): KubeClient {
  return kubeClient(loadKubeAccess(path));
}

function kubeClient(access: KubeAccess): KubeClient {
  const { server } = access;
  const https = server.protocol !== 'http:';
  const agent = https
    ? new HttpsAgent({ keepAlive: true, maxSockets: 16, ca: access.ca, cert: access.cert, key: access.key, rejectUnauthorized: !access.insecureSkipTlsVerify })
    : new HttpAgent({ keepAlive: true, maxSockets: 16 });
  const basePath = server.pathname.replace(/\/$/, '');

  function send(method: string, path: string, headers: Record<string, string | number>, onResponse: (res: IncomingMessage) => void) {
    const token = access.token?.();
    const options: RequestOptions = {
      method,
      hostname: server.hostname.replace(/^\[|\]$/g, ''),
      port: server.port || undefined,
      path: `${basePath}${path}`,
      agent,
      headers: {
        // /openid/v1/jwks answers only application/jwk-set+json (406 otherwise)
        accept: path.startsWith('/openid/') ? 'application/jwk-set+json, application/json' : 'application/json',
        ...headers,
        ...(token && { authorization: `Bearer ${token}` }),
      },
    };
    return (https ? httpsRequest : httpRequest)(options, onResponse);
  }

  return {
    server: server.origin,
    request(method, path, options = {}) {
      const timeoutMs = options.timeoutMs ?? 2_000;
      const maxBytes = options.maxBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
      const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
      const headers: Record<string, string | number> = payload === undefined ? {} : { 'content-type': options.contentType ?? 'application/json', 'content-length': Buffer.byteLength(payload) };
      return new Promise<KubeResponse>((resolve, reject) => {
        const req = send(method, path, headers, (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > maxBytes) {
              req.destroy(new Error(`the API server's answer is larger than ${maxBytes} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              parsed = undefined;
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on('error', reject);
        });
        // One deadline for the whole exchange: a socket timeout alone would let a byte-a-second answer run forever.
        const deadline = setTimeout(() => req.destroy(new Error(`no answer from the API server within ${timeoutMs} ms`)), timeoutMs);
        req.on('close', () => clearTimeout(deadline));
        req.on('error', reject);
        req.end(payload);
      });
    },
    watch(path, onLine, signal, idleMs) {
      return new Promise((resolve, reject) => {
        const req = send('GET', path, {}, (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            reject(new Error(`watch answered HTTP ${res.statusCode}`));
            return;
          }
          let buffered = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buffered += chunk;
            let newline: number;
            while ((newline = buffered.indexOf('\n')) >= 0) {
              const line = buffered.slice(0, newline).trim();
              buffered = buffered.slice(newline + 1);
              if (!line) continue;
              try {
                onLine(line);
              } catch (error) {
                req.destroy(error as Error);
                return;
              }
            }
            // what is left is the start of the next event: it cannot grow without bound
            if (buffered.length > MAX_WATCH_LINE_CHARS) req.destroy(new Error(`a watch event is longer than ${MAX_WATCH_LINE_CHARS} characters`));
          });
          res.on('end', () => resolve());
          res.on('error', reject);
          res.on('aborted', () => reject(new Error('watch connection aborted')));
        });
        // No byte for idleMs (bookmarks and events included): the connection is presumed dead.
        req.setTimeout(idleMs, () => req.destroy(new Error(`watch idle for ${idleMs} ms`)));
        req.on('error', reject);
        const abort = () => req.destroy();
        signal.addEventListener('abort', abort, { once: true });
        req.on('close', () => {
          signal.removeEventListener('abort', abort);
          if (signal.aborted) resolve();
        });
        req.end();
      });
    },
    close() {
      agent.destroy();
    },
  };
}
