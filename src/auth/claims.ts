// Claim rules for projected service-account tokens (DESIGN §3.5), as pure
// functions of the decoded payload and the clock. Each failure names the check
// that failed and never echoes the token or its claim values beyond what an
// operator needs (namespace, service account, pod name).
import { WireError } from '../lib/errors.js';
import type { DecisionFailureReason, TokenFailureReason } from './reasons.js';

export const POD_IDENTITY_AUDIENCE = 'pods.eks.amazonaws.com';
/** Clock leeway for exp, nbf and iat; the same minute Kubernetes allows itself. */
const CLOCK_LEEWAY_SECONDS = 60;
/**
 * The longest `exp - iat` accepted unless a cluster sets its own: 48 h. A
 * projected token lives 24 h at most in the webhook's default; a token valid
 * for years is one leak away from years of credentials.
 */
const DEFAULT_MAX_TOKEN_LIFETIME_SECONDS = 48 * 3600;

/** What a verified token proves: which pod of which service account, on which node. */
export interface PodIdentityClaims {
  issuer: string;
  namespace: string;
  serviceAccount: string;
  serviceAccountUid?: string;
  podName: string;
  podUid: string;
  /** present for tokens of Kubernetes 1.30+ */
  nodeName?: string;
  nodeUid?: string;
  /** epoch seconds */
  expiresAt: number;
  /** the token's jti (Kubernetes 1.29+), cut to 128 characters */
  tokenId?: string;
}

export interface ClaimRules {
  /** expected `iss`; unchecked when absent (the keys alone then identify the cluster) */
  issuer?: string;
  /** epoch seconds */
  now: number;
  leewaySeconds?: number;
  /** the longest `exp - iat` accepted (the cluster's maxTokenLifetimeSeconds); default 48 h */
  maxLifetimeSeconds?: number;
}

export function invalidToken(reason: TokenFailureReason, check: string): WireError {
  return new WireError('InvalidTokenException', `The service account token failed verification: ${check}.`, { reason });
}

/** A refusal with its audit reason. */
export function refused(code: ConstructorParameters<typeof WireError>[0], reason: DecisionFailureReason, message: string, status?: number): WireError {
  return new WireError(code, message, { reason, ...(status !== undefined && { status }) });
}

function expiredToken(): WireError {
  return new WireError('ExpiredTokenException', 'The service account token has expired.', { reason: 'expired' });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

function numericDate(payload: Record<string, unknown>, name: string, required: boolean): number | undefined {
  const value = payload[name];
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw invalidToken('bad_claims', `"${name}" claim is missing or not a number`);
  return value;
}

const SUBJECT = /^system:serviceaccount:([^:]+):([^:]+)$/;

/**
 * Checks the time, issuer, audience, subject and pod binding of a decoded
 * payload whose signature is already verified. Expired is
 * ExpiredTokenException; anything else InvalidTokenException naming the check.
 */
export function checkClaims(payload: unknown, rules: ClaimRules): PodIdentityClaims {
  if (!isRecord(payload)) throw invalidToken('malformed', 'payload is not a JSON object');
  const leeway = rules.leewaySeconds ?? CLOCK_LEEWAY_SECONDS;

  const exp = numericDate(payload, 'exp', true)!;
  if (rules.now > exp + leeway) throw expiredToken();
  const nbf = numericDate(payload, 'nbf', false);
  if (nbf !== undefined && rules.now < nbf - leeway) throw invalidToken('not_yet_valid', '"nbf" is in the future');
  // Kubernetes always sets iat; without it the lifetime cannot be bounded.
  const iat = numericDate(payload, 'iat', true)!;
  if (iat > rules.now + leeway) throw invalidToken('not_yet_valid', '"iat" is in the future');
  const maxLifetime = rules.maxLifetimeSeconds ?? DEFAULT_MAX_TOKEN_LIFETIME_SECONDS;
  if (exp - iat > maxLifetime) throw invalidToken('lifetime_too_long', `token lifetime (exp - iat) of ${Math.round(exp - iat)} s exceeds the cluster's maxTokenLifetimeSeconds (${maxLifetime} s)`);

  const iss = payload.iss;
  if (!nonEmptyString(iss)) throw invalidToken('issuer_mismatch', '"iss" claim is missing');
  if (rules.issuer !== undefined && iss !== rules.issuer) throw invalidToken('issuer_mismatch', "issuer does not match the cluster's issuer");

  const aud = payload.aud;
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  if (!audiences.includes(POD_IDENTITY_AUDIENCE)) throw invalidToken('audience_mismatch', `audience does not contain ${POD_IDENTITY_AUDIENCE}`);

  const sub = typeof payload.sub === 'string' ? SUBJECT.exec(payload.sub) : null;
  if (!sub) throw invalidToken('bad_claims', '"sub" is not a service account (system:serviceaccount:<namespace>:<name>)');
  const [, namespace, serviceAccount] = sub as unknown as [string, string, string];

  const k8s = payload['kubernetes.io'];
  if (!isRecord(k8s)) throw invalidToken('bad_claims', '"kubernetes.io" claim is missing');
  const sa = isRecord(k8s.serviceaccount) ? k8s.serviceaccount : undefined;
  if (k8s.namespace !== namespace || sa?.name !== serviceAccount) throw invalidToken('bad_claims', '"sub" does not match the kubernetes.io namespace and service account claims');

  const pod = isRecord(k8s.pod) ? k8s.pod : undefined;
  if (!pod || !nonEmptyString(pod.name) || !nonEmptyString(pod.uid)) throw invalidToken('not_pod_bound', 'token is not bound to a pod');

  const claims: PodIdentityClaims = { issuer: iss, namespace, serviceAccount, podName: pod.name, podUid: pod.uid, expiresAt: exp };
  if (nonEmptyString(sa.uid)) claims.serviceAccountUid = sa.uid;
  if (nonEmptyString(payload.jti)) claims.tokenId = payload.jti.slice(0, 128);
  const node = isRecord(k8s.node) ? k8s.node : undefined;
  if (node && nonEmptyString(node.name)) {
    claims.nodeName = node.name;
    if (nonEmptyString(node.uid)) claims.nodeUid = node.uid;
  }
  return claims;
}

/** Re-checks only the clock for a token verified earlier (cache hit). */
export function checkStillValid(claims: PodIdentityClaims, now: number, leewaySeconds = CLOCK_LEEWAY_SECONDS): void {
  if (now > claims.expiresAt + leewaySeconds) throw expiredToken();
}
