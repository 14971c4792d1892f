// The admission webhook's listener built from the server configuration: which
// cluster it serves, where its certificate comes from (the operator's files,
// watched, or a CA and certificate generated into the data directory) and how
// ServiceAccounts are read.
import { X509Certificate } from 'node:crypto';
import type { Server } from 'node:https';
import { Gauge, type Registry } from 'prom-client';
import type { AssociationStore } from '../../associations/store.js';
import type { ClusterConfig, ServerConfig } from '../../config/schema.js';
import { kubeConnections, type KubeConnections } from './kube-connections.js';
import { parseListen } from '../../lib/http.js';
import type { Logger } from '../../lib/logger.js';
import { generatedCertificates, servingHosts, watchedCertificateFiles, type KeyPair, type TlsSource } from '../../webhook/certs.js';
import { kubeServiceAccountLookup } from '../../webhook/service-accounts.js';
import { createWebhookServer } from '../webhook-listener.js';

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
  const serviceAccounts = kube ? kubeServiceAccountLookup({ kube, logger }) : undefined;
  const server = createWebhookServer(
    {
      store: deps.store,
      clusterName: cluster?.name,
      ipv6: cluster?.ipv6 ?? false,
      region: config.webhook.injectRegion ? config.region : undefined,
      serviceAccounts,
      defaultTokenExpirationSeconds: config.webhook.tokenExpirationSeconds,
      stsRegionalEndpoints: config.webhook.stsRegionalEndpoints,
      logger,
      registry: deps.registry,
    },
    tls,
  );
  target.server = server;
  watchCertificateExpiry(deps.registry, tls);
  return {
    server,
    tls,
    async close() {
      tls.close();
      if (!deps.kube) await connections.close();
    },
  };
}

/** The first certificate of a PEM bundle's notAfter, in epoch seconds; remembered per PEM text. */
function expiryOf(pem: string, memo: Map<string, number>): number {
  let seconds = memo.get(pem);
  if (seconds === undefined) {
    seconds = Date.parse(new X509Certificate(pem).validTo) / 1000;
    memo.clear();
    memo.set(pem, seconds);
  }
  return seconds;
}

/** pod_identity_certificate_expiry_timestamp_seconds of the serving certificate, and of its CA when generated here. */
function watchCertificateExpiry(registry: Registry, tls: TlsSource): void {
  const serving = new Map<string, number>();
  const ca = new Map<string, number>();
  new Gauge({
    name: 'pod_identity_certificate_expiry_timestamp_seconds',
    help: 'When a certificate the server serves expires (notAfter, epoch seconds): the webhook serving certificate, and its CA when the server generated it',
    labelNames: ['certificate'],
    registers: [registry],
    collect() {
      this.set({ certificate: 'webhook' }, expiryOf(tls.current().cert, serving));
      if (tls.caCert) this.set({ certificate: 'webhook-ca' }, expiryOf(tls.caCert, ca));
    },
  });
}
