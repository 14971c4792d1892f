// `pod-identity server`: composes the control plane from its parts — the
// association store, the API listener (association API, EKS Auth, local STS;
// in this process or in forked API workers, see workers.ts), the admission
// webhook listener and the metrics listener — and stops them in order:
// listeners drain first, the store closes last.
import { AggregatorRegistry, type Registry } from 'prom-client';
import { openStore } from '../associations/open-store.js';
import type { AssociationStore } from '../associations/store.js';
import { loadOrCreateLocalIssuerKey } from '../auth/issuers/local.js';
import { localIssuerKeyFile } from './setup/eks-auth.js';
import { closeServer, formatUrlHost, listen, parseListen, applyServerTimeouts } from '../lib/http.js';
import type { Logger } from '../lib/logger.js';
import { createMetricsServer, createRegistry, type MetricsSource } from '../lib/metrics.js';
import { startCrdSyncs } from './setup/crd-sync.js';
import { createWebhookFromConfig } from './setup/webhook.js';
import { apiCertificateHosts, startApiListener } from './api-listener.js';
import { API_CERTIFICATES, ensureGeneratedCertificates, generatedPaths } from '../webhook/certs.js';
import type { ServerConfig } from '../config/schema.js';
import { ApiWorkers, workerCount } from './workers.js';

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

/** Where the API is answered: this process, or API workers forked behind one listener. */
interface ApiSide {
  url: string;
  /** the store this process's other parts use (hears the workers' changes) */
  store: AssociationStore;
  metrics: MetricsSource;
  ready(): boolean;
  close(): Promise<void>;
}

async function startApiSide(config: ServerConfig, opened: AssociationStore, logger: Logger, registry: Registry): Promise<ApiSide> {
  const count = workerCount(config.workers);
  if (count <= 1) {
    const api = await startApiListener(config, { store: opened, logger, registry });
    return { url: api.url, store: opened, metrics: registry, ready: () => true, close: () => api.close() };
  }
  // made here once, so that the workers do not race to create it
  if (config.issuer.type === 'local') loadOrCreateLocalIssuerKey(localIssuerKeyFile(config));
  if (config.tls && !config.tls.certFile) await ensureGeneratedCertificates(config.dataDir, apiCertificateHosts(config), Date.now(), API_CERTIFICATES);
  const workers = new ApiWorkers(config, count, { logger, store: opened });
  const url = await workers.start();
  return {
    url,
    store: workers.store,
    metrics: {
      contentType: registry.contentType,
      async metrics() {
        const all = [await registry.getMetricsAsJSON(), ...(await workers.workerMetrics())];
        return AggregatorRegistry.aggregate(all).metrics();
      },
    },
    ready: () => workers.ready(),
    close: () => workers.close(),
  };
}

export async function startServer(config: ServerConfig, options: StartOptions): Promise<RunningServer> {
  const { logger } = options;
  const registry = createRegistry('pod_identity_');
  const clusterNames = config.clusters.map((c) => c.name);
  const opened = await openStore(config, logger);
  const api = await startApiSide(config, opened, logger, registry);
  const { store } = api;

  const webhook = await createWebhookFromConfig(config, { store, logger, registry });
  const webhookAddress = await listen(webhook.server, parseListen(config.webhookListen));

  // PodIdentityAssociation resources of clusters with syncCrds, reconciled in the background by whichever replica leads.
  const crdSyncs = startCrdSyncs(config, { store, logger });

  let closing = false;
  const metrics = createMetricsServer(api.metrics, async () => {
    if (closing || !api.ready()) return false;
    await store.ping();
    return true;
  });
  applyServerTimeouts(metrics);
  const metricsAddress = await listen(metrics, parseListen(config.metricsListen));

  const metricsUrl = `http://${formatUrlHost(metricsAddress.host)}:${metricsAddress.port}`;
  const webhookUrl = `https://${formatUrlHost(webhookAddress.host)}:${webhookAddress.port}`;
  logger.info(
    {
      api: api.url,
      // what agents verify the API listener's generated certificate with (--ca-bundle)
      ...(config.tls && !config.tls.certFile && { apiCaBundle: generatedPaths(config.dataDir, API_CERTIFICATES).caCert }),
      webhook: webhookUrl,
      metrics: metricsUrl,
      clusters: clusterNames,
      store: config.databaseUrl ? 'postgres' : 'sqlite',
      workers: workerCount(config.workers),
    },
    'server started',
  );

  return {
    apiUrl: api.url,
    metricsUrl,
    webhookUrl,
    store,
    async close() {
      closing = true;
      await Promise.all([api.close(), closeServer(webhook.server)]);
      await webhook.close();
      await closeServer(metrics, 1000);
      await crdSyncs.stop();
      await store.close();
      logger.info('server stopped');
    },
  };
}
