// Throttling by token buckets: one per cluster and one per service account,
// sized from config. The clock is injected; buckets of idle service accounts
// are dropped first when the map is full (a full bucket holds no state worth
// keeping).

export interface RateLimit {
  /** sustained requests per second */
  rate: number;
  /** bucket size */
  burst: number;
}

export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly limit: RateLimit,
    now: number,
  ) {
    this.tokens = limit.burst;
    this.updatedAt = now;
  }

  /** Takes one token when there is one; `now` in milliseconds. */
  take(now: number): boolean {
    const elapsed = Math.max(0, now - this.updatedAt) / 1000;
    this.tokens = Math.min(this.limit.burst, this.tokens + elapsed * this.limit.rate);
    this.updatedAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Whether the bucket would be full by `now` (nothing to remember). */
  isFull(now: number): boolean {
    return this.tokens + (Math.max(0, now - this.updatedAt) / 1000) * this.limit.rate >= this.limit.burst;
  }
}

export class KeyedBuckets {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly limit: RateLimit,
    private readonly maxKeys = 100_000,
  ) {}

  take(key: string, now: number): boolean {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= this.maxKeys) this.evict(now);
      bucket = new TokenBucket(this.limit, now);
      this.buckets.set(key, bucket);
    }
    return bucket.take(now);
  }

  private evict(now: number): void {
    for (const [key, bucket] of this.buckets) if (bucket.isFull(now)) this.buckets.delete(key);
    // Still full of busy buckets: drop the oldest.
    if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
  }
}
