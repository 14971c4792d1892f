// The agent's upstream: EKS Auth `AssumeRoleForPodIdentity`, a SigV4-signed
// (`eks-auth`) POST /clusters/{name}/assume-role-for-pod-identity. Signing keys
// come from a credential provider (the AWS default chain in production, as
// the AWS agent does). The endpoint is HTTPS, its certificate checked against
// the given CA bundle (else the system's roots); plain HTTP only when allowed
// explicitly, since role credentials cross the network in the answer.
// Connections are kept alive; every attempt has a deadline; throttling, 5xx
// and network failures are retried with jittered exponential backoff (after
// the server's Retry-After, when it sends one), nothing else is (a certificate the agent does not trust is not retried).
import type { Agent as HttpAgent, IncomingHttpHeaders } from 'node:http';
import { X509Certificate } from 'node:crypto';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { assumedRoleAccount, decodeAssumeRoleResponse, decodeErrorResponse } from '../api/eks-auth.js';
import { WireError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { http, https } from '../lib/node-http.js';
import { signRequest } from '../lib/sigv4.js';
import { issueCredentials, type CredentialSource, type IssuedCredentials, type PresentedToken } from './credentials.js';
import { readTokenExpiry } from './token.js';

export interface UpstreamEvents {
  /** one call per HTTP attempt; `outcome` is `ok`, the EKS Auth error code, `timeout`, `network` or `tls` (an untrusted certificate) */
  attempt?(outcome: string, seconds: number): void;
}

export interface EksAuthUpstreamOptions {
  /** base URL of EKS Auth; default https://eks-auth.{region}.api.aws */
  endpoint?: string;
  /** PEM certificates the endpoint's certificate must chain to (replaces the system's roots) */
  caBundle?: string;
  /** take a plain-http endpoint (credentials unencrypted on the wire): dev and tests on loopback */
  allowInsecureHttp?: boolean;
  clusterName: string;
  /** signing region */
  region: string;
  /** signing keys; the CLI passes the AWS default chain */
  credentials: AwsCredentialIdentityProvider;
  /** sent as eksNodeName so the server can check the token's node binding */
  nodeName?: string;
  /** deadline of one attempt, connect included (default 2000 ms) */
  timeoutMs?: number;
  /** attempts in all, first one included (default 3) */
  maxAttempts?: number;
  /** backoff before retry n is random in [0, min(cap, base·2^(n-1))) */
  backoffBaseMs?: number;
  backoffCapMs?: number;
  now?: () => number;
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
  logger?: Logger;
  events?: UpstreamEvents;
}

const MAX_RESPONSE_BYTES = 64 * 1024;

type Attempt =
  | { ok: true; credentials: IssuedCredentials }
  | { ok: false; error: WireError; retryable: boolean; outcome: string; retryAfterMs?: number };

/** The longest Retry-After the agent waits for between two attempts; a longer one is cut to this. */
const MAX_RETRY_AFTER_MS = 5000;

/** A Retry-After header in whole seconds (what EKS Auth and our server send) as ms; undefined when absent or not that form. Pure. */
export function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || !/^\d{1,6}$/.test(value.trim())) return undefined;
  return Number(value.trim()) * 1000;
}

/**
 * The wait before attempt `attempt + 1`: jittered exponential backoff,
 * random in [0, min(cap, base·2^(attempt-1))), and when the server said
 * Retry-After, that delay first (at most MAX_RETRY_AFTER_MS), the jitter on
 * top so that agents told the same thing do not come back together. Pure.
 */
export function retryDelayMs(attempt: number, retryAfterMs: number | undefined, random: number, baseMs: number, capMs: number): number {
  const backoff = random * Math.min(capMs, baseMs * 2 ** (attempt - 1));
  return retryAfterMs === undefined ? backoff : Math.min(retryAfterMs, MAX_RETRY_AFTER_MS) + backoff;
}

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function defaultEndpoint(region: string): string {
  return `https://eks-auth.${region}.api.aws`;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The certificates of a PEM bundle; throws naming `source` when there are none or one does not parse (Node would ignore them silently). */
export function parseCaBundle(text: string, source: string): string {
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new Error(`CA bundle ${source} holds no PEM certificate`);
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (error) {
      throw new Error(`CA bundle ${source} holds a certificate that cannot be read: ${(error as Error).message}`, { cause: error });
    }
  }
  return blocks.join('\n');
}

