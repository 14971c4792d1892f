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
import { AuditLog } from '../lib/audit.js';
import type { Logger } from '../lib/logger.js';
import { createMetricsServer, createRegistry, type MetricsSource } from '../lib/metrics.js';
import { Gauge } from 'prom-client';
import { DependencyMonitor } from './readiness.js';
import { preflight } from './setup/preflight.js';
import { dependencyChecks } from './setup/readiness.js';
import { kubeConnections } from './setup/kube-connections.js';
import { startCrdSyncs } from './setup/crd-sync.js';
import { createWebhookFromConfig, webhookTlsFromConfig } from './setup/webhook.js';
import { apiCertificateHosts, startApiListener } from './api-listener.js';
import { API_CERTIFICATES, ensureGeneratedCertificates, generatedPaths } from '../webhook/certs.js';
import type { ServerConfig } from '../config/schema.js';
import { ApiWorkers, workerCount } from './workers.js';
import { DecisionFeed } from '../console/feed.js';
import { replicaOrigin, startConsoleFromConfig } from './setup/console.js';

export interface RunningServer {
  /** base URL of the API listener, e.g. http://127.0.0.1:8080 */
  apiUrl: string;
  metricsUrl: string;
  /** base URL of the admission webhook listener (always https) */
  webhookUrl: string;
  /** base URL of the admin console, when consoleListen is set */
  consoleUrl?: string;
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

async function startApiSide(config: ServerConfig, opened: AssociationStore, logger: Logger, registry: Registry, audit: AuditLog, feed: DecisionFeed | undefined): Promise<ApiSide> {
  const count = workerCount(config.workers);
  if (count <= 1) {
    const api = await startApiListener(config, { store: opened, logger, registry, audit });
    return { url: api.url, store: opened, metrics: registry, ready: () => true, close: () => api.close() };
  }
  // made here once, so that the workers do not race to create it
  if (config.issuer.type === 'local') loadOrCreateLocalIssuerKey(localIssuerKeyFile(config));
  if (config.tls && !config.tls.certFile) await ensureGeneratedCertificates(config.dataDir, apiCertificateHosts(config), Date.now(), API_CERTIFICATES);
  const workers = new ApiWorkers(config, count, { logger, store: opened, ...(feed && { onDecision: (record, worker) => feed.add(record, replicaOrigin(worker)) }) });
  const url = await workers.start();
  return {
    url,
    store: workers.store,
    metrics: {
      contentType: registry.contentType,
      async metrics() {
        const own = await registry.getMetricsAsJSON();
        const aggregated = AggregatorRegistry.aggregate([own, ...(await workers.workerMetrics())]);
        // what prom-client leaves out of an aggregate (process_start_time_seconds) is the primary's own
        for (const metric of own) {
          if (!aggregated.getSingleMetric(metric.name)) aggregated.registerMetric({ ...metric, get: () => metric } as unknown as Parameters<Registry['registerMetric']>[0]);
        }
        return aggregated.metrics();
      },
    },
    ready: () => workers.ready(),
    close: () => workers.close(),
  };
}

export async function startServer(config: ServerConfig, options: StartOptions): Promise<RunningServer> {
  const { logger } = options;
  await preflight(config);
  const registry = createRegistry('server');
  const clusterNames = config.clusters.map((c) => c.name);
  // the primary's connections to its clusters, shared by the webhook, the CRD reconciler and the readiness probes
  const kube = kubeConnections();
  // the webhook's certificate first: the API listener (here or in its workers) may serve the same files
  const webhookTls = await webhookTlsFromConfig(config, { logger, kube }).catch(async (error: unknown) => {
    await kube.close();
    throw error;
  });
  const opened = await openStore(config, logger);
  // the audit trail of this process: the API's changes and decisions when it answers the API itself, the CRD reconciler's changes
  const audit = new AuditLog(logger, config.audit.file);
  // the console's live feed: this process's decisions and, with API workers, theirs
  const feed = config.consoleListen ? new DecisionFeed() : undefined;
  if (feed) audit.subscribe((record) => feed.add(record, replicaOrigin()));
  const api = await startApiSide(config, opened, logger, registry, audit, feed);
  const { store } = api;

  const webhook = await createWebhookFromConfig(config, { store, logger, registry, kube, tls: webhookTls });
  const webhookAddress = await listen(webhook.server, parseListen(config.webhookListen));

  // PodIdentityAssociation resources of clusters with syncCrds, reconciled in the background by whichever replica leads.
  const crdSyncs = startCrdSyncs(config, { store, logger, audit, registry, kube });

  // Each cluster's signing keys and API server, probed in the background.
  const monitor = new DependencyMonitor({ checks: dependencyChecks(config, kube), registry, logger: logger.child({ component: 'readiness' }) });
  void monitor.start();

  let closing = false;
  const problems = async (): Promise<string[]> => {
    if (closing) return ['the server is stopping'];
    const found = api.ready() ? [] : ['no API worker is listening'];
    try {
      await store.ping();
    } catch (error) {
      found.push(`the association store: ${(error as Error).message}`);
    }
    return [...found, ...monitor.problems()];
  };
  new Gauge({
    name: 'pod_identity_ready',
    help: 'Whether /readyz answers ready (1) or not (0)',
    registers: [registry],
    async collect() {
      this.set((await problems()).length === 0 ? 1 : 0);
    },
  });
  new Gauge({
    name: 'pod_identity_associations',
    help: 'Pod identity associations in the store, by cluster (the configured ones)',
    labelNames: ['cluster'],
    registers: [registry],
    async collect() {
      const counts = await store.countByCluster();
      // configured clusters only: the store may hold others', and their names are not ours to bound
      for (const name of clusterNames) this.set({ cluster: name }, counts[name] ?? 0);
    },
  });
  const metrics = createMetricsServer(api.metrics, problems);
  applyServerTimeouts(metrics);
  const metricsAddress = await listen(metrics, parseListen(config.metricsListen));

  const adminConsole = feed && (await startConsoleFromConfig(config, { store, logger, audit, feed }));

  const metricsUrl = `http://${formatUrlHost(metricsAddress.host)}:${metricsAddress.port}`;
  const webhookUrl = `https://${formatUrlHost(webhookAddress.host)}:${webhookAddress.port}`;
  logger.info(
    {
      api: api.url,
      // what agents verify the API listener's generated certificate with (--ca-bundle)
      ...(config.tls && !config.tls.certFile && { apiCaBundle: generatedPaths(config.dataDir, API_CERTIFICATES).caCert }),
      webhook: webhookUrl,
      metrics: metricsUrl,
      ...(adminConsole && { console: adminConsole.url }),
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
    ...(adminConsole && { consoleUrl: adminConsole.url }),
    store,
    async close() {
      closing = true;
      await Promise.all([api.close(), closeServer(webhook.server), adminConsole?.close()]);
      await webhook.close();
      await closeServer(metrics, 1000);
      monitor.close();
      await crdSyncs.stop();
      await kube.close();
      await audit.close();
      await store.close();
      logger.info('server stopped');
    },
  };
}
