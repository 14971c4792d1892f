// The credential cache in front of the upstream; it is itself a
// CredentialSource, so the handler is the same with the cache on or off.
//
// Policy (the numbers are options; defaults in brackets):
// - Key: SHA-256 of the exact token (PresentedToken.key). The token is kept
//   in the entry only to refresh it; never a claim, never logged.
// - One upstream call per key at a time: concurrent requests share it.
// - Credentials are handed out only while they have more than `minRemaining`
//   [15 min] left (or, for short-lived ones, until half their lifetime):
//   botocore refreshes 15 min before expiry and asks on every call past that.
//   Past that point a request waits up to `freshWait` [500 ms] for fresher
//   ones; if upstream cannot give them, still-valid credentials are served.
// - Background refresh at 40–50 % of the lifetime (jittered, so entries made
//   together spread out), at most `maxRefreshQps` upstream calls a second.
// - Entries nobody asked for in `idle` [60 min] are dropped, not refreshed;
//   so are entries whose token expired. AccessDenied, InvalidToken,
//   ExpiredToken and ResourceNotFound drop the entry at once.
// - At most `maxSize` entries of credentials the server issued; the least
//   recently used goes first. A token the server has not accepted yet waits
//   apart, among at most `maxPending` [maxSize] others: it never displaces
//   issued credentials, and when that room is full a new token is answered
//   ThrottlingException without an upstream call. A pod flooding the agent
//   with junk tokens while EKS Auth hangs therefore fills only the waiting
//   room, and every other pod keeps its cached credentials.
import { isWireError, WireError } from '../lib/errors.js';
import type { CredentialSource, Expiring, PresentedToken } from './credentials.js';
import { readTokenExpiry } from './token.js';
import { TokenBucket } from '../lib/token-bucket.js';

export type EvictionReason = 'capacity' | 'idle' | 'token-expired' | 'upstream-denied';
type RefreshOutcome = 'ok' | 'error' | 'evicted';

export interface CacheEvents {
  hit?(): void;
  miss?(): void;
  /** valid but older credentials were served because upstream failed or was slow */
  stale?(): void;
  evicted?(reason: EvictionReason): void;
  refreshed?(outcome: RefreshOutcome): void;
}

export interface CredentialCacheOptions<C extends Expiring> {
  upstream: CredentialSource<C>;
  maxSize: number;
  /** tokens waiting for their first upstream answer, at most; default maxSize */
  maxPending?: number;
  /** background refreshes a second (--max-service-qps) */
  maxRefreshQps: number;
  now?: () => number;
  random?: () => number;
  /** ms; default 15 min */
  minRemainingMs?: number;
  /** ms an entry may go unrequested before it is dropped; default 60 min */
  idleMs?: number;
  /** ms a request for not-fresh-enough credentials waits for upstream before taking the valid ones; default 500 */
  freshWaitMs?: number;
  /** ms before a failed background refresh is tried again (jittered ×0.5–1.5); default 60 s */
  retryMs?: number;
  /** credentials with less than this left are not served even when upstream is down; default 15 s */
  minValidMs?: number;
  /** how often the background sweep runs; 0 = never by itself (tests call sweep()); default 1000 */
  sweepIntervalMs?: number;
  events?: CacheEvents;
}

const EVICTING_CODES = new Set(['AccessDeniedException', 'InvalidTokenException', 'ExpiredTokenException', 'ResourceNotFoundException']);

/** Upstream answers that mean "these credentials must not be served again". */
function isEvictingError(error: unknown): boolean {
  return isWireError(error) && EVICTING_CODES.has(error.code);
}

/** When to refresh in the background and until when to hand out, for credentials fetched at `now`. Pure. */
export function schedule(now: number, expiresAt: number, minRemainingMs: number, random: number): { refreshAt: number; freshUntil: number } {
  const lifetime = Math.max(0, expiresAt - now);
  return {
    refreshAt: now + lifetime * (0.5 - 0.1 * random),
    freshUntil: Math.max(expiresAt - minRemainingMs, now + lifetime / 2),
  };
}

