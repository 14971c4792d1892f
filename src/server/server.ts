// `pod-identity server`: composes the control plane from its parts — the
// association store, the API listener (association API, EKS Auth, local STS),
// the admission webhook listener and the metrics listener — and stops them
// in order: listeners drain first, the store closes last.
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCrdSync } from '../associations/crd-sync.js';
import { AssociationService } from '../associations/service.js';
import type { AssociationStore } from '../associations/store.js';
import { PostgresAssociationStore } from '../associations/stores/postgres.js';
import { SqliteAssociationStore } from '../associations/stores/sqlite.js';
import { applyServerTimeouts, closeServer, formatUrlHost, listen, parseListen } from '../lib/http.js';
import type { Logger } from '../lib/logger.js';
import { createMetricsServer, createRegistry } from '../lib/metrics.js';
import { createApiHandler } from './api.js';
import { staticKeys } from './authenticate.js';
import type { ServerConfig } from './config.js';
import type { Route } from './router.js';
import { associationRoutes } from './routes/associations.js';
import { eksAuthRoutes } from './routes/eks-auth.js';
import { stsRoutes } from './routes/sts.js';
import { createEksAuth } from '../auth/setup.js';
import { identitiesRoutes } from '../webhook/identities.js';
import { createWebhookFromConfig } from '../webhook/server.js';

export interface RunningServer {
  /** base URL of the API listener, e.g. http://127.0.0.1:8080 */
  apiUrl: string;
  metricsUrl: string;
  /** base URL of the admission webhook listener (always https) */
  webhookUrl: string;
  store: AssociationStore;
  /** drain in-flight requests, then close the store */
  close(): Promise<void>;
}

export interface StartOptions {
  logger: Logger;
}

export async function openStore(config: ServerConfig, logger?: Logger): Promise<AssociationStore> {
  if (config.databaseUrl) return PostgresAssociationStore.open(config.databaseUrl, { logger });
  return new SqliteAssociationStore(join(config.dataDir, 'associations.db'));
}

export async function startServer(config: ServerConfig, options: StartOptions): Promise<RunningServer> {
  const { logger } = options;
  const registry = createRegistry('pod_identity_');
  const store = await openStore(config, logger);
  const clusterNames = config.clusters.map((c) => c.name);
  const associations = new AssociationService({
    store,
    region: config.region,
    accountId: config.accountId,
    clusters: () => clusterNames,
  });

  // --- route composition: each API contributes its routes here ---
  const eksAuth = createEksAuth(config, { store, logger, registry });
  const routes: Route[] = [
    ...associationRoutes(associations, staticKeys(config.admins)),
    ...identitiesRoutes(store, () => clusterNames, staticKeys(config.admins)),
    ...eksAuthRoutes(eksAuth.service, config.nodes),
    ...(eksAuth.localIssuer ? stsRoutes(eksAuth.localIssuer) : []),
  ];
  // --- end of route composition ---

  const servers: Server[] = [];
  const handler = createApiHandler({ routes, logger, registry });
  const api = config.tls
    ? createHttpsServer({ cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) }, handler)
    : createHttpServer(handler);
  applyServerTimeouts(api);
  const apiAddress = await listen(api, parseListen(config.listen));
  servers.push(api);

  const webhook = createWebhookFromConfig(config, { store, logger, registry });
  const webhookAddress = await listen(webhook.server, parseListen(config.webhookListen));
  servers.push(webhook.server);

  // PodIdentityAssociation resources of clusters with syncCrds, reconciled into the store in the background.
  const crdSyncs = config.clusters
    .filter((c) => c.syncCrds && c.kubeconfig)
    .map((c) => startCrdSync({ clusterName: c.name, kubeconfigPath: c.kubeconfig!, store, region: config.region, accountId: config.accountId, logger }));

  let closing = false;
  const metrics = createMetricsServer(registry, async () => {
    if (closing) return false;
    await store.ping();
    return true;
  });
  applyServerTimeouts(metrics);
  const metricsAddress = await listen(metrics, parseListen(config.metricsListen));

  const apiUrl = `${config.tls ? 'https' : 'http'}://${formatUrlHost(apiAddress.host)}:${apiAddress.port}`;
  const metricsUrl = `http://${formatUrlHost(metricsAddress.host)}:${metricsAddress.port}`;
  const webhookUrl = `https://${formatUrlHost(webhookAddress.host)}:${webhookAddress.port}`;
  logger.info({ api: apiUrl, webhook: webhookUrl, metrics: metricsUrl, clusters: clusterNames, store: config.databaseUrl ? 'postgres' : 'sqlite' }, 'server started');

  return {
    apiUrl,
    metricsUrl,
    webhookUrl,
    store,
    async close() {
      closing = true;
      webhook.close();
      await Promise.all(servers.map((s) => closeServer(s)));
      await closeServer(metrics, 1000);
      await Promise.all(crdSyncs.map((s) => s.stop()));
      await eksAuth.close();
      await store.close();
      logger.info('server stopped');
    },
  };
}
