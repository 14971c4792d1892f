// `POST /clusters/{name}/diagnostics`: what this server would do for one
// service account, asked by `pod-identity doctor` (our extension of the EKS
// API; admin keys, SigV4 `eks`). The answer comes from the server's own
// parts, so it is what a pod would meet: the association the service
// account resolves to, what the webhook would do to a pod of it (the pod
// given, else a minimal one), and, with the aws-sts issuer, the server's
// principal and whether the association's roles trust it (IAM GetRole).
import type { Pod } from '../../api/admission.js';
import { parseJsonBody, toWireAssociation, type Association } from '../../api/eks.js';
import { findAssociation } from '../../associations/resolve.js';
import type { AssociationStore } from '../../associations/store.js';
import type { RoleTrust, ServerPrincipal } from '../../auth/issuers/principal.js';
import { WireError } from '../../lib/errors.js';
import type { Decision } from '../../webhook/review.js';
import type { Authenticator } from '../authenticate.js';
import type { Route } from '../router.js';

const PATH = /^\/clusters\/(?<cluster>[^/]+)\/diagnostics$/;

export interface DiagnosticsDeps {
  store: AssociationStore;
  clusters: readonly string[];
  /** the webhook's own decision for a pod of a namespace */
  decide: (pod: Pod, namespace: string) => Promise<Decision>;
  /** the cluster the webhook serves */
  webhookCluster: string | undefined;
  issuer: { type: 'local' | 'aws-sts'; stsEndpoint?: string; principal?: ServerPrincipal };
}

interface DiagnosisInput {
  namespace: string;
  serviceAccount: string;
  pod?: Pod;
}

function readInput(body: Buffer): DiagnosisInput {
  const input = parseJsonBody(body) as Partial<DiagnosisInput> | null;
  if (typeof input?.namespace !== 'string' || typeof input.serviceAccount !== 'string') throw new WireError('InvalidParameterException', 'namespace and serviceAccount are required.');
  if (input.pod !== undefined && (typeof input.pod !== 'object' || input.pod === null)) throw new WireError('InvalidParameterException', 'pod must be a Pod object.');
  return { namespace: input.namespace, serviceAccount: input.serviceAccount, ...(input.pod && { pod: input.pod }) };
}

/** A pod of that service account with nothing of its own, as `kubectl run` would make it. */
function minimalPod(namespace: string, serviceAccount: string): Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'doctor', namespace }, spec: { serviceAccountName: serviceAccount, containers: [{ name: 'app', image: 'app' }] } };
}

async function trustOf(principal: ServerPrincipal, association: Association) {
  let principalArn: string;
  try {
    principalArn = await principal.arn();
  } catch (error) {
    return { principalError: `STS GetCallerIdentity failed: ${(error as Error).name}: ${(error as Error).message.slice(0, 200)}` };
  }
  const roles: ({ roleArn: string; principalArn: string } & RoleTrust)[] = [{ roleArn: association.roleArn, principalArn, ...(await principal.roleTrust(association.roleArn, principalArn)) }];
  // A target role is assumed with the first role's session: it must trust that role.
  if (association.targetRoleArn) roles.push({ roleArn: association.targetRoleArn, principalArn: association.roleArn, ...(await principal.roleTrust(association.targetRoleArn, association.roleArn)) });
  return { principalArn, roles };
}

export function diagnosticsRoutes(deps: DiagnosticsDeps, authenticate: Authenticator): Route[] {
  return [
    {
      operation: 'DiagnoseServiceAccount',
      method: 'POST',
      pattern: PATH,
      authenticate,
      bodyLimit: 3 * 1024 * 1024,
      async handle(ctx) {
        const clusterName = ctx.params.cluster!;
        if (!deps.clusters.includes(clusterName)) throw new WireError('ResourceNotFoundException', `No cluster found for name: ${clusterName}.`);
        const { namespace, serviceAccount, pod } = readInput(ctx.body);
        const association = await findAssociation(deps.store, { clusterName, namespace, serviceAccount });
        const admission =
          deps.webhookCluster === clusterName
            ? await deps.decide(pod ?? minimalPod(namespace, serviceAccount), namespace)
            : { outcome: 'skipped' as const, reason: deps.webhookCluster ? `the webhook serves cluster ${deps.webhookCluster}` : 'the webhook serves no cluster' };
        const issuer = {
          type: deps.issuer.type,
          ...(deps.issuer.stsEndpoint && { stsEndpoint: deps.issuer.stsEndpoint }),
          ...(association && deps.issuer.principal && (await trustOf(deps.issuer.principal, association))),
        };
        return {
          status: 200,
          body: {
            association: association ? toWireAssociation(association) : null,
            admission: { mutated: admission.outcome === 'mutated', reason: admission.reason, ...(admission.result?.mutated && { patch: admission.result.patch }) },
            issuer,
          },
        };
      },
    },
  ];
}
