// `GET /clusters/{name}/identities`: the associations of a cluster as the
// identities file of AWS's own pod identity webhook (webhook/identities.ts),
// read-only, admin keys (SigV4 signing name `eks`).
import type { AssociationStore } from '../../associations/store.js';
import { WireError } from '../../lib/errors.js';
import { clusterIdentities } from '../../webhook/identities.js';
import type { Authenticator } from '../authenticate.js';
import type { Route } from '../router.js';

const IDENTITIES = /^\/clusters\/(?<cluster>[^/]+)\/identities\/?$/;

export function identitiesRoutes(store: AssociationStore, clusters: () => readonly string[], authenticate: Authenticator): Route[] {
  return [
    {
      operation: 'GetContainerCredentialsIdentities',
      method: 'GET',
      pattern: IDENTITIES,
      authenticate,
      async handle(ctx) {
        const cluster = ctx.params.cluster!;
        if (!clusters().includes(cluster)) throw new WireError('ResourceNotFoundException', `No cluster found for name: ${cluster}.`);
        return { status: 200, body: await clusterIdentities(store, cluster) };
      },
    },
  ];
}
