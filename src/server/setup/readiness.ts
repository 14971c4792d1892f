// The dependency checks of each configured cluster (readiness.ts): its
// signing keys in a JWKS mode (read and imported as EKS Auth would), and its
// API server whenever a kubeconfig reaches it (GET /version with the
// kubeconfig's credentials: reachable, and the credentials accepted).
import { VersionApi } from '@kubernetes/client-node';
import type { ClusterConfig, ServerConfig } from '../../config/schema.js';
import { keySource, verificationMode } from '../../auth/cluster.js';
import { importJwks } from '../../auth/keys.js';
import { describeKubeError } from '../../kube/connect.js';
import type { KubeConnections } from './kube-connections.js';
import type { DependencyCheck } from '../readiness.js';

const VERSION_TIMEOUT_MS = 3_000;

function clusterChecks(cluster: ClusterConfig, connections: KubeConnections): DependencyCheck[] {
  const mode = verificationMode(cluster);
  const kube = cluster.kubeconfig ? connections.get(cluster.kubeconfig) : undefined;
  const checks: DependencyCheck[] = [];
  const keys = keySource(cluster, mode, kube);
  if (keys) {
    checks.push({
      cluster: cluster.name,
      dependency: 'signing-keys',
      describe: keys.describe,
      async probe() {
        const { keys: usable, skipped } = await importJwks(await keys.fetchJwks());
        if (usable.length === 0) throw new Error(`the JWKS holds no usable signing key${skipped.length ? ` (${skipped.join('; ')})` : ''}`);
      },
    });
  }
  // the API server's JWKS already goes through it
  if (kube && mode !== 'api-server-jwks') {
    const version = kube.client(VersionApi, { timeoutMs: VERSION_TIMEOUT_MS });
    checks.push({
      cluster: cluster.name,
      dependency: 'api-server',
      describe: kube.server,
      async probe() {
        try {
          await version.getCode();
        } catch (error) {
          throw new Error(`GET /version: ${describeKubeError(error)}`, { cause: error });
        }
      },
    });
  }
  return checks;
}

/** Every cluster's checks, through the process's cluster connections. */
export function dependencyChecks(config: ServerConfig, connections: KubeConnections): DependencyCheck[] {
  return config.clusters.flatMap((cluster) => clusterChecks(cluster, connections));
}
