// Association resolution for EKS Auth: (cluster, namespace, service account)
// → association, from the store, with a short in-memory cache that the store's
// change feed keeps current (so a delete takes effect at once) and a TTL as a
// backstop.
import type { AssociationStore } from '../associations/store.js';
import type { Association } from '../api/eks.js';
import type { Subject } from '../associations/types.js';
import { ExpiringCache } from '../lib/bounded-cache.js';
import { WireError } from '../lib/errors.js';

export interface ResolverOptions {
  store: AssociationStore;
  ttlMs?: number;
  maxEntries?: number;
  now?: () => number;
}

function subjectKey(s: Subject): string {
  return `${s.clusterName}\u0000${s.namespace}\u0000${s.serviceAccount}`;
}

export class AssociationResolver {
  /** null: the store has no association for the subject (remembered too) */
  private readonly cache: ExpiringCache<string, Association | null>;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly unsubscribe: () => void;
  /** bumped by every change, so a read that raced a change is not cached */
  private generation = 0;

  constructor(private readonly options: ResolverOptions) {
    this.ttlMs = options.ttlMs ?? 10_000;
    this.now = options.now ?? Date.now;
    this.cache = new ExpiringCache(options.maxEntries ?? 50_000, this.now);
    this.unsubscribe = options.store.onChange(({ association }) => {
      this.generation++;
      this.cache.delete(subjectKey(association));
    });
  }

  /** The association of a subject; none is ResourceNotFoundException naming it. */
  async resolve(subject: Subject): Promise<Association> {
    const key = subjectKey(subject);
    const hit = this.cache.get(key);
    if (hit !== undefined) return this.found(subject, hit ?? undefined);
    const generation = this.generation;
    const association = await this.options.store.findBySubject(subject);
    // A change landed while the store was read: the answer may be stale, so it is not remembered.
    if (generation === this.generation) this.cache.set(key, association ?? null, this.now() + this.ttlMs);
    return this.found(subject, association);
  }

  private found(subject: Subject, association: Association | undefined): Association {
    if (!association) {
      throw new WireError(
        'ResourceNotFoundException',
        `No Pod Identity association found for service account ${subject.serviceAccount} in namespace ${subject.namespace} of cluster ${subject.clusterName}.`,
        { reason: 'no_association' },
      );
    }
    return association;
  }

  close(): void {
    this.unsubscribe();
  }
}
