// The API listener and everything that answers on it: the association API,
// the webhook's identities API, EKS Auth and (with the local issuer) STS.
// The server runs it in its own process, or once in each API worker.
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Registry } from 'prom-client';
import { AssociationService } from '../associations/service.js';
import type { AssociationStore } from '../associations/store.js';
import { clusterArn } from '../auth/session.js';
import { createEksAuth } from './setup/eks-auth.js';
import { applyServerTimeouts, closeServer, formatUrlHost, listen, parseListen } from '../lib/http.js';
import { AuditLog } from '../lib/audit.js';
import type { Logger } from '../lib/logger.js';
import { identitiesRoutes } from './routes/identities.js';
import { createApiHandler } from './api.js';
import { sigv4Authenticator, staticKeys } from './authenticate.js';
import type { ServerConfig } from '../config/schema.js';
import type { Route } from './router.js';
import { API_CERTIFICATES, generatedCertificates, servingHosts, watchedCertificateFiles, type KeyPair, type TlsSource } from '../webhook/certs.js';
import { associationRoutes } from './routes/associations.js';
import { clusterRoutes } from './routes/clusters.js';
import { tagRoutes } from './routes/tags.js';
import { diagnosticsRoutes } from './routes/diagnostics.js';
import { reviewOptions, webhookCluster } from './setup/webhook.js';
import { createDecider } from '../webhook/review.js';
import { connectKube } from '../kube/connect.js';
import { eksAuthRoutes } from './routes/eks-auth.js';
import { healthRoutes } from './routes/health.js';
import { stsRoutes } from './routes/sts.js';
import { watchCertificates } from './certificate-metrics.js';

export interface ApiListener {
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  /** drain in-flight requests, then release EKS Auth's resources (the store stays open) */
  close(): Promise<void>;
}

/** The names a generated API certificate covers: loopback, the listen address and tls.certHosts. */
export function apiCertificateHosts(config: ServerConfig): string[] {
  return servingHosts(parseListen(config.listen).host, config.tls?.certHosts ?? []);
}

/** The API listener's certificate: the configured files (watched for rotation), or one from the server's own CA in the data directory. */
export async function apiTlsSource(config: ServerConfig, logger: Logger, onChange: (pair: KeyPair) => void): Promise<TlsSource> {
  const tls = config.tls!;
  const options = { logger: logger.child({ component: 'api-tls' }), onChange, set: API_CERTIFICATES };
  return tls.certFile && tls.keyFile ? watchedCertificateFiles(tls.certFile, tls.keyFile, options) : generatedCertificates(config.dataDir, apiCertificateHosts(config), options);
}

export interface ApiListenerDeps {
  store: AssociationStore;
  logger: Logger;
  registry: Registry;
  /** the process's audit trail, when it has one already (closed by its owner); else one of the listener's own */
  audit?: AuditLog;
}

export async function startApiListener(config: ServerConfig, deps: ApiListenerDeps): Promise<ApiListener> {
  const { store, logger, registry } = deps;
  const clusterNames = config.clusters.map((c) => c.name);
  // one audit trail for the changes and decisions this process makes
  const audit = deps.audit ?? new AuditLog(logger, config.audit.file);
  const closeAudit = () => (deps.audit ? Promise.resolve() : audit.close());
  const associations = new AssociationService({ store, region: config.region, accountId: config.accountId, clusters: () => clusterNames, audit, allowPatterns: config.associations.allowPatterns });
  const eksAuth = createEksAuth(config, { store, logger, registry, audit });
  // doctor's webhook question reads ServiceAccounts as the webhook does
  const webhookKubeconfig = webhookCluster(config)?.kubeconfig;
  const diagnosticsKube = webhookKubeconfig ? connectKube(webhookKubeconfig) : undefined;
  // Every admin operation is SigV4 with signing name `eks`, scoped to the server's region.
  const admins = sigv4Authenticator({ service: 'eks', region: config.region }, staticKeys(config.admins));
  const routes: Route[] = [
    ...healthRoutes(),
    ...associationRoutes(associations, admins),
    ...tagRoutes(associations, admins),
    ...clusterRoutes(
      config.clusters.map((c) => ({ name: c.name, arn: clusterArn(config.region, config.accountId, c.name), ...(c.issuer !== undefined && { issuer: c.issuer }) })),
      admins,
    ),
    ...identitiesRoutes(store, () => clusterNames, admins),
    ...eksAuthRoutes(eksAuth.service, config.nodes, config.region),
    ...(eksAuth.localIssuer ? stsRoutes(eksAuth.localIssuer, config.region) : []),
    ...diagnosticsRoutes(
      {
        store,
        clusters: clusterNames,
        decide: createDecider(reviewOptions(config, store, logger, diagnosticsKube)),
        webhookCluster: webhookCluster(config)?.name,
        issuer: { type: config.issuer.type, ...(config.issuer.stsEndpoint && { stsEndpoint: config.issuer.stsEndpoint }), ...(eksAuth.principal && { principal: eksAuth.principal }) },
      },
      admins,
    ),
  ];
  const handler = createApiHandler({ routes, logger, registry, admission: { limits: config.admission, operations: ['AssumeRoleForPodIdentity'] } });
  let tls: TlsSource | undefined;
  let server;
  try {
    // A renewed or rotated certificate is used by new connections; the secure context is swapped on the server made below.
    const target: { server?: ReturnType<typeof createHttpsServer> } = {};
    tls = config.tls ? await apiTlsSource(config, logger, (pair) => target.server?.setSecureContext({ ...pair, minVersion: 'TLSv1.2' })) : undefined;
    server = tls ? (target.server = createHttpsServer({ ...tls.current(), minVersion: 'TLSv1.2' }, handler)) : createHttpServer(handler);
  } catch (error) {
    handler.close();
    await eksAuth.close();
    await diagnosticsKube?.close();
    await closeAudit();
    throw error;
  }
  if (tls) watchCertificates(registry, 'api', tls);
  applyServerTimeouts(server);
  let address;
  try {
    address = await listen(server, parseListen(config.listen));
  } catch (error) {
    tls?.close();
    handler.close();
    await eksAuth.close();
    await diagnosticsKube?.close();
    await closeAudit();
    throw error;
  }
  return {
    url: `${tls ? 'https' : 'http'}://${formatUrlHost(address.host)}:${address.port}`,
    async close() {
      tls?.close();
      await closeServer(server);
      handler.close();
      await eksAuth.close();
      await diagnosticsKube?.close();
      await closeAudit();
    },
  };
}
