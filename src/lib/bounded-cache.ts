// Bounded in-memory caches: verified tokens and their headers, association
// lookups, pod liveness, SigV4 signing keys and canonical-request heads, local
// role ids and the webhook's service accounts. (The throttle keeps its own policy: it
// drops full buckets first, so that no limit is forgotten.)
//
// They forget in two generations rather than one oldest entry at a time. The
// obvious one-at-a-time eviction, `map.delete(map.keys().next().value)`, is
// slow in V8: a deleted entry stays behind as a hole until the table is
// rebuilt, and every new iterator walks over all the holes from the start. At
// capacity, each eviction then cost 13–25 µs (measured), and a stream of
// never-seen tokens made the verified-token cache the largest source of tail
// latency in the AssumeRoleForPodIdentity benchmark.

/**
 * A Map of at most `maxEntries` entries (at least 2; none when 0 or less).
 * New and recently read entries live in the recent generation; when it holds
 * half the bound, it becomes the older generation and the previous older one
 * is dropped whole. An entry read while older moves back to the recent one,
 * so what is in use stays and what is not goes first.
 */
export class BoundedMap<K, V> {
  private recent = new Map<K, V>();
  private older = new Map<K, V>();
  private readonly generationSize: number;

  constructor(private readonly maxEntries: number) {
    this.generationSize = Math.max(1, Math.floor(maxEntries / 2));
  }

  get size(): number {
    return this.recent.size + this.older.size;
  }

  get(key: K): V | undefined {
    const value = this.recent.get(key);
    if (value !== undefined || !this.older.has(key)) return value;
    const kept = this.older.get(key) as V;
    this.older.delete(key);
    this.insert(key, kept);
    return kept;
  }

  set(key: K, value: V): void {
    if (this.maxEntries <= 0) return;
    this.older.delete(key);
    this.insert(key, value);
  }

  /** Every value, each once (the recent generation's first). */
  *values(): IterableIterator<V> {
    yield* this.recent.values();
    yield* this.older.values();
  }

  /** Whether the key was there. */
  delete(key: K): boolean {
    const inRecent = this.recent.delete(key);
    return this.older.delete(key) || inRecent;
  }

  private insert(key: K, value: V): void {
    if (this.recent.size >= this.generationSize && !this.recent.has(key)) {
      this.older = this.recent;
      this.recent = new Map();
    }
    this.recent.set(key, value);
  }
}

interface Expiring<V> {
  value: V;
  /** epoch milliseconds */
  until: number;
}

/** A BoundedMap whose entries each carry their own deadline; an expired entry reads as absent. */
export class ExpiringCache<K, V> {
  private readonly entries: BoundedMap<K, Expiring<V>>;

  constructor(
    maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {
    this.entries = new BoundedMap(maxEntries);
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.until <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Keeps `value` until `until` (epoch ms); a deadline already past keeps nothing. */
  set(key: K, value: V, until: number): void {
    if (until <= this.now()) return;
    this.entries.set(key, { value, until });
  }

  delete(key: K): void {
    this.entries.delete(key);
  }
}
