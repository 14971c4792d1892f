// The CRD reconciler of every cluster with syncCrds, from the server
// configuration: its connection to the cluster, the association service it
// goes through (the API's rules), and where and as whom this replica takes
// part in the election of the one replica that reconciles.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Counter, type Registry } from 'prom-client';
import type { ChangeAudit } from '../../associations/audit.js';
import { AssociationService } from '../../associations/service.js';
import type { AssociationStore } from '../../associations/store.js';
import type { ServerConfig } from '../../config/schema.js';
import type { KubeConnections } from './kube-connections.js';
import { startCrdSync, type CrdSync } from '../../kube/crd/reconciler.js';
import type { Logger } from '../../lib/logger.js';

const DEFAULT_LEASE_NAMESPACE = 'pod-identity';

/** Where the Leases live: the server's own namespace (POD_NAMESPACE from the downward API, else the in-cluster service account's), else pod-identity. */
function leaseNamespace(env: NodeJS.ProcessEnv, inClusterNamespace: string | undefined): string {
  return env.POD_NAMESPACE || inClusterNamespace || DEFAULT_LEASE_NAMESPACE;
}

/** The pod's name (POD_NAME, else the host name, which is the pod's) and a random suffix, so that a restarted or second process never takes the lease for its predecessor. */
function replicaIdentity(env: NodeJS.ProcessEnv, host: string = hostname()): string {
  return `${env.POD_NAME || host}-${randomBytes(4).toString('hex')}`;
}

export interface CrdSyncs {
  stop(): Promise<void>;
}

export interface CrdSyncDeps {
  store: AssociationStore;
  logger: Logger;
  /** where the reconciler's changes are recorded, with the resource as actor */
  audit: ChangeAudit;
  registry: Registry;
  /** the process's cluster connections (closed by their owner) */
  kube: KubeConnections;
  env?: NodeJS.ProcessEnv;
}

export function startCrdSyncs(config: ServerConfig, deps: CrdSyncDeps): CrdSyncs {
  const env = deps.env ?? process.env;
  const clusterNames = config.clusters.map((c) => c.name);
  const associations = new AssociationService({ store: deps.store, region: config.region, accountId: config.accountId, clusters: () => clusterNames, audit: deps.audit, allowPatterns: config.associations.allowPatterns });
  const errors = new Counter({
    name: 'pod_identity_crd_sync_errors_total',
    help: 'PodIdentityAssociation sync failures, by cluster and kind: reconcile (a resource not reconciled), status (a status write refused), watch (the list or watch failed), lease (the leader election\'s Lease not read or written)',
    labelNames: ['cluster', 'kind'],
    registers: [deps.registry],
  });
  for (const cluster of config.clusters) if (cluster.syncCrds) for (const kind of ['reconcile', 'status', 'watch', 'lease']) errors.inc({ cluster: cluster.name, kind }, 0);
  const identity = replicaIdentity(env);
  const running: CrdSync[] = [];
  for (const cluster of config.clusters) {
    if (!cluster.syncCrds || !cluster.kubeconfig) continue;
    const kube = deps.kube.get(cluster.kubeconfig);
    const namespace = leaseNamespace(env, cluster.kubeconfig === 'in-cluster' ? kube.namespace : undefined);
    const sync = startCrdSync({
      clusterName: cluster.name,
      kube,
      associations,
      onStoreChange: (listener) => deps.store.onChange(listener),
      region: config.region,
      accountId: config.accountId,
      logger: deps.logger,
      leaseNamespace: namespace,
      identity,
      onError: (kind) => errors.inc({ cluster: cluster.name, kind }),
    });
    running.push(sync);
  }
  return {
    async stop() {
      await Promise.all(running.map((sync) => sync.stop()));
    },
  };
}
