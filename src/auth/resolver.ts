// Association resolution for EKS Auth: (cluster, namespace, service account)
// → association, from the store, with a short in-memory cache that the store's
// change feed keeps current (so a delete takes effect at once) and a TTL as a
// backstop.
import type { AssociationStore } from '../associations/store.js';
import type { Association, Subject } from '../associations/types.js';
import { WireError } from '../lib/errors.js';

export interface ResolverOptions {
  store: AssociationStore;
  ttlMs?: number;
  maxEntries?: number;
  now?: () => number;
}

interface Entry {
  association: Association | undefined;
  until: number;
}

function subjectKey(s: Subject): string {
  return `${s.clusterName}\u0000${s.namespace}\u0000${s.serviceAccount}`;
}

export class AssociationResolver {
  private readonly cache = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly unsubscribe: () => void;
  /** bumped by every change, so a read that raced a change is not cached */
  private generation = 0;

  constructor(private readonly options: ResolverOptions) {
    this.ttlMs = options.ttlMs ?? 10_000;
    this.maxEntries = options.maxEntries ?? 50_000;
    this.now = options.now ?? Date.now;
    this.unsubscribe = options.store.onChange(({ association }) => {
      this.generation++;
      this.cache.delete(subjectKey(association));
    });
  }

  /** The association of a subject; none is ResourceNotFoundException naming it. */
  async resolve(subject: Subject): Promise<Association> {
    const key = subjectKey(subject);
    const hit = this.cache.get(key);
    let association: Association | undefined;
    if (hit && hit.until > this.now()) {
      association = hit.association;
    } else {
      const generation = this.generation;
      association = await this.options.store.findBySubject(subject);
      if (generation !== this.generation) return this.found(subject, association);
      if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(key, { association, until: this.now() + this.ttlMs });
    }
    return this.found(subject, association);
  }

  private found(subject: Subject, association: Association | undefined): Association {
    if (!association) {
      throw new WireError(
        'ResourceNotFoundException',
        `No Pod Identity association found for service account ${subject.serviceAccount} in namespace ${subject.namespace} of cluster ${subject.clusterName}.`,
      );
    }
    return association;
  }

  close(): void {
    this.unsubscribe();
  }
}
