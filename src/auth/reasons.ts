// Why an AssumeRoleForPodIdentity request was refused, as one stable code
// from a fixed set: the `reason` of its audit record, and (for the token's
// own failures) the `reason` label of pod_identity_token_verification_failures_total.
// The wire keeps its AWS error names; these say which check failed.

/** The token itself failed: its form, signature, claims, or what the cluster says of it. */
export const TOKEN_FAILURE_REASONS = [
  /** not a compact JWS, undecodable parts, a bad header */
  'malformed',
  /** alg none, HMAC or unknown */
  'unsupported_alg',
  /** no key of the cluster has its kid / fits its alg */
  'unknown_key',
  'bad_signature',
  'expired',
  /** nbf or iat in the future */
  'not_yet_valid',
  'issuer_mismatch',
  'audience_mismatch',
  /** sub is not a service account, or disagrees with the kubernetes.io claims, or a claim is missing */
  'bad_claims',
  'not_pod_bound',
  /** the cluster requires node binding and the token has no node claim */
  'not_node_bound',
  /** exp - iat above the cluster's limit */
  'lifetime_too_long',
  /** TokenReview did not authenticate it, or named another user or pod */
  'token_review_rejected',
  /** its pod no longer exists (liveness check) */
  'pod_gone',
  /** the cluster's signing keys could not be had */
  'keys_unavailable',
  /** the cluster's API server did not answer a TokenReview or a pod read */
  'api_unavailable',
] as const;

export type TokenFailureReason = (typeof TOKEN_FAILURE_REASONS)[number];

/** Everything else that refuses a request. */
export type DecisionFailureReason =
  | TokenFailureReason
  /** the node key is limited to other clusters */
  | 'cluster_not_allowed'
  | 'unknown_cluster'
  | 'throttled_cluster'
  | 'throttled_service_account'
  /** the cluster requires node binding and the request names no eksNodeName */
  | 'node_name_missing'
  /** the token's node is not the requesting node */
  | 'node_mismatch'
  | 'no_association'
  /** a session tag of the association reads a label the pod does not have */
  | 'pod_label_missing'
  /** a session tag of the association reads pod labels, and the cluster has no API access to read them */
  | 'pod_labels_unreadable'
  | 'sts_throttled'
  | 'sts_denied'
  | 'sts_refused'
  | 'sts_unavailable'
  /** the credential issuer failed otherwise */
  | 'issuer_failed'
  /** an error of our own */
  | 'internal';

const TOKEN_REASONS: ReadonlySet<string> = new Set(TOKEN_FAILURE_REASONS);

export function isTokenFailureReason(reason: string | undefined): reason is TokenFailureReason {
  return reason !== undefined && TOKEN_REASONS.has(reason);
}
