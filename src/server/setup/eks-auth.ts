// Assembles EKS Auth from the server config: one verifier per cluster, the
// association resolver over the shared store, the configured credential
// issuer, throttles and the audit log. server.ts composes its routes from
// what this returns.
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import type { AssociationStore } from '../../associations/store.js';
import type { AuditLog } from '../../lib/audit.js';
import type { Logger } from '../../lib/logger.js';
import type { ServerConfig } from '../../config/schema.js';
import { createClusterAuth, type ClusterAuth } from '../../auth/cluster.js';
import type { CredentialIssuer } from '../../auth/issuers/issuer.js';
import { LocalIssuer, loadOrCreateLocalIssuerKey } from '../../auth/issuers/local.js';
import { serverPrincipal, type ServerPrincipal } from '../../auth/issuers/principal.js';
import { StsIssuer } from '../../auth/issuers/sts.js';
import { AssociationResolver } from '../../auth/resolver.js';
import { EksAuthService } from '../../auth/service.js';

export interface EksAuth {
  service: EksAuthService;
  /** set when issuer.type is local: the server then answers STS GetCallerIdentity for its credentials */
  localIssuer?: LocalIssuer;
  /** set when issuer.type is aws-sts: the server's own principal, and which roles trust it */
  principal?: ServerPrincipal;
  clusters: readonly ClusterAuth[];
  close(): Promise<void>;
}

export interface EksAuthOptions {
  store: AssociationStore;
  logger: Logger;
  /** where decisions are recorded (closed by its owner) */
  audit: AuditLog;
  registry?: Registry;
}

/** Where the local issuer's key lives; made on first start, so replicas and workers must share it. */
export function localIssuerKeyFile(config: ServerConfig): string {
  return config.issuer.localKeyFile ?? join(config.dataDir, 'local-issuer.key');
}

export function createEksAuth(config: ServerConfig, options: EksAuthOptions): EksAuth {
  const logger = options.logger.child({ component: 'eks-auth' });
  const clusters = config.clusters.map((cluster) => createClusterAuth(cluster, { region: config.region, accountId: config.accountId, logger }));
  for (const cluster of clusters) {
    void cluster.warmUp();
    logger.info({ cluster: cluster.name, verification: cluster.mode, revocation: cluster.revocation, requireNodeBinding: cluster.requireNodeBinding }, 'cluster token verification');
  }

  let issuer: CredentialIssuer;
  let localIssuer: LocalIssuer | undefined;
  let principal: ServerPrincipal | undefined;
  if (config.issuer.type === 'local') {
    const key = loadOrCreateLocalIssuerKey(localIssuerKeyFile(config));
    localIssuer = new LocalIssuer({ key, durationSeconds: config.issuer.durationSeconds });
    issuer = localIssuer;
  } else {
    const region = config.issuer.region ?? config.region;
    issuer = new StsIssuer({ region, endpoint: config.issuer.stsEndpoint, durationSeconds: config.issuer.durationSeconds, logger, registry: options.registry });
    principal = serverPrincipal({ region, stsEndpoint: config.issuer.stsEndpoint, iamEndpoint: config.issuer.iamEndpoint });
  }

  const resolver = new AssociationResolver({ store: options.store });
  const service = new EksAuthService({ clusters, resolver, issuer, audit: options.audit, throttle: config.throttle, registry: options.registry });
  return {
    service,
    ...(localIssuer && { localIssuer }),
    ...(principal && { principal }),
    clusters,
    async close() {
      resolver.close();
      issuer.close();
      principal?.close();
      await Promise.all(clusters.map((cluster) => cluster.close()));
    },
  };
}
