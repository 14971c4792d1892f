// A bounded cache of already-verified tokens, keyed by the token's SHA-256
// (never the token itself), each entry kept until its own deadline. Repeated
// requests with the same projected token (the agent's refreshes, SDK retries)
// then skip signature verification; revocation is applied outside it.
import { hash } from 'node:crypto';

export function tokenHash(token: string): string {
  return hash('sha256', token, 'base64');
}

interface Entry<T> {
  value: T;
  /** epoch milliseconds */
  until: number;
}

export class VerifiedTokenCache<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(hash: string): T | undefined {
    const entry = this.entries.get(hash);
    if (!entry) return undefined;
    if (entry.until <= this.now()) {
      this.entries.delete(hash);
      return undefined;
    }
    return entry.value;
  }

  /** Keeps `value` until `until` (epoch ms); the oldest entry makes room when full. */
  set(hash: string, value: T, until: number): void {
    if (this.maxEntries <= 0 || until <= this.now()) return;
    this.entries.delete(hash);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(hash, { value, until });
  }

  delete(hash: string): void {
    this.entries.delete(hash);
  }
}
