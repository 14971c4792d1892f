// What the agent hands out and the one interface every credential source
// implements: the EKS Auth upstream, and the cache that wraps it. Handlers do
// not know whether the cache is on.
import { hash } from 'node:crypto';

/** Role credentials for one pod, as the container-credentials endpoint serves them. */
export interface PodCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  /** 12-digit account id, taken from the assumed-role ARN */
  readonly accountId: string;
  /** epoch milliseconds */
  readonly expiresAt: number;
}

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

/** `2024-01-01T00:00:00Z`: RFC 3339 in UTC with `Z`, whole seconds (the JS SDK rejects offsets). */
export function formatExpiration(epochMs: number): string {
  const iso = new Date(Math.floor(epochMs / 1000) * 1000).toISOString();
  return `${iso.slice(0, 19)}Z`;
}

/**
 * The exact response body of GET /v1/credentials (field names the SDKs parse).
 * The bytes get their own memory, not a slice of Node's shared 8 KiB pool:
 * they live as long as the cache entry, and a pooled slice would keep its
 * whole slab — and the short-lived buffers cut from it — alive with it.
 */
export function encodeCredentials(credentials: PodCredentials): Buffer {
  const json = JSON.stringify({
    AccessKeyId: credentials.accessKeyId,
    SecretAccessKey: credentials.secretAccessKey,
    Token: credentials.sessionToken,
    AccountId: credentials.accountId,
    Expiration: formatExpiration(credentials.expiresAt),
  });
  const body = Buffer.allocUnsafeSlow(Buffer.byteLength(json));
  body.write(json);
  return body;
}
