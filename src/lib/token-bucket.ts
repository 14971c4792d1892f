// The one token bucket: `rate` tokens a second, at most `burst` saved up. It
// limits the agent's listeners and its background refreshes
// (--max-service-qps), and EKS Auth per cluster and per service account. The
// caller passes the time, so tests step their own clock.

export interface RateLimit {
  /** sustained tokens per second */
  rate: number;
  /** most tokens saved up */
  burst: number;
}

export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  /** Full at `now` (epoch ms). */
  constructor(
    private readonly limit: RateLimit,
    now: number,
  ) {
    if (!(limit.rate > 0) || !(limit.burst >= 1)) throw new Error(`a token bucket needs rate > 0 and burst >= 1 (got ${limit.rate}, ${limit.burst})`);
    this.tokens = limit.burst;
    this.updatedAt = now;
  }

  /** Takes one token if there is one at `now` (epoch ms). */
  take(now: number): boolean {
    if (now > this.updatedAt) {
      this.tokens = Math.min(this.limit.burst, this.tokens + ((now - this.updatedAt) * this.limit.rate) / 1000);
      this.updatedAt = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Whether the bucket would be full at `now`, so nothing about it is worth remembering. */
  isFull(now: number): boolean {
    return this.tokens + (Math.max(0, now - this.updatedAt) / 1000) * this.limit.rate >= this.limit.burst;
  }
}
