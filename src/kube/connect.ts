// The one way this product reaches a Kubernetes API server: a kubeconfig file
// (client certificate, bearer token, token file, or an `exec` credential
// plugin) or `in-cluster` (the pod's own service account), loaded by
// @kubernetes/client-node, and its typed API clients (CoreV1Api,
// AuthenticationV1Api, …) over one keep-alive connection pool per cluster.
//
// client-node's own request path is not used as it is: for each request it
// builds a new undici Agent (so a new TLS connection per TokenReview) and it
// reads answers without a bound. Here every client gets a transport that
// sends through one kept-alive pool, gives each exchange a deadline, and
// reads at most a given number of bytes; credentials still come from
// client-node's KubeConfig, so everything it supports (exec plugins and their
// expiry included) works the same.
import type { RequestOptions } from 'node:https';
import {
  ApiException,
  createConfiguration,
  KubeConfig,
  ResponseContext,
  ServerConfiguration,
  wrapHttpLibrary,
  type Configuration,
  type RequestContext,
  type SecurityAuthentication,
} from '@kubernetes/client-node';
import { Agent } from 'undici';

interface RequestLimits {
  /** the whole exchange, from sending to the last byte of the answer; default 2 s */
  timeoutMs?: number;
  /** a longer answer fails the request; default 4 MiB */
  maxBytes?: number;
}

export interface KubeApi {
  /** the API server's URL, for logs */
  readonly server: string;
  /** the loaded kubeconfig, for client-node's watches and informers */
  readonly config: KubeConfig;
  /** the namespace of the current context (in-cluster: the pod's own), when it names one */
  readonly namespace: string | undefined;
  /** A typed API client whose every request is bounded by `limits`; make it once, use it for every request. */
  client<T>(type: new (configuration: Configuration) => T, limits?: RequestLimits): T;
  /** closes the kept-alive connections */
  close(): Promise<void>;
}

/** The kubeconfig's credentials could not be had (an exec plugin failed, a token file is unreadable, …). */
export class KubeCredentialsError extends Error {
  override name = 'KubeCredentialsError';
}

const DEFAULT_TIMEOUT_MS = 2_000;
const DEFAULT_MAX_BYTES = 4 * 1024 * 1024;
/** an exec plugin (e.g. `aws eks get-token`) may take a second or two; one that hangs must not hold requests forever */
const CREDENTIALS_TIMEOUT_MS = 10_000;
/** after a failed lookup, requests fail with its error for this long instead of running a failing plugin for each of them */
const CREDENTIALS_COOLDOWN_MS = 2_000;
/**
 * A looked-up credential is reused this long before client-node is asked
 * again: asking costs tens of µs per request (it decodes or reads the CA
 * every time), while what it answers changes only when an exec credential
 * expires or a token file is re-read (once a minute).
 */
const CREDENTIALS_REUSE_MS = 1_000;
const CONNECT_TIMEOUT_MS = 5_000;
/** below the API server's own idle timeout (90 s), so it is never the one to close a connection we are about to reuse */
const KEEP_ALIVE_MS = 60_000;
const CONNECTIONS_PER_SERVER = 16;
const USER_AGENT = 'pod-identity';

/** Loads a kubeconfig file (relative paths in it are relative to the file), or the pod's own service account for "in-cluster". */
export function loadKubeConfig(kubeconfig: string): KubeConfig {
  const config = new KubeConfig();
  if (kubeconfig === 'in-cluster') {
    if (!process.env.KUBERNETES_SERVICE_HOST || !process.env.KUBERNETES_SERVICE_PORT) {
      throw new Error('kubeconfig "in-cluster" needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT: it only works inside a pod');
    }
    config.loadFromCluster();
  } else {
    try {
      config.loadFromFile(kubeconfig);
    } catch (error) {
      throw new Error(`${kubeconfig}: not a usable kubeconfig (${(error as Error).message})`, { cause: error });
    }
  }
  const cluster = config.getCurrentCluster();
  if (!cluster) throw new Error(`${kubeconfig}: the current context names no cluster`);
  // client-node would tunnel its watches through the proxy but not our requests; refuse rather than half-honour it
  if (cluster.proxyUrl) throw new Error(`${kubeconfig}: proxy-url is not supported`);
  return config;
}

