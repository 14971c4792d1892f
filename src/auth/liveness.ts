// Revocation in JWKS mode: a token verified locally stays cryptographically
// valid after its pod is deleted, so, when the cluster has API access, the
// token's pod must still exist with the same uid. Answers are remembered
// briefly (alive) or long (gone: a uid never comes back), one lookup per pod
// at a time; the alive TTL bounds how late a deletion is noticed.
import { CoreV1Api, setHeaderOptions, type V1ObjectMeta } from '@kubernetes/client-node';
import { describeKubeError, refusedStatus, type KubeApi } from '../kube/connect.js';
import { ExpiringCache } from '../lib/bounded-cache.js';
import type { Logger } from '../lib/logger.js';
import { invalidToken, refused, type PodIdentityClaims } from './claims.js';

/** The uid of pod namespace/name, or undefined when there is no such pod; throws when the API server cannot tell. */
export type PodUidLookup = (namespace: string, name: string) => Promise<string | undefined>;

/** The metadata (uid, labels) of pod namespace/name, or undefined when there is no such pod; throws when the API server cannot tell. */
export type PodMetadataLookup = (namespace: string, name: string) => Promise<V1ObjectMeta | undefined>;

/**
 * Pod reads through the cluster's API, each bounded by `timeoutMs`. Only the
 * pod's metadata is asked for (PartialObjectMetadata): a whole pod is tens of
 * kilobytes to encode, send and decode, for the uid and labels alone.
 */
export function apiServerPodMetadata(kube: KubeApi, timeoutMs = 2_000): PodMetadataLookup {
  const core = kube.client(CoreV1Api, { timeoutMs });
  const metadataOnly = setHeaderOptions('Accept', 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1');
  return async function readPodMetadata(namespace, name) {
    try {
      return (await core.readNamespacedPod({ namespace, name }, metadataOnly)).metadata;
    } catch (error) {
      if (refusedStatus(error) === 404) return undefined;
      throw new Error(`${kube.server}: pod ${namespace}/${name}: ${describeKubeError(error)}`, { cause: error });
    }
  };
}

export interface PodLivenessOptions {
  podUid: PodUidLookup;
  logger: Logger;
  /** how long "the pod exists" is believed */
  aliveTtlMs?: number;
  /** how long "the pod is gone" is remembered */
  goneTtlMs?: number;
  maxEntries?: number;
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
    try {
      return (await options.podUid(claims.namespace, claims.podName)) === claims.podUid;
    } catch (error) {
      options.logger.warn({ err: (error as Error).message }, 'pod liveness check failed');
      throw refused('ServiceUnavailableException', 'api_unavailable', "The cluster's API server cannot confirm the pod right now.");
    }
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
