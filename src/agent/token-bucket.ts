// A token bucket: `rate` tokens a second, at most `burst` saved up. Used for
// the per-listener request limit and for the background-refresh budget
// (--max-service-qps). The clock is injected so tests can step it.

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!(rate > 0) || !(burst >= 1)) throw new Error(`a token bucket needs rate > 0 and burst >= 1 (got ${rate}, ${burst})`);
    this.tokens = burst;
    this.last = now();
  }

  /** Takes one token if there is one. */
  take(): boolean {
    const now = this.now();
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
      this.last = now;
    }
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }
}
