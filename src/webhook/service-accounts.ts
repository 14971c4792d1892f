// The ServiceAccount's token-expiration annotation, read through the cluster's
// kubeconfig. Only pods that get mutated and carry no annotation of their own
// need it, so it is fetched on demand, cached briefly, one request per account
// at a time, with a short timeout; when the API server cannot answer, the
// annotation is treated as absent (the default expiration applies).
import { CoreV1Api } from '@kubernetes/client-node';
import { describeKubeError, refusedStatus, type KubeApi } from '../kube/connect.js';
import { BoundedMap } from '../lib/bounded-cache.js';
import type { Logger } from '../lib/logger.js';
import { ANNOTATION_TOKEN_EXPIRATION } from './mutate.js';

/** Returns the annotation's value, or undefined when absent or unknown. Never throws. */
export type ServiceAccountExpirationLookup = (namespace: string, serviceAccount: string) => Promise<string | undefined>;

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

interface Entry {
  value: string | undefined;
  expiresAt: number;
}

export function kubeServiceAccountLookup(options: KubeLookupOptions): ServiceAccountExpirationLookup {
  const core = options.kube.client(CoreV1Api, { timeoutMs: options.timeoutMs ?? 1_000 });
  const ttlMs = options.ttlMs ?? 60_000;
  const now = options.now ?? Date.now;
  // expired entries are kept: a stale answer beats none when the API server cannot answer
  const cache = new BoundedMap<string, Entry>(options.maxEntries ?? 10_000);
  const inFlight = new Map<string, Promise<string | undefined>>();

  async function fetchAnnotation(namespace: string, name: string): Promise<string | undefined> {
    try {
      return (await core.readNamespacedServiceAccount({ namespace, name })).metadata?.annotations?.[ANNOTATION_TOKEN_EXPIRATION];
    } catch (error) {
      if (refusedStatus(error) === 404) return undefined;
      throw new Error(describeKubeError(error), { cause: error });
    }
  }

  return function serviceAccountTokenExpiration(namespace, name) {
    const key = `${namespace}/${name}`;
    const hit = cache.get(key);
    if (hit && hit.expiresAt > now()) return Promise.resolve(hit.value);
    const pending = inFlight.get(key);
    if (pending) return pending;
    const lookup = fetchAnnotation(namespace, name)
      .then(
        (value) => {
          cache.set(key, { value, expiresAt: now() + ttlMs });
          return value;
        },
        (error: unknown) => {
          // A stale answer beats none; otherwise fall back to the default expiration.
          options.logger.warn({ namespace, serviceAccount: name, err: (error as Error).message }, 'cannot read the service account; its token-expiration annotation is ignored');
          return hit?.value;
        },
      )
      .finally(() => inFlight.delete(key));
    inFlight.set(key, lookup);
    return lookup;
  };
}
