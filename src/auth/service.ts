// AssumeRoleForPodIdentity, the decision: which node asks, for which cluster,
// with which token → verified pod identity → node binding → throttles →
// association → credentials. Every decision is audited, allowed or not.
import { randomBytes, randomUUID } from 'node:crypto';
import type { Registry } from 'prom-client';
import type { AssumeRoleResponse } from '../api/eks-auth.js';
import type { Association } from '../api/eks.js';
import type { AuditLog } from '../lib/audit.js';
import { isWireError } from '../lib/errors.js';
import { isoTime } from '../lib/iso-time.js';
import { hotCounter, type HotCounter } from '../lib/metrics.js';
import { POD_IDENTITY_AUDIENCE, refused, type PodIdentityClaims } from './claims.js';
import { decodePayloadUnverified } from './jws.js';
import { isTokenFailureReason, TOKEN_FAILURE_REASONS, type DecisionFailureReason } from './reasons.js';
import type { ClusterAuth } from './cluster.js';
import type { CredentialIssuer, IssuedCredentials } from './issuers/issuer.js';
import { checkNodeBinding } from './node-binding.js';
import type { AssociationResolver } from './resolver.js';
import { customSessionTags, effectiveRoleArn, readsPodLabels, roleSessionName, sessionTags, templatedSessionName, type SessionTag } from './session.js';
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

type DecisionOutcome = 'allowed' | 'denied' | 'failed';

/** The audit record of one decision (docs/operations.md, Audit records). */
export interface DecisionRecord {
  type: 'eks-auth-decision';
  /** ISO 8601 */
  time: string;
  requestId: string;
  cluster: string;
  /** access key id of the calling node key */
  caller: string;
  namespace?: string;
  serviceAccount?: string;
  podName?: string;
  podUid?: string;
  /** the node: the request's eksNodeName, else the token's node claim */
  node?: string;
  /** the token's jti, which the Kubernetes audit log records for the TokenRequest that made it */
  jti?: string;
  /** whether the token passed verification (a refused token's jti is what it claims, nothing more) */
  tokenVerified: boolean;
  associationId?: string;
  /** the matched association's namespace and service account: a pattern (`build-*`) when a pattern matched */
  associationNamespace?: string;
  associationServiceAccount?: string;
  roleArn?: string;
  /** the role session name, as STS and CloudTrail show it */
  sessionName?: string;
  /** the access key id of the issued credentials (never their secret or session token) */
  accessKeyId?: string;
  outcome: DecisionOutcome;
  /** the wire error name when not allowed */
  errorType?: string;
  /** which check refused it, from a fixed set (auth/reasons.ts) */
  reason?: DecisionFailureReason;
  latencyMs: number;
}

function outcomeOf(error: unknown): Pick<DecisionRecord, 'outcome' | 'errorType' | 'reason'> {
  if (!isWireError(error)) return { outcome: 'failed', errorType: 'InternalServerException', reason: 'internal' };
  return { outcome: error.status >= 500 ? 'failed' : 'denied', errorType: error.code, reason: (error.reason as DecisionFailureReason | undefined) ?? 'internal' };
}

/** A jti as a record keeps it: a string of sane length (a refused token's claims are anyone's). */
function jtiOf(payload: unknown): string | undefined {
  const jti = (payload as { jti?: unknown } | null)?.jti;
  return typeof jti === 'string' && jti.length > 0 ? jti.slice(0, 128) : undefined;
}

/** The jti a token claims, read without verifying it; for the record of a refused token. */
function claimedJti(token: string): string | undefined {
  try {
    return jtiOf(decodePayloadUnverified(token));
  } catch {
    return undefined;
  }
}

