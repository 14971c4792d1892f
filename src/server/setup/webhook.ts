// The admission webhook's listener built from the server configuration: which
// cluster it serves, where its certificate comes from (the operator's files,
// watched, or a CA and certificate generated into the data directory) and how
// ServiceAccounts are read.
import type { Server } from 'node:https';
import type { Registry } from 'prom-client';
import type { AssociationStore } from '../../associations/store.js';
import type { ClusterConfig, ServerConfig } from '../../config/schema.js';
import type { KubeApi } from '../../kube/connect.js';
import { kubeConnections, type KubeConnections } from './kube-connections.js';
import { parseListen } from '../../lib/http.js';
import type { Logger } from '../../lib/logger.js';
import { generatedCertificates, servingHosts, watchedCertificateFiles, type KeyPair, type TlsSource } from '../../webhook/certs.js';
import type { ReviewOptions } from '../../webhook/review.js';
import { kubeServiceAccountLookup } from '../../webhook/service-accounts.js';
import { createWebhookServer } from '../webhook-listener.js';
import { watchCertificates } from '../certificate-metrics.js';

/** The cluster a listener serves: the configured one, else the only cluster there is. */
export function webhookCluster(config: ServerConfig): ClusterConfig | undefined {
  if (config.webhook.clusterName) return config.clusters.find((c) => c.name === config.webhook.clusterName);
  return config.clusters.length === 1 ? config.clusters[0] : undefined;
}

export interface StartedWebhook {
  server: Server;
  tls: TlsSource;
  /** stop the certificate timers and close the cluster's API connections (the listener is closed by its owner) */
  close(): Promise<void>;
}

export interface WebhookDeps {
  store: AssociationStore;
  logger: Logger;
  registry: Registry;
  /** the process's shared cluster connections (closed by their owner); else the webhook makes and closes its own */
  kube?: KubeConnections;
  /** test hook: how often configured certificate files are checked */
  certPollMs?: number;
  /** test hook: the clock generated certificates are issued and checked by */
  now?: () => number;
}

/** What the webhook decides with, from the configuration: its cluster, region, defaults and ServiceAccount reads. */
export function reviewOptions(config: ServerConfig, store: AssociationStore, logger: Logger, kube: KubeApi | undefined): ReviewOptions {
  const cluster = webhookCluster(config);
  return {
    store,
    clusterName: cluster?.name,
    ipv6: cluster?.ipv6 ?? false,
    region: config.webhook.injectRegion ? config.region : undefined,
    serviceAccounts: kube ? kubeServiceAccountLookup({ kube, logger }) : undefined,
    defaultTokenExpirationSeconds: config.webhook.tokenExpirationSeconds,
    stsRegionalEndpoints: config.webhook.stsRegionalEndpoints,
    logger,
  };
}

/** Builds the webhook listener from the server configuration (not yet listening). */
export async function createWebhookFromConfig(config: ServerConfig, deps: WebhookDeps): Promise<StartedWebhook> {
  const logger = deps.logger.child({ component: 'webhook' });
  const cluster = webhookCluster(config);
  if (!cluster) {
    const why = config.clusters.length === 0 ? 'no cluster is configured' : `${config.clusters.length} clusters are configured and webhook.clusterName is unset`;
    logger.warn(`the admission webhook serves no cluster (${why}): pods are admitted unmutated`);
  }
  // The secure context is swapped on the server made below, once it exists.
  const target: { server?: Server } = {};
  const onChange = (pair: KeyPair) => target.server?.setSecureContext({ ...pair, minVersion: 'TLSv1.2' });
  const tls =
    config.webhook.certFile && config.webhook.keyFile
      ? watchedCertificateFiles(config.webhook.certFile, config.webhook.keyFile, { logger, onChange, pollMs: deps.certPollMs })
      : await generatedCertificates(config.dataDir, servingHosts(parseListen(config.webhookListen).host, config.webhook.certHosts), { logger, onChange, now: deps.now });
  const connections = deps.kube ?? kubeConnections();
  const kube = cluster?.kubeconfig ? connections.get(cluster.kubeconfig) : undefined;
  const server = createWebhookServer({ ...reviewOptions(config, deps.store, logger, kube), registry: deps.registry }, tls);
  target.server = server;
  watchCertificates(deps.registry, 'webhook', tls);
  return {
    server,
    tls,
    async close() {
      tls.close();
      if (!deps.kube) await connections.close();
    },
  };
}
