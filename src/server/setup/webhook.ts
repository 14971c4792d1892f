// The admission webhook's listener built from the server configuration: which
// cluster it serves, where its certificate comes from (the operator's files,
// watched; a Secret of the cluster the server fills and keeps; or a CA and
// certificate generated into the data directory) and how ServiceAccounts are read.
import type { Server } from 'node:https';
import type { Registry } from 'prom-client';
import type { AssociationStore } from '../../associations/store.js';
import { webhookClusterOf, type ClusterConfig, type ServerConfig } from '../../config/schema.js';
import type { KubeApi } from '../../kube/connect.js';
import { kubeConnections, type KubeConnections } from './kube-connections.js';
import { parseListen } from '../../lib/http.js';
import type { Logger } from '../../lib/logger.js';
import { generatedCertificates, renewingCertificates, servingHosts, watchedCertificateFiles, WEBHOOK_CERTIFICATES, type KeyPair, type TlsSource } from '../../webhook/certs.js';
import { certificateSecretSync } from '../../webhook/certificate-secret.js';
import type { ReviewOptions } from '../../webhook/review.js';
import { kubeServiceAccountLookup } from '../../webhook/service-accounts.js';
import { createWebhookServer } from '../webhook-listener.js';
import { watchCertificates } from '../certificate-metrics.js';

/** The cluster a listener serves: the configured one, else the only cluster there is. */
export function webhookCluster(config: ServerConfig): ClusterConfig | undefined {
  return webhookClusterOf(config.clusters, config.webhook.clusterName);
}

export interface StartedWebhook {
  server: Server;
  tls: TlsSource;
  /** stop the certificate timers and close the cluster's API connections (the listener is closed by its owner) */
  close(): Promise<void>;
}

/** The webhook's certificate, made before its listener (the API listener may serve the same files): swapped on the listener once it is given. */
export interface WebhookTls {
  source: TlsSource;
  serveOn(server: Server): void;
}

interface WebhookTlsDeps {
  logger: Logger;
  /** the process's shared cluster connections (closed by their owner) */
  kube: KubeConnections;
  /** test hook: how often configured certificate files are checked */
  certPollMs?: number;
  /** test hook: how often the certificate Secret is checked (default 60 s) */
  certificateSecretCheckMs?: number;
  /** test hook: the clock generated certificates are issued and checked by */
  now?: () => number;
}

/**
 * Where the webhook's certificate comes from: the operator's files (watched),
 * a Secret of the webhook's cluster that this server fills and keeps
 * (webhook.certificateSecret, checked every minute), or a CA and certificate
 * generated into the data directory.
 */
export async function webhookTlsFromConfig(config: ServerConfig, deps: WebhookTlsDeps): Promise<WebhookTls> {
  const logger = deps.logger.child({ component: 'webhook' });
  const target: { server?: Server } = {};
  const onChange = (pair: KeyPair) => target.server?.setSecureContext({ ...pair, minVersion: 'TLSv1.2' });
  const hosts = servingHosts(parseListen(config.webhookListen).host, config.webhook.certHosts);
  const kept = config.webhook.certificateSecret;
  let source: TlsSource;
  if (config.webhook.certFile && config.webhook.keyFile) {
    source = watchedCertificateFiles(config.webhook.certFile, config.webhook.keyFile, { logger, onChange, pollMs: deps.certPollMs });
  } else if (kept) {
    const kube = deps.kube.get(webhookCluster(config)!.kubeconfig!);
    const check = certificateSecretSync(kube, kept, config.dataDir, hosts);
    const now = deps.now ?? Date.now;
    const set = { ...WEBHOOK_CERTIFICATES, newCaHint: `published in ConfigMap ${kept.namespace}/${kept.caConfigMap} and as the caBundle of ${kept.webhookConfiguration}` };
    source = await renewingCertificates(() => check(now()), hosts, `Secret ${kept.namespace}/${kept.secretName}`, { logger, onChange, set, renewCheckMs: deps.certificateSecretCheckMs ?? 60_000 });
  } else {
    source = await generatedCertificates(config.dataDir, hosts, { logger, onChange, now: deps.now });
  }
  return {
    source,
    serveOn: (server) => {
      target.server = server;
    },
  };
}

export interface WebhookDeps extends Omit<WebhookTlsDeps, 'kube'> {
  store: AssociationStore;
  registry: Registry;
  /** the process's shared cluster connections (closed by their owner); else the webhook makes and closes its own */
  kube?: KubeConnections;
  /** the certificate, when it was made first (webhookTlsFromConfig); else made here */
  tls?: WebhookTls;
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
  const connections = deps.kube ?? kubeConnections();
  const tls = deps.tls ?? (await webhookTlsFromConfig(config, { ...deps, kube: connections }));
  const kube = cluster?.kubeconfig ? connections.get(cluster.kubeconfig) : undefined;
  const server = createWebhookServer({ ...reviewOptions(config, deps.store, logger, kube), registry: deps.registry }, tls.source);
  tls.serveOn(server);
  watchCertificates(deps.registry, 'webhook', tls.source);
  return {
    server,
    tls: tls.source,
    async close() {
      tls.source.close();
      if (!deps.kube) await connections.close();
    },
  };
}
