// Association resolution for EKS Auth: (cluster, namespace, service account)
// → association, from the store through the resolver the webhook uses too
// (associations/resolve.ts, patterns included), with a short in-memory cache
// that the store's change feed keeps current (so a delete takes effect at
// once) and a TTL as a backstop.
import { findAssociation, hasPattern } from '../associations/resolve.js';
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

interface Resolved {
  /** null: the store has no association for the subject (remembered too) */
  association: Association | null;
  /** the pattern generation it was read in */
  patterns: number;
}

export class AssociationResolver {
  private readonly cache: ExpiringCache<string, Resolved>;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly unsubscribe: () => void;
  /** bumped by every change, so a read that raced a change is not cached */
  private generation = 0;
  /** bumped by every change of a pattern association, which may change the answer for any subject: older entries are void */
  private patternGeneration = 0;

  constructor(private readonly options: ResolverOptions) {
    this.ttlMs = options.ttlMs ?? 10_000;
    this.now = options.now ?? Date.now;
    this.cache = new ExpiringCache(options.maxEntries ?? 50_000, this.now);
    this.unsubscribe = options.store.onChange(({ association }) => {
      this.generation++;
      if (hasPattern(association)) this.patternGeneration++;
      else this.cache.delete(subjectKey(association));
    });
  }

  /** The association of a subject; none is ResourceNotFoundException naming it. */
  async resolve(subject: Subject): Promise<Association> {
    const key = subjectKey(subject);
    const hit = this.cache.get(key);
    if (hit !== undefined && hit.patterns === this.patternGeneration) return this.found(subject, hit.association ?? undefined);
    const generation = this.generation;
    const patterns = this.patternGeneration;
    const association = await findAssociation(this.options.store, subject);
    // A change landed while the store was read: the answer may be stale, so it is not remembered.
    if (generation === this.generation) this.cache.set(key, { association: association ?? null, patterns }, this.now() + this.ttlMs);
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