export function connectKube(kubeconfig: string): KubeApi {
  const config = loadKubeConfig(kubeconfig);
  const server = config.getCurrentCluster()!.server;
  const connections = connectionPools();
  const auth = kubeconfigAuthentication(config, kubeconfig, connections.poolFor);
  const baseServer = new ServerConfiguration(server, {});
  return {
    server,
    config,
    namespace: config.getContextObject(config.getCurrentContext())?.namespace,
    client(type, limits = {}) {
      const httpApi = wrapHttpLibrary(boundedTransport(server, limits.timeoutMs ?? DEFAULT_TIMEOUT_MS, limits.maxBytes ?? DEFAULT_MAX_BYTES));
      return new type(createConfiguration({ baseServer, authMethods: { default: auth }, httpApi }));
    },
    close: connections.close,
  };
}

// ---------------------------------------------------------------- credentials and connections

interface TlsMaterial {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  rejectUnauthorized?: boolean;
  servername?: string;
}

function sameBytes(a: string | Buffer | undefined, b: string | Buffer | undefined): boolean {
  if (a === undefined || b === undefined || typeof a === 'string' || typeof b === 'string') return a === b;
  return a.equals(b);
}

function sameTls(a: TlsMaterial, b: TlsMaterial): boolean {
  if (a === b) return true;
  return sameBytes(a.ca, b.ca) && sameBytes(a.cert, b.cert) && sameBytes(a.key, b.key) && a.rejectUnauthorized === b.rejectUnauthorized && a.servername === b.servername;
}

/**
 * One keep-alive pool for the cluster's TLS material. The material is the
 * same for every request unless an exec plugin hands out a new client
 * certificate; then a new pool takes over and the old one closes once its
 * requests are done.
 */
function connectionPools() {
  let current: { tls: TlsMaterial; agent: Agent } | undefined;
  const retired = new Set<Agent>();
  return {
    poolFor(tls: TlsMaterial): Agent {
      if (current && sameTls(current.tls, tls)) return current.agent;
      if (current) {
        const old = current.agent;
        retired.add(old);
        void old.close().finally(() => retired.delete(old));
      }
      const agent = new Agent({
        connect: { ...tls, timeout: CONNECT_TIMEOUT_MS },
        connections: CONNECTIONS_PER_SERVER,
        // HTTP/1.1 keep-alive, as the client this replaced: with the HTTP/2 undici would negotiate, each TokenReview cost this process ~40 µs more CPU
        allowH2: false,
        keepAliveTimeout: KEEP_ALIVE_MS,
        keepAliveMaxTimeout: KEEP_ALIVE_MS,
      });
      current = { tls, agent };
      return agent;
    },
    async close(): Promise<void> {
      const agents = [...retired, ...(current ? [current.agent] : [])];
      current = undefined;
      await Promise.all(agents.map((agent) => agent.destroy()));
    },
  };
}

interface Credentials {
  headers: Record<string, string>;
  tls: TlsMaterial;
}

/**
 * The kubeconfig's credentials for every request, through client-node's
 * KubeConfig (which caches an exec plugin's answer until it expires and
 * re-reads token files). Concurrent requests share one lookup, so a burst
 * after an expiry runs the plugin once; an answer is reused for a second; a
 * failed lookup is not tried again for a moment.
 */
