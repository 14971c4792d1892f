// The one interface every credential source implements: the EKS Auth
// upstream, and the cache that wraps it. Handlers do not know whether the
// cache is on. What they hand out is api/credentials.ts's PodCredentials.
import { hash } from 'node:crypto';
import type { PodCredentials } from '../api/credentials.js';

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

/**
 * Trades a projected service-account token for role credentials; failures
 * are WireErrors (a rejected promise). A source that already holds the answer
 * (the cache, on a hit) may return it directly, so the request path needs no
 * promise for it.
 */
export interface CredentialSource {
  getCredentials(token: PresentedToken): PodCredentials | Promise<PodCredentials>;
}
