// The labels of a token's pod, for session tags that read them
// (`{{pod.labels.team}}`): one metadata read through the cluster's API, for
// the pod the token is bound to (same name and uid), only for associations
// whose tags need it. Labels can change while a pod runs, so they are read at
// every issuance rather than remembered.
import type { Logger } from '../lib/logger.js';
import { invalidToken, refused, type PodIdentityClaims } from './claims.js';
import type { PodMetadataLookup } from './liveness.js';

export type PodLabelsLookup = (claims: PodIdentityClaims) => Promise<Readonly<Record<string, string>>>;

export function podLabelsReader(pods: PodMetadataLookup, logger: Logger): PodLabelsLookup {
  return async function readPodLabels(claims) {
    let metadata;
    try {
      metadata = await pods(claims.namespace, claims.podName);
    } catch (error) {
      logger.warn({ err: (error as Error).message }, 'reading pod labels for session tags failed');
      throw refused('ServiceUnavailableException', 'api_unavailable', "The cluster's API server cannot tell the pod's labels right now.");
    }
    // a pod of the same name made since is not the token's pod
    if (metadata?.uid !== claims.podUid) throw invalidToken('pod_gone', "the token's pod no longer exists");
    return metadata.labels ?? {};
  };
}