export class EksAuthService {
  private readonly clusters: Map<string, ClusterAuth>;
  private readonly perCluster?: KeyedBuckets;
  private readonly perServiceAccount?: KeyedBuckets;
  private readonly now: () => number;
  private readonly decisions?: HotCounter;
  private readonly verificationFailures?: HotCounter;

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
      this.verificationFailures = hotCounter(options.registry, {
        name: 'pod_identity_token_verification_failures_total',
        help: `Service-account tokens refused by verification, by cluster and reason (${TOKEN_FAILURE_REASONS.join(', ')})`,
        labelNames: ['cluster', 'reason'],
      });
    }
  }

  async assumeRole(input: AssumeRoleInput): Promise<AssumeRoleResponse> {
    const started = performance.now();
    // Every field is there from the start (undefined until known), so the record keeps one shape as it fills in.
    const record: DecisionRecord = {
      type: 'eks-auth-decision',
      time: isoTime(this.now()),
      requestId: input.requestId,
      cluster: input.clusterName,
      caller: input.caller.accessKeyId,
      namespace: undefined,
      serviceAccount: undefined,
      podName: undefined,
      podUid: undefined,
      node: input.eksNodeName,
      jti: undefined,
      tokenVerified: false,
      associationId: undefined,
      associationNamespace: undefined,
      associationServiceAccount: undefined,
      roleArn: undefined,
      sessionName: undefined,
      accessKeyId: undefined,
      outcome: 'allowed',
      errorType: undefined,
      reason: undefined,
      latencyMs: 0,
    };
    const cluster = this.clusters.has(input.clusterName) ? input.clusterName : '(unknown)';
    try {
      return await this.decide(input, record);
    } catch (error) {
      Object.assign(record, outcomeOf(error));
      if (!record.tokenVerified) {
        record.jti ??= claimedJti(input.token);
        if (isTokenFailureReason(record.reason)) this.verificationFailures?.add(cluster, record.reason);
      }
      throw error;
    } finally {
      record.latencyMs = Math.round((performance.now() - started) * 1000) / 1000;
      this.options.audit.record(record, 'eks-auth decision');
      this.decisions?.add(cluster, record.outcome, record.errorType ?? '');
    }
  }

  private async decide(input: AssumeRoleInput, record: DecisionRecord): Promise<AssumeRoleResponse> {
    if (input.caller.clusters && !input.caller.clusters.includes(input.clusterName)) {
      throw refused('AccessDeniedException', 'cluster_not_allowed', `This node key may not call AssumeRoleForPodIdentity for cluster ${input.clusterName}.`, 400);
    }
    const cluster = this.clusters.get(input.clusterName);
    if (!cluster) throw refused('ResourceNotFoundException', 'unknown_cluster', `No cluster found for name: ${input.clusterName}.`);
    if (this.perCluster && !this.perCluster.take(cluster.name, this.now())) {
      throw refused('ThrottlingException', 'throttled_cluster', `Too many requests for cluster ${cluster.name}; retry later.`);
    }

    const claims = await cluster.verifier.verify(input.token);
    record.tokenVerified = true;
    record.jti = claims.tokenId;
    record.namespace = claims.namespace;
    record.serviceAccount = claims.serviceAccount;
    record.podName = claims.podName;
    record.podUid = claims.podUid;
    record.node ??= claims.nodeName;
    checkNodeBinding({ tokenNode: claims.nodeName, requestNode: input.eksNodeName, required: cluster.requireNodeBinding });

    if (this.perServiceAccount && !this.perServiceAccount.take(`${cluster.name}\u0000${claims.namespace}\u0000${claims.serviceAccount}`, this.now())) {
      throw refused('ThrottlingException', 'throttled_service_account', `Too many requests for service account ${claims.serviceAccount} in namespace ${claims.namespace}; retry later.`);
    }

    const association = await this.options.resolver.resolve({ clusterName: cluster.name, namespace: claims.namespace, serviceAccount: claims.serviceAccount });
    record.associationId = association.associationId;
    record.associationNamespace = association.namespace;
    record.associationServiceAccount = association.serviceAccount;
    record.roleArn = effectiveRoleArn(association);

    const sessionName = association.sessionNameTemplate
      ? templatedSessionName(association.sessionNameTemplate, { cluster: cluster.name, namespace: claims.namespace, serviceAccount: claims.serviceAccount, pod: claims.podName, random: randomBytes(8).toString('hex') })
      : roleSessionName(cluster.name, claims.podName, randomUUID());
    record.sessionName = sessionName;
    const tagged = this.options.issuer.usesSessionTags && !association.disableSessionTags;
    // the association's own tags may need a pod read; EKS's six never do, and stay off the await
    const tags = !tagged ? undefined : association.sessionTags ? await this.withCustomTags(cluster, claims, association.sessionTags) : sessionTags(cluster.arn, cluster.name, claims);
    const issued = await this.options.issuer.issue({ association, sessionName, ...(tags && { tags }), transitiveTags: association.transitiveSessionTags !== false });
    record.accessKeyId = issued.accessKeyId;
    return toAssumeRoleResponse(claims, association, issued);
  }

  /** The six EKS tags, then the association's own (pod labels read only when a value needs one). */
  private async withCustomTags(cluster: ClusterAuth, claims: PodIdentityClaims, custom: Readonly<Record<string, string>>): Promise<SessionTag[]> {
    let labels: Readonly<Record<string, string>> | undefined;
    if (readsPodLabels(custom)) {
      if (!cluster.podLabels) {
        throw refused('InvalidRequestException', 'pod_labels_unreadable', `The association's session tags read pod labels, and cluster ${cluster.name} has no API access (clusters[].kubeconfig) to read them.`);
      }
      labels = await cluster.podLabels(claims);
    }
    return [...sessionTags(cluster.arn, cluster.name, claims), ...customSessionTags(custom, labels, claims.podName)];
  }
}
