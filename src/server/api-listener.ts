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
import { sigv4Authenticator, staticKeys } from './authenticate.js';
import type { ServerConfig } from '../config/schema.js';
import type { Route } from './router.js';
import { associationRoutes } from './routes/associations.js';
import { clusterRoutes } from './routes/clusters.js';
import { tagRoutes } from './routes/tags.js';
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
  // Every admin operation is SigV4 with signing name `eks`, scoped to the server's region.
  const admins = sigv4Authenticator({ service: 'eks', region: config.region }, staticKeys(config.admins));
  const routes: Route[] = [
    ...associationRoutes(associations, admins),
    ...tagRoutes(associations, admins),
    ...clusterRoutes(
      config.clusters.map((c) => ({ name: c.name, arn: clusterArn(config.region, config.accountId, c.name), ...(c.issuer !== undefined && { issuer: c.issuer }) })),
      admins,
    ),
    ...identitiesRoutes(store, () => clusterNames, admins),
    ...eksAuthRoutes(eksAuth.service, config.nodes, config.region),
    ...(eksAuth.localIssuer ? stsRoutes(eksAuth.localIssuer, config.region) : []),
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
    throw error;
  }
  return {
    url: `${config.tls ? 'https' : 'http'}://${formatUrlHost(address.host)}:${address.port}`,
    async close() {
      await closeServer(server);
      await eksAuth.close();
    },
  };
}