/** TLS failures that retrying cannot fix: the endpoint's certificate is not one the agent trusts. */
const UNTRUSTED_CERTIFICATE = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export class EksAuthUpstream implements CredentialSource<IssuedCredentials> {
  private readonly url: URL;
  private readonly agent: HttpAgent;
  private readonly send: typeof http.request;
  private readonly timeoutMs: number;
  private readonly maxAttempts: number;
  private readonly backoffBaseMs: number;
  private readonly backoffCapMs: number;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly options: EksAuthUpstreamOptions) {
    const base = (options.endpoint ?? defaultEndpoint(options.region)).replace(/\/+$/, '');
    this.url = new URL(`${base}/clusters/${encodeURIComponent(options.clusterName)}/assume-role-for-pod-identity`);
    if (this.url.protocol !== 'http:' && this.url.protocol !== 'https:') throw new Error(`EKS Auth endpoint must be http(s): ${base}`);
    const secure = this.url.protocol === 'https:';
    if (!secure && !options.allowInsecureHttp) {
      throw new Error(`EKS Auth endpoint ${base} is plain http: role credentials would cross the network unencrypted; serve the API over https (server tls) or pass --allow-insecure-http-endpoint`);
    }
    // Idle sockets are dropped before a typical server's 5 s keep-alive, so a
    // reused socket is rarely one the server is closing. As many are kept
    // idle as may be open: a burst of new pods after a quiet second finds
    // them connected instead of paying a TCP and TLS handshake each.
    const agentOptions = { keepAlive: true, maxSockets: 64, maxFreeSockets: 64, timeout: 4000, scheduling: 'lifo' as const };
    this.agent = secure ? new https.Agent({ ...agentOptions, minVersion: 'TLSv1.2', ...(options.caBundle !== undefined && { ca: options.caBundle }) }) : new http.Agent(agentOptions);
    this.send = secure ? https.request : http.request;
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 3);
    this.backoffBaseMs = options.backoffBaseMs ?? 100;
    this.backoffCapMs = options.backoffCapMs ?? 1000;
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  async getCredentials(presented: PresentedToken): Promise<IssuedCredentials> {
    const token = presented.value;
    readTokenExpiry(token, this.now());
    const body = JSON.stringify(this.options.nodeName ? { token, eksNodeName: this.options.nodeName } : { token });
    let signingKeys: AwsCredentialIdentity;
    try {
      signingKeys = await this.options.credentials();
    } catch (error) {
      this.options.logger?.error({ err: error }, 'no AWS credentials to sign EKS Auth calls with (AWS default chain)');
      throw new WireError('InternalServerException', 'The agent has no AWS credentials to call EKS Auth with.', { cause: error });
    }
    for (let attempt = 1; ; attempt++) {
      const started = performance.now();
      const result = await this.attempt(body, signingKeys);
      const seconds = (performance.now() - started) / 1000;
      this.options.events?.attempt?.(result.ok ? 'ok' : result.outcome, seconds);
      if (result.ok) return result.credentials;
      if (!result.retryable || attempt >= this.maxAttempts) {
        this.options.logger?.warn({ outcome: result.outcome, status: result.error.status, attempts: attempt }, 'EKS Auth call failed');
        throw result.error;
      }
      await this.sleep(retryDelayMs(attempt, result.retryAfterMs, this.random(), this.backoffBaseMs, this.backoffCapMs));
    }
  }

  /**
   * Opens up to `count` kept-alive connections (TLS included) to EKS Auth
   * before they are needed: `count` concurrent GET /healthz (our server's
   * answer that costs nothing; any HTTP answer will do, so EKS's own
   * endpoint serves as well). Resolves with how many answered;
   * failures are not errors here, the first real call reports them.
   */
  async warmConnections(count: number): Promise<number> {
    const origin = new URL('/healthz', this.url);
    const one = () =>
      new Promise<boolean>((resolve) => {
        const req = this.send(origin, { method: 'GET', agent: this.agent, timeout: this.timeoutMs }, (res) => {
          res.resume();
          res.on('end', () => resolve(true));
        });
        req.on('timeout', () => req.destroy());
        req.on('error', () => resolve(false));
        req.end();
      });
    const answered = await Promise.all(Array.from({ length: count }, one));
    return answered.filter(Boolean).length;
  }

  /** Closes kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  private async attempt(body: string, signingKeys: AwsCredentialIdentity): Promise<Attempt> {
    let response: RawResponse;
    try {
      const headers = await signRequest(
        // content-length is signed, as the AWS SDKs sign it; and the headers need no copy to add it
        // (a literal that starts with a spread and adds fields was slow on Node 20's V8).
        { method: 'POST', url: this.url, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }, body },
        { credentials: signingKeys, region: this.options.region, service: 'eks-auth' },
      );
      response = await this.post(headers, body);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== undefined && UNTRUSTED_CERTIFICATE.has(code)) {
        return {
          ok: false,
          retryable: false,
          outcome: 'tls',
          error: new WireError('ServiceUnavailableException', `EKS Auth's certificate is not trusted (${code}): check the agent's --ca-bundle.`, { cause: error }),
        };
      }
      const timedOut = (error as Error).name === 'AbortError' || (error as Error).name === 'TimeoutError';
      const detail = timedOut ? `no answer within ${this.timeoutMs} ms` : (code ?? (error as Error).message);
      return {
        ok: false,
        retryable: true,
        outcome: timedOut ? 'timeout' : 'network',
        error: new WireError('ServiceUnavailableException', `EKS Auth is unreachable: ${detail}.`, { cause: error }),
      };
    }
    if (response.status === 200) {
      const answer = decodeAssumeRoleResponse(response.body);
      if (answer) {
        const { credentials } = answer;
        // Encoded here, once: what is kept (and cached) is the answer's bytes,
        // not the decoded strings beside them.
        return {
          ok: true,
          credentials: issueCredentials({
            accessKeyId: credentials.accessKeyId,
            secretAccessKey: credentials.secretAccessKey,
            sessionToken: credentials.sessionToken,
            accountId: assumedRoleAccount(answer.assumedRoleUser.arn)!,
            expiresAt: credentials.expiration * 1000,
          }),
        };
      }
      return { ok: false, retryable: false, outcome: 'malformed', error: new WireError('InternalServerException', 'EKS Auth returned a response the agent cannot read.') };
    }
    const error = decodeErrorResponse(response);
    const retryable = response.status === 429 || response.status >= 500;
    // a server shedding load (429, 503) says when to come back
    return { ok: false, retryable, outcome: error.code, error, retryAfterMs: retryable ? parseRetryAfter(response.headers['retry-after']) : undefined };
  }

  private post(headers: Record<string, string>, body: string): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      // The attempt's deadline is one timer, cleared with the answer:
      // AbortSignal.timeout() would leave a timer and its signal behind for the
      // whole deadline after every call — thousands of them in a pod storm.
      const deadline = setTimeout(() => req.destroy(Object.assign(new Error('deadline exceeded'), { name: 'TimeoutError' })), this.timeoutMs);
      const fail = (error: Error) => {
        clearTimeout(deadline);
        reject(error);
      };
      const req = this.send(this.url, { method: 'POST', headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            req.destroy(new Error(`EKS Auth response exceeds ${MAX_RESPONSE_BYTES} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => {
          clearTimeout(deadline);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
        });
        res.on('error', fail);
      });
      req.on('error', fail);
      req.end(body);
    });
  }
}
