// The ServiceAccount's annotations (token-expiration, sts-regional-endpoints),
// read through the cluster's kubeconfig. Only pods that get mutated need
// them, so they are fetched on demand, cached briefly, one request per
// account at a time, with a short timeout; when the API server cannot answer,
// they are treated as absent (the webhook's defaults apply).
import { BoundedMap } from '../lib/bounded-cache.js';
import type { Logger } from '../lib/logger.js';
import { kubeClientFromKubeconfig } from '../kube/client.js';

/** Returns the ServiceAccount's annotations, or undefined when it has none or they cannot be read. Never throws. */
export type ServiceAccountLookup = (namespace: string, serviceAccount: string) => Promise<Readonly<Record<string, string>> | undefined>;

export interface KubeLookupOptions {
  kubeconfigPath: string;
  logger: Logger;
  /** how long an answer (including "absent") is reused */
  ttlMs?: number;
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
  const kube = kubeClientFromKubeconfig(options.kubeconfigPath);
  const ttlMs = options.ttlMs ?? 60_000;
  const timeoutMs = options.timeoutMs ?? 1_000;
  const now = options.now ?? Date.now;
  // expired entries are kept: a stale answer beats none when the API server cannot answer
  const cache = new BoundedMap<string, Entry>(options.maxEntries ?? 10_000);
  const inFlight = new Map<string, Promise<Annotations>>();

  async function fetchAnnotations(namespace: string, name: string): Promise<Annotations> {
    const { status, body } = await kube.request('GET', `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(name)}`, { timeoutMs });
    if (status === 404) return undefined;
    if (status !== 200) throw new Error(`the API server answered ${status}`);
    return (body as { metadata?: { annotations?: Record<string, string> } } | undefined)?.metadata?.annotations;
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
