// How one cluster's tokens are verified: the mode follows from where its keys
// come from (pure), and the verifier is assembled from keys, TokenReview and
// the pod liveness check accordingly.
import type { Logger } from '../lib/logger.js';
import { jwksFromApiServer, jwksFromDiscovery, jwksFromFile, jwksFromUri } from './jwks-sources.js';
import { KeySet, type JwksFetcher } from './keys.js';
import { connectKube, type KubeApi } from '../kube/connect.js';
import { apiServerPodMetadata, podLivenessCheck } from './liveness.js';
import { podLabelsReader, type PodLabelsLookup } from './pod-labels.js';
import { clusterArn } from './session.js';
import { JwksTokenVerifier, TokenReviewVerifier, withRevocation, type TokenVerifier } from './verifier.js';

type VerificationMode = 'jwks-file' | 'jwks-uri' | 'api-server-jwks' | 'oidc-discovery' | 'token-review';

/** One cluster, as far as verifying its tokens goes (the server passes a `clusters[]` entry of its config). */
export interface ClusterVerification {
  name: string;
  /** expected `iss`; alone, the place of OIDC discovery */
  issuer?: string;
  jwksFile?: string;
  jwksUri?: string;
  /** a kubeconfig file, or `in-cluster`: TokenReview, or pod liveness checks in JWKS mode */
  kubeconfig?: string;
  tokenReview?: boolean;
  requireNodeBinding: boolean;
  /** the longest `exp - iat` a token may have; default 48 h */
  maxTokenLifetimeSeconds?: number;
}

/**
 * tokenReview: true → TokenReview; else the first of jwksFile, jwksUri; a
 * kubeconfig alone means TokenReview unless tokenReview is false (then the API
 * server's own JWKS); an issuer alone means OIDC discovery.
 */
export function verificationMode(cluster: Omit<ClusterVerification, 'name' | 'requireNodeBinding' | 'maxTokenLifetimeSeconds'>): VerificationMode {
  if (cluster.tokenReview === true && cluster.kubeconfig) return 'token-review';
  if (cluster.jwksFile) return 'jwks-file';
  if (cluster.jwksUri) return 'jwks-uri';
  if (cluster.kubeconfig) return cluster.tokenReview === false ? 'api-server-jwks' : 'token-review';
  if (cluster.issuer) return 'oidc-discovery';
  throw new Error(`cluster ${cluster.issuer ?? ''}: no way to verify tokens`);
}

/** Where a cluster's signing keys come from in a JWKS mode, and how logs name it; undefined in TokenReview mode. */
export function keySource(cluster: ClusterVerification, mode: VerificationMode, kube: KubeApi | undefined): { fetchJwks: JwksFetcher; describe: string } | undefined {
  switch (mode) {
    case 'jwks-file':
      return { fetchJwks: jwksFromFile(cluster.jwksFile!), describe: `jwksFile ${cluster.jwksFile}` };
    case 'jwks-uri':
      return { fetchJwks: jwksFromUri(cluster.jwksUri!), describe: `jwksUri ${cluster.jwksUri}` };
    case 'api-server-jwks':
      return { fetchJwks: jwksFromApiServer(kube!), describe: `${kube!.server}/openid/v1/jwks` };
    case 'oidc-discovery':
      return { fetchJwks: jwksFromDiscovery(cluster.issuer!), describe: `OIDC discovery of ${cluster.issuer}` };
    case 'token-review':
      return undefined;
  }
}

export interface ClusterAuth {
  name: string;
  arn: string;
  mode: VerificationMode;
  /** whether deleted pods are noticed (TokenReview, or a kubeconfig for liveness checks) */
  revocation: boolean;
  requireNodeBinding: boolean;
  verifier: TokenVerifier;
  /** the labels of a token's pod, for session tags that read them; absent without API access (kubeconfig) */
  podLabels?: PodLabelsLookup;
  /** loads the keys ahead of the first request */
  warmUp(): Promise<void>;
  /** closes the cluster's API connections */
  close(): Promise<void>;
}

export interface ClusterAuthOptions {
  region: string;
  accountId: string;
  logger: Logger;
  now?: () => number;
  /** how long a pod is believed alive / a TokenReview is remembered (default 20 s) */
  revocationTtlMs?: number;
}

export function createClusterAuth(cluster: ClusterVerification, options: ClusterAuthOptions): ClusterAuth {
  const mode = verificationMode(cluster);
  const logger = options.logger.child({ cluster: cluster.name });
  const kube: KubeApi | undefined = cluster.kubeconfig ? connectKube(cluster.kubeconfig) : undefined;
  const pods = kube ? apiServerPodMetadata(kube) : undefined;
  const base = {
    name: cluster.name,
    arn: clusterArn(options.region, options.accountId, cluster.name),
    mode,
    requireNodeBinding: cluster.requireNodeBinding,
    ...(pods && { podLabels: podLabelsReader(pods, logger) }),
  };
  const close = async () => kube?.close();

  if (mode === 'token-review') {
    const verifier = new TokenReviewVerifier({ kube: kube!, issuer: cluster.issuer, maxTokenLifetimeSeconds: cluster.maxTokenLifetimeSeconds, logger, now: options.now, reviewTtlMs: options.revocationTtlMs });
    return { ...base, revocation: true, verifier, warmUp: async () => undefined, close };
  }

  const { fetchJwks, describe } = keySource(cluster, mode, kube)!;
  // A file is cheap to re-read: follow rotation quickly.
  const keys = new KeySet({ fetchJwks, describe, logger, now: options.now, cooldownMs: mode === 'jwks-file' ? 2_000 : 5_000 });
  const local = new JwksTokenVerifier({ keys, issuer: cluster.issuer, maxTokenLifetimeSeconds: cluster.maxTokenLifetimeSeconds, now: options.now });
  const verifier = pods
    ? withRevocation(local, podLivenessCheck({ podUid: async (namespace, name) => (await pods(namespace, name))?.uid, logger, now: options.now, aliveTtlMs: options.revocationTtlMs }))
    : local;
  return { ...base, revocation: kube !== undefined, verifier, warmUp: () => keys.warmUp(), close };
}