interface Entry<C> {
  readonly key: string;
  readonly token: PresentedToken;
  readonly tokenExpiresAt: number;
  credentials: C | undefined;
  refreshAt: number;
  freshUntil: number;
  lastUsedAt: number;
  inflight: Promise<C> | undefined;
}

/** Touching the LRU order costs a Map delete+set; once a second per entry is enough. */
const TOUCH_INTERVAL_MS = 1000;

const TOO_MANY_PENDING = 'Too many new service account tokens are waiting for EKS Auth; retry shortly.';

/** Caches any source's answers; the agent's are IssuedCredentials, tests use readable stand-ins. */
export class CredentialCache<C extends Expiring> implements CredentialSource<C> {
  /** entries holding credentials the server issued, least recently used first */
  private readonly entries = new Map<string, Entry<C>>();
  /** entries waiting for their first answer: never in the LRU, so they never evict issued credentials */
  private readonly pending = new Map<string, Entry<C>>();
  private readonly upstream: CredentialSource<C>;
  private readonly maxSize: number;
  private readonly maxPending: number;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly minRemainingMs: number;
  private readonly idleMs: number;
  private readonly freshWaitMs: number;
  private readonly retryMs: number;
  private readonly minValidMs: number;
  private readonly refreshBudget: TokenBucket;
  private readonly events: CacheEvents;
  private readonly timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;

  constructor(options: CredentialCacheOptions<C>) {
    if (!(options.maxSize >= 1)) throw new Error('the credential cache needs maxSize >= 1 (use the upstream directly to disable caching)');
    this.upstream = options.upstream;
    this.maxSize = options.maxSize;
    this.maxPending = Math.max(1, options.maxPending ?? options.maxSize);
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.minRemainingMs = options.minRemainingMs ?? 15 * 60_000;
    this.idleMs = options.idleMs ?? 60 * 60_000;
    this.freshWaitMs = options.freshWaitMs ?? 500;
    this.retryMs = options.retryMs ?? 60_000;
    this.minValidMs = options.minValidMs ?? 15_000;
    this.refreshBudget = new TokenBucket({ rate: options.maxRefreshQps, burst: Math.max(1, options.maxRefreshQps) }, this.now());
    this.events = options.events ?? {};
    const interval = options.sweepIntervalMs ?? 1000;
    if (interval > 0) {
      this.timer = setInterval(() => {
        // refreshInBackground settles every refresh, so a sweep does not fail
        this.sweeping ??= this.sweep()
          .catch(() => undefined)
          .finally(() => {
            this.sweeping = undefined;
          });
      }, interval);
      this.timer.unref();
    }
  }

  /** entries holding credentials */
  get size(): number {
    return this.entries.size;
  }

  /** tokens waiting for their first upstream answer */
  get pendingCount(): number {
    return this.pending.size;
  }

  getCredentials(token: PresentedToken): C | Promise<C> {
    const key = token.key;
    const now = this.now();
    const entry = this.entries.get(key);
    if (entry !== undefined) {
      if (now >= entry.tokenExpiresAt) {
        this.evict(entry, 'token-expired');
        return Promise.reject(new WireError('ExpiredTokenException', 'Service account token has expired.'));
      }
      if (now - entry.lastUsedAt >= TOUCH_INTERVAL_MS) {
        this.entries.delete(key);
        this.entries.set(key, entry);
      }
      entry.lastUsedAt = now;
      const credentials = entry.credentials;
      if (credentials !== undefined && now < entry.freshUntil) {
        this.events.hit?.();
        return credentials;
      }
      this.events.miss?.();
      return this.fetchForRequest(entry);
    }
    const waiting = this.pending.get(key);
    if (waiting !== undefined) {
      this.events.miss?.();
      return this.fetchForRequest(waiting);
    }
    this.events.miss?.();
    let tokenExpiresAt: number;
    try {
      tokenExpiresAt = readTokenExpiry(token.value, now);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.pending.size >= this.maxPending) return Promise.reject(new WireError('ThrottlingException', TOO_MANY_PENDING));
    const created: Entry<C> = { key, token, tokenExpiresAt, credentials: undefined, refreshAt: Infinity, freshUntil: 0, lastUsedAt: now, inflight: undefined };
    this.pending.set(key, created);
    return this.fetchForRequest(created);
  }

