// Assembles the admin console from the server config: its own listener
// (consoleListen; HTTPS with the API's certificate when `tls` is set, and then
// Secure cookies), the AssociationService over the primary's store (changes
// reach the workers' caches as the API's do), the admin keys as the
// association API looks them up, and the decision feed that server.ts fills
// from this process's audit trail and from the API workers'. On PostgreSQL the
// feed also holds the other replicas' decisions (console/replica-relay.ts).
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { hostname } from 'node:os';
import { AssociationService } from '../../associations/service.js';
import type { AssociationStore } from '../../associations/store.js';
import { verificationMode } from '../../auth/cluster.js';
import { clusterArn } from '../../auth/session.js';
import type { ServerConfig } from '../../config/schema.js';
import { createConsoleHandler } from '../../console/handler.js';
import type { DecisionOrigin } from '../../console/decisions.js';
import type { DecisionFeed } from '../../console/feed.js';
import { ReplicaRelay } from '../../console/replica-relay.js';
import type { AuditLog } from '../../lib/audit.js';
import { applyServerTimeouts, closeServer, formatUrlHost, listen, parseListen } from '../../lib/http.js';
import type { Logger } from '../../lib/logger.js';
import type { TlsSource } from '../../webhook/certs.js';
import { apiTlsSource } from '../api-listener.js';
import { staticKeys } from '../authenticate.js';

const VERIFICATION_WORDS = {
  'token-review': 'TokenReview (kubeconfig)',
  'jwks-file': 'JWKS file',
  'jwks-uri': 'JWKS URI',
  'api-server-jwks': "the API server's JWKS",
  'oidc-discovery': 'OIDC discovery',
} as const;

/** This replica's name in the live feed: the host name (a pod's name in Kubernetes). */
export function replicaOrigin(worker?: number): DecisionOrigin {
  return { host: hostname(), ...(worker !== undefined && { worker }) };
}

export interface RunningConsole {
  url: string;
  close(): Promise<void>;
}

export interface ConsoleDeps {
  store: AssociationStore;
  logger: Logger;
  /** the primary's audit trail: the console's changes are recorded there */
  audit: AuditLog;
  /** the decisions to show (server.ts fills it) */
  feed: DecisionFeed;
}

/** Starts the console on consoleListen (server.ts calls it only when that is set). */
export async function startConsoleFromConfig(config: ServerConfig, deps: ConsoleDeps): Promise<RunningConsole> {
  if (!config.consoleListen) throw new Error('consoleListen is not set');
  const { feed } = deps;
  const logger = deps.logger.child({ component: 'console' });
  const names = config.clusters.map((c) => c.name);
  const handler = createConsoleHandler({
    associations: new AssociationService({ store: deps.store, region: config.region, accountId: config.accountId, clusters: () => names, audit: deps.audit, allowPatterns: config.associations.allowPatterns }),
    countByCluster: () => deps.store.countByCluster(),
    clusters: config.clusters.map((c) => ({
      name: c.name,
      arn: clusterArn(config.region, config.accountId, c.name),
      ...(c.issuer !== undefined && { issuer: c.issuer }),
      verification: VERIFICATION_WORDS[verificationMode(c)],
    })),
    adminKeys: staticKeys(config.admins),
    feed,
    scope: { replica: replicaOrigin().host, merged: config.databaseUrl !== undefined },
    sessionSeconds: config.console.sessionSeconds,
    secure: config.tls !== undefined,
    logger,
  });
  let tls: TlsSource | undefined;
  let server: Server;
  if (config.tls) {
    const target: { server?: ReturnType<typeof createHttpsServer> } = {};
    tls = await apiTlsSource(config, logger, (pair) => target.server?.setSecureContext({ ...pair, minVersion: 'TLSv1.2' }));
    server = target.server = createHttpsServer({ ...tls.current(), minVersion: 'TLSv1.2' }, handler.handle);
  } else {
    server = createHttpServer(handler.handle);
  }
  applyServerTimeouts(server);
  let address;
  try {
    address = await listen(server, parseListen(config.consoleListen));
  } catch (error) {
    tls?.close();
    throw new Error(`console listener ${config.consoleListen}: ${(error as Error).message}`, { cause: error });
  }
  const url = `${tls ? 'https' : 'http'}://${formatUrlHost(address.host)}:${address.port}`;
  if (config.admins.length === 0) logger.warn('the console is on but no admin key is configured (admins), so nobody can sign in');
  const relay = config.databaseUrl ? new ReplicaRelay({ databaseUrl: config.databaseUrl, feed, logger }) : undefined;
  return {
    url,
    async close() {
      await relay?.stop();
      handler.close();
      await closeServer(server, 2000);
      tls?.close();
    },
  };
}
