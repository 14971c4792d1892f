// Which association a service account gets when patterns are in play: the one
// resolver the webhook and EKS Auth share, so a pod is mutated exactly when it
// can get credentials, and for the same association. A namespace or service
// account of an association is a name, `*`, or a prefix ending in `*`
// (`build-*`). The most specific match wins: exact beats prefix, a longer
// prefix beats a shorter one, any prefix beats `*`; the namespace is weighed
// before the service account.
import type { Association } from '../api/eks.js';
import type { AssociationStore } from './store.js';
import type { Subject } from './types.js';

/** Whether a namespace or service account of an association is a pattern rather than a name. */
export function isPattern(value: string): boolean {
  return value.endsWith('*');
}

/** Whether an association applies to more than one service account. */
export function hasPattern(association: Pick<Association, 'namespace' | 'serviceAccount'>): boolean {
  return isPattern(association.namespace) || isPattern(association.serviceAccount);
}

/** How closely `pattern` matches `value`: exact is Infinity, a prefix its length, `*` 0; undefined when it does not match. */
function closeness(pattern: string, value: string): number | undefined {
  if (!isPattern(pattern)) return pattern === value ? Number.POSITIVE_INFINITY : undefined;
  const prefix = pattern.slice(0, -1);
  return value.startsWith(prefix) ? prefix.length : undefined;
}

/** The most specific association of `candidates` for the service account; undefined when none matches. */
export function mostSpecific<A extends Pick<Association, 'namespace' | 'serviceAccount'>>(candidates: Iterable<A>, namespace: string, serviceAccount: string): A | undefined {
  let best: A | undefined;
  let bestNamespace = -1;
  let bestServiceAccount = -1;
  for (const candidate of candidates) {
    const ns = closeness(candidate.namespace, namespace);
    if (ns === undefined || ns < bestNamespace) continue;
    const sa = closeness(candidate.serviceAccount, serviceAccount);
    if (sa === undefined || (ns === bestNamespace && sa <= bestServiceAccount)) continue;
    best = candidate;
    bestNamespace = ns;
    bestServiceAccount = sa;
  }
  return best;
}

/** The association a service account resolves to, read from the store (its exact row and the cluster's patterns). */
export async function findAssociation(store: AssociationStore, subject: Subject): Promise<Association | undefined> {
  return mostSpecific(await store.findCandidates(subject), subject.namespace, subject.serviceAccount);
}
