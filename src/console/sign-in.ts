// Signing in to the console with an admin access key id and its secret: the
// same configured keys, looked up the same way, that the association API
// verifies SigV4 with (the server passes its key lookup in). A browser cannot
// sign requests, so the secret itself is compared, in constant time. Attempts
// are throttled per client address and overall, so guessing is slow.
import { createHash, timingSafeEqual } from 'node:crypto';
import { BoundedMap } from '../lib/bounded-cache.js';
import type { SigningKey } from '../lib/sigv4.js';
import { TokenBucket, type RateLimit } from '../lib/token-bucket.js';

export type KeyLookup = (accessKeyId: string) => SigningKey | undefined;

/** A stand-in compared when the key id is unknown, so both failures take the same time. */
const NO_SECRET = createHash('sha256').update('no such key').digest();

/** The access key id when the secret is that key's, else undefined. */
export function verifyAdminKey(lookup: KeyLookup, accessKeyId: string, secret: string): string | undefined {
  const key = accessKeyId ? lookup(accessKeyId) : undefined;
  // hashes first: timingSafeEqual needs equal lengths, and a secret's length is not to be told
  const expected = key ? createHash('sha256').update(key.secretAccessKey).digest() : NO_SECRET;
  const given = createHash('sha256').update(secret).digest();
  return timingSafeEqual(expected, given) && key ? key.accessKeyId : undefined;
}

export interface SignInLimits {
  perAddress: RateLimit;
  overall: RateLimit;
}

/** Sign-in attempts of one address: 5 at once, then one every 12 s; 10 a second for everyone together. */
const DEFAULT_SIGN_IN_LIMITS: SignInLimits = { perAddress: { rate: 1 / 12, burst: 5 }, overall: { rate: 10, burst: 20 } };

export class SignInThrottle {
  private readonly byAddress = new BoundedMap<string, TokenBucket>(10_000);
  private readonly overall: TokenBucket;
  /** the longest wait for a refused address's next attempt: one token of the slower bucket */
  readonly retryAfterSeconds: number;

  constructor(
    private readonly limits: SignInLimits = DEFAULT_SIGN_IN_LIMITS,
    private readonly now: () => number = Date.now,
  ) {
    this.overall = new TokenBucket(limits.overall, now());
    this.retryAfterSeconds = Math.ceil(1 / Math.min(limits.perAddress.rate, limits.overall.rate));
  }

  /** Whether an attempt from `address` may go ahead now. */
  allow(address: string): boolean {
    const now = this.now();
    let bucket = this.byAddress.get(address);
    if (!bucket) this.byAddress.set(address, (bucket = new TokenBucket(this.limits.perAddress, now)));
    return bucket.take(now) && this.overall.take(now);
  }
}
