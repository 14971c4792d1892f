// Cluster discovery (EKS ListClusters and DescribeCluster) for the clusters
// this server serves, so that `aws eks list-clusters`, `describe-cluster` and
// tools that discover clusters with them work: name, ARN, status ACTIVE and
// the service-account issuer as identity.oidc.issuer. Admin keys, SigV4 `eks`.
import { listClustersInput, toWireCluster, validate, type ClusterRecord } from '../../api/eks.js';
import { WireError } from '../../lib/errors.js';
import type { Authenticator } from '../authenticate.js';
import type { Route } from '../router.js';

const COLLECTION = /^\/clusters\/?$/;
const ITEM = /^\/clusters\/(?<name>[^/]+)$/;

function pageToken(name: string): string {
  return Buffer.from(name).toString('base64url');
}

function afterName(token: string): string {
  const name = Buffer.from(token, 'base64url').toString('utf8');
  if (!/^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$/.test(name)) throw new WireError('InvalidParameterException', 'nextToken is not valid.');
  return name;
}

export function clusterRoutes(clusters: readonly ClusterRecord[], authenticate: Authenticator): Route[] {
  const sorted = [...clusters].sort((a, b) => (a.name < b.name ? -1 : 1));
  return [
    {
      operation: 'ListClusters',
      method: 'GET',
      pattern: COLLECTION,
      authenticate,
      async handle(ctx) {
        const input = validate(listClustersInput, Object.fromEntries(ctx.query));
        const after = input.nextToken === undefined ? undefined : afterName(input.nextToken);
        const rest = after === undefined ? sorted : sorted.filter((c) => c.name > after);
        const page = rest.slice(0, input.maxResults);
        const more = rest.length > page.length;
        return { status: 200, body: { clusters: page.map((c) => c.name), ...(more && { nextToken: pageToken(page[page.length - 1]!.name) }) } };
      },
    },
    {
      operation: 'DescribeCluster',
      method: 'GET',
      pattern: ITEM,
      authenticate,
      async handle(ctx) {
        const cluster = sorted.find((c) => c.name === ctx.params.name);
        if (!cluster) throw new WireError('ResourceNotFoundException', `No cluster found for name: ${ctx.params.name}.`);
        return { status: 200, body: { cluster: toWireCluster(cluster) } };
      },
    },
  ];
}
