// Revocation in JWKS mode: a token verified locally stays cryptographically
// valid after its pod is deleted, so, when the cluster has API access, the
// token's pod must still exist with the same uid. Answers are remembered
// briefly (alive) or long (gone: a uid never comes back), one lookup per pod
// at a time; the alive TTL bounds how late a deletion is noticed.
import { ExpiringCache } from '../lib/bounded-cache.js';
import type { Logger } from '../lib/logger.js';
import { invalidToken, refused, type PodIdentityClaims } from './claims.js';
import type { KubeClient } from '../kube/client.js';

export interface PodLivenessOptions {
  kube: KubeClient;
  logger: Logger;
  /** how long "the pod exists" is believed */
  aliveTtlMs?: number;
  /** how long "the pod is gone" is remembered */
  goneTtlMs?: number;
  maxEntries?: number;
  timeoutMs?: number;
  now?: () => number;
}

export type PodLivenessCheck = (claims: PodIdentityClaims) => Promise<void>;

export function podLivenessCheck(options: PodLivenessOptions): PodLivenessCheck {
  const aliveTtlMs = options.aliveTtlMs ?? 20_000;
  const goneTtlMs = options.goneTtlMs ?? 10 * 60_000;
  const now = options.now ?? Date.now;
  /** pod uid → alive */
  const known = new ExpiringCache<string, boolean>(options.maxEntries ?? 50_000, now);
  const inFlight = new Map<string, Promise<boolean>>();

  async function lookUp(claims: PodIdentityClaims): Promise<boolean> {
    const path = `/api/v1/namespaces/${encodeURIComponent(claims.namespace)}/pods/${encodeURIComponent(claims.podName)}`;
    let response;
    try {
      response = await options.kube.request('GET', path, { timeoutMs: options.timeoutMs ?? 2_000 });
    } catch (error) {
      options.logger.warn({ server: options.kube.server, err: (error as Error).message }, 'pod liveness check failed');
      throw refused('ServiceUnavailableException', 'api_unavailable', "The cluster's API server cannot confirm the pod right now.");
    }
    if (response.status === 404) return false;
    if (response.status !== 200) {
      options.logger.warn({ server: options.kube.server, status: response.status }, 'pod liveness check refused');
      throw refused('ServiceUnavailableException', 'api_unavailable', "The cluster's API server cannot confirm the pod right now.");
    }
    return (response.body as { metadata?: { uid?: unknown } } | undefined)?.metadata?.uid === claims.podUid;
  }

  function remember(podUid: string, alive: boolean): void {
    known.set(podUid, alive, now() + (alive ? aliveTtlMs : goneTtlMs));
  }

  return async function checkPodAlive(claims) {
    let alive = known.get(claims.podUid);
    if (alive === undefined) {
      let pending = inFlight.get(claims.podUid);
      if (!pending) {
        pending = lookUp(claims).finally(() => inFlight.delete(claims.podUid));
        inFlight.set(claims.podUid, pending);
        pending.then((result) => remember(claims.podUid, result)).catch(() => undefined);
      }
      alive = await pending;
    }
    if (!alive) throw invalidToken('pod_gone', "the token's pod no longer exists");
  };
}
