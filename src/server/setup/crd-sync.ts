// The CRD reconciler of every cluster with syncCrds, from the server
// configuration: its connection to the cluster and the association service it
// goes through (the API's rules).
import { AssociationService } from '../../associations/service.js';
import type { AssociationStore } from '../../associations/store.js';
import type { ServerConfig } from '../../config/schema.js';
import { connectKube } from '../../kube/connect.js';
import { startReconciler, type Reconciler } from '../../kube/crd/reconciler.js';
import type { Logger } from '../../lib/logger.js';

export interface CrdSyncs {
  stop(): Promise<void>;
}

export function startCrdSyncs(config: ServerConfig, deps: { store: AssociationStore; logger: Logger }): CrdSyncs {
  const clusterNames = config.clusters.map((c) => c.name);
  const associations = new AssociationService({ store: deps.store, region: config.region, accountId: config.accountId, clusters: () => clusterNames });
  const running: { reconciler: Reconciler; close(): Promise<void> }[] = [];
  for (const cluster of config.clusters) {
    if (!cluster.syncCrds || !cluster.kubeconfig) continue;
    const kube = connectKube(cluster.kubeconfig);
    const reconciler = startReconciler({
      clusterName: cluster.name,
      kube,
      associations,
      onStoreChange: (listener) => deps.store.onChange(listener),
      region: config.region,
      accountId: config.accountId,
      logger: deps.logger,
    });
    running.push({ reconciler, close: () => kube.close() });
  }
  return {
    async stop() {
      await Promise.all(
        running.map(async ({ reconciler, close }) => {
          await reconciler.stop();
          await close();
        }),
      );
    },
  };
}
