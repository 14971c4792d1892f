// `pod-identity agent`: the container-credentials endpoint on the node
// (DESIGN §3.3). One listener per bind host, each with its own request-rate
// bucket; GET /v1/credentials checks Host, takes the raw Authorization header
// as the token and answers from the credential source (the cache, or EKS Auth
// directly when caching is off). Probes and metrics have their own listeners.
//
// The request path is kept close to a bare node:http handler: the response
// bytes and headers come encoded from the source (once per EKS Auth answer)
// and are written as they are.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import { isWireError } from '../lib/errors.js';
import { applyServerTimeouts, closeServer, formatUrlHost, listen } from '../lib/http.js';
import type { Logger } from '../lib/logger.js';
import { http } from '../lib/node-http.js';
import { createMetricsServer, createRegistry } from '../lib/metrics.js';
import { CredentialCache } from './cache.js';
import { encodeFailure } from '../api/credentials.js';
import { jsonHeaders, PresentedToken, type CredentialSource, type IssuedCredentials } from './credentials.js';
import { createAgentMetrics, type ResponseCounter } from './metrics.js';
import { TokenBucket } from '../lib/token-bucket.js';
import { EksAuthUpstream, parseCaBundle } from './upstream.js';
import { warmUp } from './warm-up.js';

export const AGENT_IPV4 = '169.254.170.23';
export const AGENT_IPV6 = 'fd00:ec2::23';
const CREDENTIALS_PATH = '/v1/credentials';

export interface AgentOptions {
  clusterName: string;
  /** EKS Auth base URL; default https://eks-auth.{region}.api.aws */
  endpoint?: string;
  /** a PEM file of the CAs the endpoint's certificate must chain to (default: the system's roots) */
  caBundleFile?: string;
  /** take a plain-http endpoint (role credentials unencrypted on the wire) */
  allowInsecureHttpEndpoint?: boolean;
  region: string;
  /** IP literals (brackets allowed); default 169.254.170.23 and fd00:ec2::23 */
  bindHosts?: string[];
  /** default 80; 0 picks a free port per listener */
  port?: number;
  allowLoopback?: boolean;
  probeAddress?: string;
  /** default 2703 */
  probePort?: number;
  metricsAddress?: string;
  /** default 2705 */
  metricsPort?: number;
  /** 0 turns the cache off; default 2000 */
  maxCacheSize?: number;
  /** background refreshes a second; default 3 */
  maxServiceQps?: number;
  nodeName?: string;
  /** requests a second per listener before 429; default 1000 */
  rateLimit?: number;
  /** burst of the per-listener bucket; default 1000 */
  rateLimitBurst?: number;
  /** per-attempt deadline of EKS Auth calls; default 2000 */
  upstreamTimeoutMs?: number;
  /** before serving, run the cold-request path on loopback (JIT) and open connections to EKS Auth; default true */
  warmUp?: boolean;
}

export interface AgentDependencies {
  logger: Logger;
  /** keys that sign EKS Auth calls (the CLI passes the AWS default chain) */
  credentials: AwsCredentialIdentityProvider;
}

export interface RunningAgent {
  /** http://host:port/v1/credentials of every listener that is serving */
  credentialUrls: string[];
  probeUrl: string;
  metricsUrl: string;
  /** stop accepting, finish in-flight requests, stop refreshing */
  close(): Promise<void>;
}

/** Connections to EKS Auth opened before serving: what a burst of new pods needs at once. */
const UPSTREAM_WARM_CONNECTIONS = 8;

