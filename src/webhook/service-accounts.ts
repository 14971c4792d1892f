// The ServiceAccount's annotations (token-expiration, sts-regional-endpoints),
// read through the cluster's API. Only pods that get mutated need them, so
// they are fetched on demand, cached briefly, one request per account at a
// time, with a short timeout; when the API server cannot answer, they are
// treated as absent (the webhook's defaults apply).
import { CoreV1Api } from '@kubernetes/client-node';
import { describeKubeError, refusedStatus, type KubeApi } from '../kube/connect.js';
import { BoundedMap } from '../lib/bounded-cache.js';
import type { Logger } from '../lib/logger.js';

/** Returns the ServiceAccount's annotations, or undefined when it has none or they cannot be read. Never throws. */
export type ServiceAccountLookup = (namespace: string, serviceAccount: string) => Promise<Readonly<Record<string, string>> | undefined>;

export interface KubeLookupOptions {
  kube: KubeApi;
  logger: Logger;
  /** how long an answer (including "absent") is reused */
  ttlMs?: number;
  /** of each read; default 1 s */
  timeoutMs?: number;
  maxEntries?: number;
  now?: () => number;
}

type Annotations = Readonly<Record<string, string>> | undefined;

interface Entry {
  value: Annotations;
  expiresAt: number;
}

export function kubeServiceAccountLookup(options: KubeLookupOptions): ServiceAccountLookup {
  const core = options.kube.client(CoreV1Api, { timeoutMs: options.timeoutMs ?? 1_000 });
  const ttlMs = options.ttlMs ?? 60_000;
  const now = options.now ?? Date.now;
  // expired entries are kept: a stale answer beats none when the API server cannot answer
  const cache = new BoundedMap<string, Entry>(options.maxEntries ?? 10_000);
  const inFlight = new Map<string, Promise<Annotations>>();

  async function fetchAnnotations(namespace: string, name: string): Promise<Annotations> {
    try {
      return (await core.readNamespacedServiceAccount({ namespace, name })).metadata?.annotations;
    } catch (error) {
      if (refusedStatus(error) === 404) return undefined;
      throw new Error(describeKubeError(error), { cause: error });
    }
  }

  return function serviceAccountAnnotations(namespace, name) {
    const key = `${namespace}/${name}`;
    const hit = cache.get(key);
    if (hit && hit.expiresAt > now()) return Promise.resolve(hit.value);
    const pending = inFlight.get(key);
    if (pending) return pending;
    const lookup = fetchAnnotations(namespace, name)
      .then(
        (value) => {
          cache.set(key, { value, expiresAt: now() + ttlMs });
          return value;
        },
        (error: unknown) => {
          // A stale answer beats none; otherwise fall back to the default expiration.
          options.logger.warn({ namespace, serviceAccount: name, err: (error as Error).message }, 'cannot read the service account; its annotations are ignored');
          return hit?.value;
        },
      )
      .finally(() => inFlight.delete(key));
    inFlight.set(key, lookup);
    return lookup;
  };
}