  /**
   * Refreshes what is due (oldest first, within the refresh budget) and drops
   * idle or dead entries. Runs on its own every `sweepIntervalMs`; tests call it.
   */
  async sweep(): Promise<void> {
    const now = this.now();
    const due: Entry<C>[] = [];
    for (const entry of this.entries.values()) {
      if (now >= entry.tokenExpiresAt) this.evict(entry, 'token-expired');
      else if (now - entry.lastUsedAt >= this.idleMs) this.evict(entry, 'idle');
      else if (entry.inflight === undefined && entry.credentials !== undefined && now >= entry.refreshAt) due.push(entry);
    }
    due.sort((a, b) => a.refreshAt - b.refreshAt);
    const started: Promise<void>[] = [];
    for (const entry of due) {
      if (!this.refreshBudget.take(now)) break;
      started.push(this.refreshInBackground(entry));
    }
    await Promise.all(started);
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.entries.clear();
    this.pending.clear();
  }

  private async fetchForRequest(entry: Entry<C>): Promise<C> {
    const fetching = (entry.inflight ??= this.fetch(entry));
    const held = entry.credentials;
    if (held === undefined || !this.isValid(held)) return fetching;
    // Fresher credentials are wanted but valid ones are at hand: wait a little
    // for upstream, then serve what we have (the fetch goes on regardless).
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), this.freshWaitMs);
    });
    try {
      const fresh = await Promise.race([fetching, waited]);
      if (fresh !== undefined) return fresh;
    } catch (error) {
      if (isEvictingError(error)) throw error;
    } finally {
      clearTimeout(timer);
    }
    if (entry.credentials !== undefined && this.isValid(entry.credentials)) {
      this.events.stale?.();
      return entry.credentials;
    }
    return fetching;
  }

  private isValid(credentials: C): boolean {
    return credentials.expiresAt - this.now() > this.minValidMs;
  }

  /** One upstream call for the entry; its outcome updates or drops the entry. */
  private async fetch(entry: Entry<C>): Promise<C> {
    try {
      const credentials = await this.upstream.getCredentials(entry.token);
      this.store(entry, credentials);
      return credentials;
    } catch (error) {
      if (isEvictingError(error)) this.evict(entry, 'upstream-denied');
      else if (entry.credentials === undefined) this.remove(entry);
      throw error;
    } finally {
      entry.inflight = undefined;
    }
  }

  private async refreshInBackground(entry: Entry<C>): Promise<void> {
    const fetching = (entry.inflight = this.fetch(entry));
    try {
      await fetching;
      this.events.refreshed?.('ok');
    } catch (error) {
      if (isEvictingError(error)) {
        this.events.refreshed?.('evicted');
        return;
      }
      this.events.refreshed?.('error');
      entry.refreshAt = this.now() + this.retryMs * (0.5 + this.random());
    }
  }

  private store(entry: Entry<C>, credentials: C): void {
    const now = this.now();
    const { refreshAt, freshUntil } = schedule(now, credentials.expiresAt, this.minRemainingMs, this.random());
    entry.credentials = credentials;
    entry.refreshAt = refreshAt;
    entry.freshUntil = freshUntil;
    // Accepted by the server: the entry leaves the waiting room for the LRU,
    // where only issued credentials compete for room.
    if (this.pending.get(entry.key) === entry) {
      this.pending.delete(entry.key);
      this.entries.set(entry.key, entry);
      while (this.entries.size > this.maxSize) {
        const oldest = this.entries.values().next().value as Entry<C>;
        this.evict(oldest, 'capacity');
      }
    }
  }

  private evict(entry: Entry<C>, reason: EvictionReason): void {
    if (this.remove(entry)) this.events.evicted?.(reason);
  }

  /** Removes the entry if it is still the one kept under its key (cached or waiting). */
  private remove(entry: Entry<C>): boolean {
    if (this.pending.get(entry.key) === entry) {
      this.pending.delete(entry.key);
      return true;
    }
    if (this.entries.get(entry.key) !== entry) return false;
    this.entries.delete(entry.key);
    return true;
  }
}
