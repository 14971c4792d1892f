// The API listener and everything that answers on it: the association API,
// the webhook's identities API, EKS Auth and (with the local issuer) STS.
// The server runs it in its own process, or once in each API worker.
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Registry } from 'prom-client';
import { AssociationService } from '../associations/service.js';
import type { AssociationStore } from '../associations/store.js';
import { clusterArn } from '../auth/session.js';
import { createEksAuth } from './setup/eks-auth.js';
import { applyServerTimeouts, closeServer, formatUrlHost, listen, parseListen } from '../lib/http.js';
import type { Logger } from '../lib/logger.js';
import { identitiesRoutes } from './routes/identities.js';
import { createApiHandler } from './api.js';
import { staticKeys } from './authenticate.js';
import type { ServerConfig } from '../config/schema.js';
import type { Route } from './router.js';
import { associationRoutes } from './routes/associations.js';
import { clusterRoutes } from './routes/clusters.js';
import { tagRoutes } from './routes/tags.js';
import { diagnosticsRoutes } from './routes/diagnostics.js';
import { reviewOptions, webhookCluster } from './setup/webhook.js';
import { createDecider } from '../webhook/review.js';
import { connectKube } from '../kube/connect.js';
import { eksAuthRoutes } from './routes/eks-auth.js';
import { stsRoutes } from './routes/sts.js';

export interface ApiListener {
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  /** drain in-flight requests, then release EKS Auth's resources (the store stays open) */
  close(): Promise<void>;
}

export async function startApiListener(config: ServerConfig, deps: { store: AssociationStore; logger: Logger; registry: Registry }): Promise<ApiListener> {
  const { store, logger, registry } = deps;
  const clusterNames = config.clusters.map((c) => c.name);
  const associations = new AssociationService({ store, region: config.region, accountId: config.accountId, clusters: () => clusterNames });
  const eksAuth = createEksAuth(config, { store, logger, registry });
  // doctor's webhook question reads ServiceAccounts as the webhook does
  const webhookKubeconfig = webhookCluster(config)?.kubeconfig;
  const diagnosticsKube = webhookKubeconfig ? connectKube(webhookKubeconfig) : undefined;
  const routes: Route[] = [
    ...associationRoutes(associations, staticKeys(config.admins)),
    ...tagRoutes(associations, staticKeys(config.admins)),
    ...clusterRoutes(
      config.clusters.map((c) => ({ name: c.name, arn: clusterArn(config.region, config.accountId, c.name), ...(c.issuer !== undefined && { issuer: c.issuer }) })),
      staticKeys(config.admins),
    ),
    ...identitiesRoutes(store, () => clusterNames, staticKeys(config.admins)),
    ...eksAuthRoutes(eksAuth.service, config.nodes),
    ...(eksAuth.localIssuer ? stsRoutes(eksAuth.localIssuer) : []),
    ...diagnosticsRoutes(
      {
        store,
        clusters: clusterNames,
        decide: createDecider(reviewOptions(config, store, logger, diagnosticsKube)),
        webhookCluster: webhookCluster(config)?.name,
        issuer: { type: config.issuer.type, ...(config.issuer.stsEndpoint && { stsEndpoint: config.issuer.stsEndpoint }), ...(eksAuth.principal && { principal: eksAuth.principal }) },
      },
      staticKeys(config.admins),
    ),
  ];
  const handler = createApiHandler({ routes, logger, registry });
  const server = config.tls
    ? createHttpsServer({ cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) }, handler)
    : createHttpServer(handler);
  applyServerTimeouts(server);
  let address;
  try {
    address = await listen(server, parseListen(config.listen));
  } catch (error) {
    await eksAuth.close();
    await diagnosticsKube?.close();
    throw error;
  }
  return {
    url: `${config.tls ? 'https' : 'http'}://${formatUrlHost(address.host)}:${address.port}`,
    async close() {
      await closeServer(server);
      await eksAuth.close();
      await diagnosticsKube?.close();
    },
  };
}
