// AssumeRoleForPodIdentity, the decision: which node asks, for which cluster,
// with which token → verified pod identity → node binding → throttles →
// association → credentials. Every decision is audited, allowed or not.
import { randomUUID } from 'node:crypto';
import type { Registry } from 'prom-client';
import type { AssumeRoleResponse } from '../api/eks-auth.js';
import type { Association } from '../api/eks.js';
import { isWireError, WireError } from '../lib/errors.js';
import { isoTime } from '../lib/iso-time.js';
import { hotCounter, type HotCounter } from '../lib/metrics.js';
import type { AuditLog, AuditOutcome, AuditRecord } from './audit.js';
import { POD_IDENTITY_AUDIENCE, type PodIdentityClaims } from './claims.js';
import type { ClusterAuth } from './cluster.js';
import type { CredentialIssuer, IssuedCredentials } from './issuers/issuer.js';
import { checkNodeBinding } from './node-binding.js';
import type { AssociationResolver } from './resolver.js';
import { effectiveRoleArn, roleSessionName, sessionTags } from './session.js';
import type { RateLimit } from '../lib/token-bucket.js';
import { KeyedBuckets } from './throttle.js';

export interface AssumeRoleInput {
  clusterName: string;
  token: string;
  eksNodeName?: string;
  instanceId?: string;
  zone?: string;
  /** the verified node key, and the clusters it is limited to (all when absent) */
  caller: { accessKeyId: string; clusters?: readonly string[] };
  requestId: string;
}

export interface EksAuthServiceOptions {
  clusters: readonly ClusterAuth[];
  resolver: AssociationResolver;
  issuer: CredentialIssuer;
  audit: AuditLog;
  throttle?: { perCluster?: RateLimit; perServiceAccount?: RateLimit };
  registry?: Registry;
  now?: () => number;
}

function toAssumeRoleResponse(claims: PodIdentityClaims, association: Association, issued: IssuedCredentials): AssumeRoleResponse {
  return {
    subject: { namespace: claims.namespace, serviceAccount: claims.serviceAccount },
    audience: POD_IDENTITY_AUDIENCE,
    podIdentityAssociation: { associationArn: association.associationArn, associationId: association.associationId },
    assumedRoleUser: { arn: issued.assumedRoleUser.arn, assumeRoleId: issued.assumedRoleUser.assumeRoleId },
    credentials: {
      accessKeyId: issued.accessKeyId,
      secretAccessKey: issued.secretAccessKey,
      sessionToken: issued.sessionToken,
      expiration: Math.floor(issued.expiration.getTime() / 1000),
    },
  };
}

function outcomeOf(error: unknown): { outcome: AuditOutcome; errorType: string } {
  if (!isWireError(error)) return { outcome: 'failed', errorType: 'InternalServerException' };
  return { outcome: error.status >= 500 ? 'failed' : 'denied', errorType: error.code };
}

export class EksAuthService {
  private readonly clusters: Map<string, ClusterAuth>;
  private readonly perCluster?: KeyedBuckets;
  private readonly perServiceAccount?: KeyedBuckets;
  private readonly now: () => number;
  private readonly decisions?: HotCounter;

  constructor(private readonly options: EksAuthServiceOptions) {
    this.clusters = new Map(options.clusters.map((c) => [c.name, c]));
    this.now = options.now ?? Date.now;
    if (options.throttle?.perCluster) this.perCluster = new KeyedBuckets(options.throttle.perCluster, 10_000);
    if (options.throttle?.perServiceAccount) this.perServiceAccount = new KeyedBuckets(options.throttle.perServiceAccount);
    if (options.registry) {
      this.decisions = hotCounter(options.registry, {
        name: 'pod_identity_eks_auth_decisions_total',
        help: 'AssumeRoleForPodIdentity decisions by cluster, outcome (allowed, denied, failed) and error name',
        labelNames: ['cluster', 'outcome', 'error'],
      });
    }
  }

  async assumeRole(input: AssumeRoleInput): Promise<AssumeRoleResponse> {
    const started = performance.now();
    // Every field is there from the start (undefined until known), so the record keeps one shape as it fills in.
    const record: AuditRecord = {
      time: isoTime(this.now()),
      requestId: input.requestId,
      cluster: input.clusterName,
      caller: input.caller.accessKeyId,
      namespace: undefined,
      serviceAccount: undefined,
      podName: undefined,
      podUid: undefined,
      node: input.eksNodeName,
      associationId: undefined,
      roleArn: undefined,
      outcome: 'allowed',
      errorType: undefined,
      latencyMs: 0,
    };
    try {
      return await this.decide(input, record);
    } catch (error) {
      Object.assign(record, outcomeOf(error));
      throw error;
    } finally {
      record.latencyMs = Math.round((performance.now() - started) * 1000) / 1000;
      this.options.audit.record(record);
      this.decisions?.add(this.clusters.has(input.clusterName) ? input.clusterName : '(unknown)', record.outcome, record.errorType ?? '');
    }
  }

  private async decide(input: AssumeRoleInput, record: AuditRecord): Promise<AssumeRoleResponse> {
    if (input.caller.clusters && !input.caller.clusters.includes(input.clusterName)) {
      throw new WireError('AccessDeniedException', `This node key may not call AssumeRoleForPodIdentity for cluster ${input.clusterName}.`, { status: 400 });
    }
    const cluster = this.clusters.get(input.clusterName);
    if (!cluster) throw new WireError('ResourceNotFoundException', `No cluster found for name: ${input.clusterName}.`);
    if (this.perCluster && !this.perCluster.take(cluster.name, this.now())) {
      throw new WireError('ThrottlingException', `Too many requests for cluster ${cluster.name}; retry later.`);
    }

    const claims = await cluster.verifier.verify(input.token);
    record.namespace = claims.namespace;
    record.serviceAccount = claims.serviceAccount;
    record.podName = claims.podName;
    record.podUid = claims.podUid;
    record.node ??= claims.nodeName;
    checkNodeBinding({ tokenNode: claims.nodeName, requestNode: input.eksNodeName, required: cluster.requireNodeBinding });

    if (this.perServiceAccount && !this.perServiceAccount.take(`${cluster.name}\u0000${claims.namespace}\u0000${claims.serviceAccount}`, this.now())) {
      throw new WireError('ThrottlingException', `Too many requests for service account ${claims.serviceAccount} in namespace ${claims.namespace}; retry later.`);
    }

    const association = await this.options.resolver.resolve({ clusterName: cluster.name, namespace: claims.namespace, serviceAccount: claims.serviceAccount });
    record.associationId = association.associationId;
    record.roleArn = effectiveRoleArn(association);

    const issued = await this.options.issuer.issue({
      association,
      sessionName: roleSessionName(cluster.name, claims.podName, randomUUID()),
      ...(this.options.issuer.usesSessionTags && !association.disableSessionTags && { tags: sessionTags(cluster.arn, cluster.name, claims) }),
    });
    return toAssumeRoleResponse(claims, association, issued);
  }
}