/** Limits of what a credentials request may carry. */
const MAX_HEADER_BYTES = 16 * 1024;
const MAX_BODY_BYTES = 1024;

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function isLoopback(host: string): boolean {
  return host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Checks and normalises --bind-hosts: IP literals only, loopback only when allowed, never a wildcard. */
export function normalizeBindHosts(hosts: string[], allowLoopback: boolean): string[] {
  const out: string[] = [];
  for (const raw of hosts) {
    const host = stripBrackets(raw.trim());
    if (host === '') continue;
    if (isIP(host) === 0) throw new Error(`bind host "${raw}" is not an IP address`);
    if (host === '0.0.0.0' || host === '::') throw new Error(`bind host "${raw}" would serve credentials on every interface; name the address pods call`);
    if (isLoopback(host) && !allowLoopback) throw new Error(`bind host "${raw}" is loopback; pass --allow-loopback to serve there (laptops and tests)`);
    if (!out.includes(host)) out.push(host);
  }
  if (out.length === 0) throw new Error('no bind hosts given');
  return out;
}

/** The Host header values a request may carry to reach one of these listeners. */
export function allowedHostHeaders(listeners: { host: string; port: number }[]): Set<string> {
  const allowed = new Set<string>();
  for (const { host, port } of listeners) {
    const names = [formatUrlHost(host)];
    if (isLoopback(host)) names.push('localhost');
    for (const name of names) {
      allowed.add(`${name}:${port}`);
      if (port === 80) allowed.add(name);
    }
  }
  return allowed;
}

/** An answer ready to write; IssuedCredentials is one. */
interface EncodedResponse {
  readonly body: Buffer;
  readonly headers: string[];
}

function encodeError(code: string, message: string, close = false): EncodedResponse {
  const body = encodeFailure(code, message);
  const headers = jsonHeaders(body.length);
  if (close) headers.push('connection', 'close');
  return { body, headers };
}

const NOT_FOUND = encodeError('NotFound', `The agent serves only GET ${CREDENTIALS_PATH}.`);
const METHOD_NOT_ALLOWED = encodeError('MethodNotAllowed', `Use GET ${CREDENTIALS_PATH}.`);
const THROTTLED = encodeError('ThrottlingException', 'Too many requests to the agent; retry shortly.');
const NO_TOKEN = encodeError('InvalidParameterException', 'Service account token cannot be empty: send it as the Authorization header.');
const BODY_TOO_LARGE = encodeError('RequestEntityTooLargeException', `A credentials request carries no body (at most ${MAX_BODY_BYTES} bytes).`, true);

interface CredentialsHandlerOptions {
  source: CredentialSource<IssuedCredentials>;
  /** Host header values accepted (shared by all listeners; filled once they are bound) */
  allowedHosts: ReadonlySet<string>;
  limiter: TokenBucket;
  responses?: ResponseCounter;
  logger?: Logger;
}

/** The GET /v1/credentials handler of one listener. */
function createCredentialsHandler(options: CredentialsHandlerOptions): RequestListener {
  const { source, allowedHosts, limiter, logger } = options;
  const responses: ResponseCounter = options.responses ?? { count() {} };
  // The last token each connection presented, with its key once computed:
  // an SDK's kept-alive connection sends the same token every time.
  const lastToken = new WeakMap<object, PresentedToken>();

  // `arrived`: performance.now() when the request came in, for the latency histogram
  const send = (res: ServerResponse, arrived: number, status: number, response: EncodedResponse) => {
    responses.count(status, (performance.now() - arrived) / 1000);
    res.writeHead(status, response.headers);
    res.end(response.body);
  };
  const sendCredentials = (res: ServerResponse, arrived: number, credentials: IssuedCredentials) => send(res, arrived, 200, credentials);
  const sendFailure = (res: ServerResponse, arrived: number, error: unknown) => {
    if (res.destroyed) return;
    if (isWireError(error)) {
      if (error.status >= 500) logger?.warn({ code: error.code, status: error.status }, 'credentials request failed upstream');
      send(res, arrived, error.status, encodeError(error.code, error.message));
      return;
    }
    logger?.error({ err: error }, 'credentials request failed');
    send(res, arrived, 500, encodeError('InternalServerException', 'The agent failed to get credentials.'));
  };

  return function handleCredentialsRequest(req: IncomingMessage, res: ServerResponse) {
    const arrived = performance.now();
    const url = req.url;
    if (url !== CREDENTIALS_PATH && !url?.startsWith(`${CREDENTIALS_PATH}?`)) {
      send(res, arrived, 404, NOT_FOUND);
      return;
    }
    if (req.method !== 'GET') {
      send(res, arrived, 405, METHOD_NOT_ALLOWED);
      return;
    }
    if (!limiter.take(Date.now())) {
      send(res, arrived, 429, THROTTLED);
      return;
    }
    const headers = req.headers;
    const host = headers.host;
    if (host === undefined || (!allowedHosts.has(host) && !allowedHosts.has(host.toLowerCase()))) {
      const served = [...allowedHosts].join(', ');
      send(res, arrived, 403, encodeError('AccessDeniedException', `Called the agent through an address it does not serve (${host ?? 'no Host header'}); use one of: ${served}.`));
      return;
    }
    const length = headers['content-length'];
    if (headers['transfer-encoding'] !== undefined || (length !== undefined && Number(length) > MAX_BODY_BYTES)) {
      send(res, arrived, 413, BODY_TOO_LARGE);
      return;
    }
    const token = headers.authorization;
    if (token === undefined || token === '') {
      send(res, arrived, 400, NO_TOKEN);
      return;
    }
    let presented = lastToken.get(req.socket);
    if (presented === undefined || presented.value !== token) {
      presented = new PresentedToken(token);
      lastToken.set(req.socket, presented);
    }
    const answer = source.getCredentials(presented);
    if (answer instanceof Promise) {
      answer.then(
        (credentials) => sendCredentials(res, arrived, credentials),
        (error: unknown) => sendFailure(res, arrived, error),
      );
    } else {
      sendCredentials(res, arrived, answer);
    }
  };
}

/** Malformed requests (a newline in a header, headers over the limit) still get a JSON answer. */
function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const message = status === 431 ? `Request headers exceed ${MAX_HEADER_BYTES} bytes.` : status === 408 ? 'The request took too long to arrive.' : 'Malformed HTTP request (header values must be one line).';
  const body = encodeFailure(status === 431 ? 'RequestHeaderFieldsTooLarge' : status === 408 ? 'RequestTimeout' : 'BadRequest', message);
  socket.end(Buffer.concat([Buffer.from(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`), body]));
}

const EXPECTATION_FAILED = encodeError('ExpectationFailed', 'The agent supports no Expect header but 100-continue.', true);

function answerExpectationFailed(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(417, EXPECTATION_FAILED.headers);
  res.end(EXPECTATION_FAILED.body);
}

function isUnavailableIpv6(host: string, error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return isIP(host) === 6 && (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT');
}

/** Answers if the listener at host:port answers HTTP at all (any status). */
function probeListener(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: '/', agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('timeout', () => req.destroy(new Error('probe timed out')));
    req.on('error', () => resolve(false));
  });
}

export async function startAgent(options: AgentOptions, deps: AgentDependencies): Promise<RunningAgent> {
  const { logger } = deps;
  const allowLoopback = options.allowLoopback ?? false;
  const bindHosts = normalizeBindHosts(options.bindHosts ?? [AGENT_IPV4, AGENT_IPV6], allowLoopback);
  const port = options.port ?? 80;
  const maxCacheSize = options.maxCacheSize ?? 2000;
  const rateLimit = options.rateLimit ?? 1000;
  const rateLimitBurst = options.rateLimitBurst ?? 1000;

  let caBundle: string | undefined;
  if (options.caBundleFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(options.caBundleFile, 'utf8');
    } catch (error) {
      throw new Error(`cannot read CA bundle ${options.caBundleFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
    }
    caBundle = parseCaBundle(text, options.caBundleFile);
  }
  const registry = createRegistry('agent');
  const metrics = createAgentMetrics(registry);
  const upstream = new EksAuthUpstream({
    endpoint: options.endpoint,
    caBundle,
    allowInsecureHttp: options.allowInsecureHttpEndpoint,
    clusterName: options.clusterName,
    region: options.region,
    credentials: deps.credentials,
    nodeName: options.nodeName,
    timeoutMs: options.upstreamTimeoutMs,
    logger,
    events: metrics.upstream,
  });
  const cache = maxCacheSize > 0 ? new CredentialCache({ upstream, maxSize: maxCacheSize, maxRefreshQps: options.maxServiceQps ?? 3, events: metrics.cache }) : undefined;
  if (cache) metrics.watchCache(cache);
  const source: CredentialSource<IssuedCredentials> = cache ?? upstream;

  if (options.warmUp ?? true) {
    // The first pods of a node start with its agent: they find its code
    // optimised and connections to EKS Auth open (agent/warm-up.ts).
    const started = performance.now();
    const unlimited = () => new TokenBucket({ rate: Number.MAX_SAFE_INTEGER, burst: Number.MAX_SAFE_INTEGER }, Date.now());
    await warmUp((warmSource, hosts) => createCredentialsHandler({ source: warmSource, allowedHosts: hosts, limiter: unlimited() }));
    const connections = await upstream.warmConnections(UPSTREAM_WARM_CONNECTIONS);
    logger.debug({ ms: Math.round(performance.now() - started), connections }, 'warmed up');
  }

  const allowedHosts = new Set<string>();
  const listeners: { server: Server; host: string; port: number }[] = [];
  const stopAll = async () => {
    await Promise.all(listeners.map((l) => closeServer(l.server, 5000)));
    cache?.close();
    upstream.close();
  };
  try {
    for (const host of bindHosts) {
      const server = http.createServer(
        { maxHeaderSize: MAX_HEADER_BYTES },
        createCredentialsHandler({ source, allowedHosts, limiter: new TokenBucket({ rate: rateLimit, burst: rateLimitBurst }, Date.now()), responses: metrics.responses, logger }),
      );
      applyServerTimeouts(server, { headersTimeoutMs: 5000, requestTimeoutMs: 10_000, keepAliveTimeoutMs: 5000 });
      server.on('clientError', answerClientError);
      // Node's own 417 for an Expect it does not know has no body; SDKs read JSON
      server.on('checkExpectation', answerExpectationFailed);
      try {
        const bound = await listen(server, { host, port });
        listeners.push({ server, host, port: bound.port });
      } catch (error) {
        if (isUnavailableIpv6(host, error)) {
          logger.warn({ host, code: (error as NodeJS.ErrnoException).code }, 'IPv6 address not available on this node; serving the other addresses only');
          continue;
        }
        const code = (error as NodeJS.ErrnoException).code;
        const hint = code === 'EADDRNOTAVAIL' ? ' (the address is not on this node: run `pod-identity initialize` first)' : code === 'EACCES' ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)' : '';
        throw new Error(`cannot listen on ${formatUrlHost(host)}:${port}: ${code ?? (error as Error).message}${hint}`, { cause: error });
      }
    }
    if (listeners.length === 0) throw new Error(`none of the bind hosts could be served: ${bindHosts.join(', ')}`);
  } catch (error) {
    await stopAll();
    throw error;
  }
  for (const value of allowedHostHeaders(listeners)) allowedHosts.add(value);

  let closing = false;
  const ready = async () => {
    if (closing) return ['the agent is stopping'];
    const answers = await Promise.all(listeners.map((l) => probeListener(l.host, l.port)));
    return listeners.filter((_l, i) => !answers[i]).map((l) => `the credentials listener ${formatUrlHost(l.host)}:${l.port} does not answer`);
  };
  const probe = createMetricsServer(registry, ready);
  const metricsServer = createMetricsServer(registry, ready);
  applyServerTimeouts(probe);
  applyServerTimeouts(metricsServer);
  let probeAddress;
  let metricsAddress;
  try {
    probeAddress = await listen(probe, { host: options.probeAddress ?? '127.0.0.1', port: options.probePort ?? 2703 });
    metricsAddress = await listen(metricsServer, { host: options.metricsAddress ?? '0.0.0.0', port: options.metricsPort ?? 2705 });
  } catch (error) {
    await Promise.all([closeServer(probe, 0), closeServer(metricsServer, 0), stopAll()]);
    throw new Error(`cannot open the probe/metrics listeners: ${(error as Error).message}`, { cause: error });
  }

  const credentialUrls = listeners.map((l) => `http://${formatUrlHost(l.host)}${l.port === 80 ? '' : `:${l.port}`}${CREDENTIALS_PATH}`);
  const probeUrl = `http://${formatUrlHost(probeAddress.host)}:${probeAddress.port}`;
  const metricsUrl = `http://${formatUrlHost(metricsAddress.host === '0.0.0.0' ? '127.0.0.1' : metricsAddress.host)}:${metricsAddress.port}`;
  logger.info(
    { listeners: credentialUrls, probes: probeUrl, metrics: metricsUrl, cluster: options.clusterName, endpoint: options.endpoint ?? 'default', cache: maxCacheSize },
    'agent started',
  );

  return {
    credentialUrls,
    probeUrl,
    metricsUrl,
    async close() {
      closing = true;
      await stopAll();
      await Promise.all([closeServer(probe, 1000), closeServer(metricsServer, 1000)]);
      logger.info('agent stopped');
    },
  };
}
