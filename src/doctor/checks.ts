// What `pod-identity doctor` decides, pure: whether a pod carries the
// webhook's mutation, whether a token's claims are what EKS Auth accepts,
// and the fix to print for each way a check can fail. The I/O that feeds
// these lives in doctor.ts.
import type { Pod } from '../api/admission.js';

export const POD_IDENTITY_AUDIENCE = 'pods.eks.amazonaws.com';
const VOLUME_NAME = 'eks-pod-identity-token';
const FULL_URI = 'AWS_CONTAINER_CREDENTIALS_FULL_URI';
const TOKEN_FILE = 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE';

type CheckStatus = 'passed' | 'failed' | 'skipped';

export interface CheckResult {
  /** stable id, for scripts: association, webhook, pod, token, eks-auth, agent, caller-identity, trust */
  check: string;
  /** what was checked, as a person reads it */
  title: string;
  status: CheckStatus;
  /** what was found */
  detail: string;
  /** what to do, when it failed */
  fix?: string;
}

/** The projected token the webhook added to a pod, as the kubelet will request it. */
export interface ProjectedToken {
  audience: string;
  expirationSeconds: number;
}

interface ProjectionSource {
  serviceAccountToken?: { audience?: string; expirationSeconds?: number; path?: string };
}

/** The pod's eks-pod-identity-token volume's token projection, if it has one. */
export function projectedToken(pod: Pod): ProjectedToken | undefined {
  const volume = (pod.spec?.volumes ?? []).find((v) => v?.name === VOLUME_NAME) as { projected?: { sources?: ProjectionSource[] } } | undefined;
  const source = volume?.projected?.sources?.find((s) => s.serviceAccountToken)?.serviceAccountToken;
  if (!source) return undefined;
  return { audience: source.audience ?? '', expirationSeconds: source.expirationSeconds ?? 3600 };
}

/** What the pod is missing of the webhook's mutation; empty when it carries all of it. */
export function missingMutation(pod: Pod): string[] {
  const missing: string[] = [];
  if (pod.metadata?.labels?.['eks.amazonaws.com/pod-identity'] !== 'enabled') missing.push('the label eks.amazonaws.com/pod-identity=enabled');
  if (!projectedToken(pod)) missing.push(`the projected volume ${VOLUME_NAME}`);
  for (const container of pod.spec?.containers ?? []) {
    const names = new Set((container.env ?? []).map((e) => e?.name));
    if (!names.has(FULL_URI) || !names.has(TOKEN_FILE)) missing.push(`${FULL_URI} and ${TOKEN_FILE} in container ${container.name}`);
  }
  return missing;
}

export interface TokenFacts {
  audiences: string[];
  subject?: string;
  pod?: string;
  lifetimeSeconds?: number;
}

/** The claims doctor looks at, read from a token's payload (not verified here: EKS Auth does that next). */
export function tokenFacts(token: string): TokenFacts | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  let claims: { aud?: unknown; sub?: unknown; exp?: unknown; iat?: unknown; 'kubernetes.io'?: { pod?: { name?: unknown } } };
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof claims;
  } catch {
    return undefined;
  }
  const aud = claims.aud;
  return {
    audiences: typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : [],
    ...(typeof claims.sub === 'string' && { subject: claims.sub }),
    ...(typeof claims['kubernetes.io']?.pod?.name === 'string' && { pod: claims['kubernetes.io'].pod.name }),
    ...(typeof claims.exp === 'number' && typeof claims.iat === 'number' && { lifetimeSeconds: claims.exp - claims.iat }),
  };
}

/** Why these claims would be refused for this service account, or undefined. */
export function tokenProblem(facts: TokenFacts | undefined, namespace: string, serviceAccount: string): string | undefined {
  if (!facts) return 'the token is not a JWT';
  if (!facts.audiences.includes(POD_IDENTITY_AUDIENCE)) return `its audience is ${facts.audiences.join(', ') || 'empty'}, not ${POD_IDENTITY_AUDIENCE}`;
  if (facts.subject !== `system:serviceaccount:${namespace}:${serviceAccount}`) return `it is for ${facts.subject ?? 'no subject'}, not system:serviceaccount:${namespace}:${serviceAccount}`;
  if (!facts.pod) return 'it is not bound to a pod';
  return undefined;
}

/** The fix for an EKS Auth or agent error code, in the words an operator acts on. */
export function fixForIssuance(code: string, context: { clusterName: string; namespace: string; serviceAccount: string; roleArn?: string }): string {
  const { clusterName, namespace, serviceAccount, roleArn } = context;
  switch (code) {
    case 'ResourceNotFoundException':
      return `create the association: pod-identity associations create -c ${clusterName} -n ${namespace} -s ${serviceAccount} --role-arn <role>`;
    case 'AccessDeniedException':
      return roleArn
        ? `the role must trust this server's principal with sts:AssumeRole and sts:TagSession: pod-identity trust-policy --role-arn ${roleArn}`
        : "the node key may not ask for this cluster (nodes[].clusters), or the role does not trust the server's principal";
    case 'InvalidTokenException':
    case 'ExpiredTokenException':
      return "the server refuses the cluster's token: check clusters[].issuer and its keys (jwksFile, jwksUri, kubeconfig); a token of a deleted pod is refused too";
    case 'ThrottlingException':
      return 'the server is throttling this cluster or service account (throttle.*): retry, or raise the limits';
    case 'UnrecognizedClientException':
    case 'InvalidSignatureException':
      return "the node key is not one of the server's nodes[] (or its secret differs)";
    case 'ServiceUnavailableException':
      return "the server cannot reach what it verifies or issues with (the cluster's API server, its keys, or STS): see its log";
    default:
      return 'see the server log for this request';
  }
}
