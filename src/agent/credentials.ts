// The one interface every credential source implements: the EKS Auth
// upstream, and the cache that wraps it. Handlers do not know whether the
// cache is on. What they hand out is IssuedCredentials: the endpoint's answer
// (api/credentials.ts) encoded once, when EKS Auth gave it.
import { hash } from 'node:crypto';
import { encodeCredentials, type PodCredentials } from '../api/credentials.js';

/**
 * A service-account token as a pod presented it. Its cache key, the SHA-256
 * of the exact token, is computed once, when first asked for; the handler
 * reuses the object while a kept-alive connection presents the same token, so
 * a cache hit costs no hashing.
 */
export class PresentedToken {
  private computedKey: string | undefined;

  constructor(readonly value: string) {}

  get key(): string {
    return (this.computedKey ??= hash('sha256', this.value, 'base64'));
  }
}

/** What the cache needs to know of an answer: when it stops being valid (epoch ms). */
export interface Expiring {
  readonly expiresAt: number;
}

/** `writeHead`'s flat header list for a JSON body of `length` bytes. */
export function jsonHeaders(length: number): string[] {
  return ['content-type', 'application/json', 'content-length', String(length)];
}

/**
 * One pod's credentials as the agent keeps and serves them: the 200 body's
 * bytes and headers, ready to write on every hit, and the expiry the cache
 * schedules by. The credential strings live only inside `body`, so a cached
 * entry holds them once, off the JS heap.
 */
export interface IssuedCredentials extends Expiring {
  readonly body: Buffer;
  readonly headers: string[];
}

/** Encodes credentials decoded from EKS Auth into what the agent keeps; the decoded strings can then go. */
export function issueCredentials(credentials: PodCredentials): IssuedCredentials {
  const body = encodeCredentials(credentials);
  return { expiresAt: credentials.expiresAt, body, headers: jsonHeaders(body.length) };
}

/**
 * Trades a projected service-account token for role credentials; failures
 * are WireErrors (a rejected promise). A source that already holds the answer
 * (the cache, on a hit) may return it directly, so the request path needs no
 * promise for it. The agent's sources answer IssuedCredentials; the cache
 * takes any answer that says when it expires.
 */
export interface CredentialSource<C extends Expiring> {
  getCredentials(token: PresentedToken): C | Promise<C>;
}