function kubeconfigAuthentication(config: KubeConfig, kubeconfig: string, poolFor: (tls: TlsMaterial) => Agent): SecurityAuthentication {
  let pending: Promise<Credentials> | undefined;
  let fresh: { credentials: Credentials; until: number } | undefined;
  let failed: { error: Error; until: number } | undefined;

  async function lookUp(): Promise<Credentials> {
    const options: RequestOptions = { headers: {} };
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no credentials within ${CREDENTIALS_TIMEOUT_MS} ms`)), CREDENTIALS_TIMEOUT_MS);
    });
    try {
      await Promise.race([config.applyToHTTPSOptions(options), deadline]);
      const { ca, cert, key, rejectUnauthorized, servername } = options as TlsMaterial;
      const credentials = { headers: options.headers as Record<string, string>, tls: { ca, cert, key, rejectUnauthorized, servername } };
      fresh = { credentials, until: Date.now() + CREDENTIALS_REUSE_MS };
      return credentials;
    } catch (error) {
      const failure = new KubeCredentialsError(`${kubeconfig}: ${describeCredentialFailure(config, error as Error)}`, { cause: error });
      failed = { error: failure, until: Date.now() + CREDENTIALS_COOLDOWN_MS };
      throw failure;
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    getName: () => 'kubeconfig',
    async applySecurityAuthentication(context: RequestContext) {
      const now = Date.now();
      let credentials = fresh && now < fresh.until ? fresh.credentials : undefined;
      if (!credentials) {
        if (failed && now < failed.until) throw failed.error;
        pending ??= lookUp().finally(() => (pending = undefined));
        credentials = await pending;
      }
      for (const name in credentials.headers) context.setHeaderParam(name, credentials.headers[name]!);
      context.setDispatcher(poolFor(credentials.tls));
    },
  };
}

function describeCredentialFailure(config: KubeConfig, error: Error): string {
  const exec = config.getCurrentUser()?.exec as { command?: string } | undefined;
  const message = error.message.replace(/\s+/g, ' ').trim();
  if (!exec) return `cannot read the credentials: ${message}`;
  const plugin = `the exec credential plugin ${exec.command ?? ''}`;
  if (error instanceof SyntaxError) return `${plugin} printed no ExecCredential JSON (${message})`;
  // client-node rejects with the plugin's stderr as the message (empty when it printed nothing)
  return `${plugin} failed: ${message || 'it exited with an error and printed nothing'}`;
}

// ---------------------------------------------------------------- the exchange

/** client-node's HTTP library, bounded: one deadline for the whole exchange, at most `maxBytes` of answer. */
function boundedTransport(server: string, timeoutMs: number, maxBytes: number) {
  return {
    async send(request: RequestContext): Promise<ResponseContext> {
      const dispatcher = request.getDispatcher();
      if (!dispatcher) throw new Error(`${server}: no connection pool for the request`);
      const url = new URL(request.getUrl());
      // a timer of our own, cleared with the answer (AbortSignal.timeout would still fire, and abort, long after)
      const deadline = new AbortController();
      const timer = setTimeout(() => deadline.abort(), timeoutMs);
      try {
        const answer = await dispatcher.request({
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method: request.getHttpMethod(),
          headers: { 'user-agent': USER_AGENT, ...request.getHeaders() },
          body: request.getBody() as string | undefined,
          signal: deadline.signal,
        });
        const declared = Number(answer.headers['content-length']);
        if (declared > maxBytes) {
          answer.body.destroy();
          throw new Error(`${url.origin}${url.pathname}: the answer is larger than ${maxBytes} bytes`);
        }
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of answer.body as AsyncIterable<Buffer>) {
          size += chunk.length;
          if (size > maxBytes) {
            answer.body.destroy();
            throw new Error(`${url.origin}${url.pathname}: the answer is larger than ${maxBytes} bytes`);
          }
          chunks.push(chunk);
        }
        const text = Buffer.concat(chunks, size).toString('utf8');
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(answer.headers)) if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
        return new ResponseContext(answer.statusCode, headers, {
          text: () => Promise.resolve(text),
          binary: () => Promise.resolve(Buffer.from(text)),
          stream: () => null,
        });
      } catch (error) {
        if (deadline.signal.aborted) throw new Error(`no answer from ${url.origin}${url.pathname} within ${timeoutMs} ms`, { cause: error });
        throw error;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

// ---------------------------------------------------------------- failures

/** The HTTP status the API server refused a request with (client-node's ApiException), else undefined. */
export function refusedStatus(error: unknown): number | undefined {
  return error instanceof ApiException ? (error.code as number) : undefined;
}

/** One line for a log: the status and the API server's own message for a refused request, else the error's message. */
export function describeKubeError(error: unknown): string {
  if (!(error instanceof ApiException)) return (error as Error).message;
  let message: unknown;
  try {
    message = (JSON.parse(String(error.body)) as { message?: unknown }).message;
  } catch {
    message = undefined;
  }
  return `the API server answered HTTP ${error.code}${typeof message === 'string' ? `: ${message.slice(0, 300)}` : ''}`;
}
