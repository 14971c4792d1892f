// Test keys and projected service-account tokens in exactly the claim format
// Kubernetes uses (DESIGN §3.5), signed with jose — for the edge cases a real
// API server will not produce (wrong audience, alg none, tampered payloads…).
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';

export const TEST_ISSUER = 'https://kubernetes.default.svc.cluster.local';
const AUDIENCE = 'pods.eks.amazonaws.com';

export interface TestSigner {
  alg: string;
  kid: string;
  /** public JWK with kid, alg and use */
  publicJwk: JWK;
  sign(payload: JWTPayload, header?: Record<string, unknown>): Promise<string>;
}

export async function testSigner(alg = 'RS256', kid: string = randomUUID()): Promise<TestSigner> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return {
    alg,
    kid,
    publicJwk,
    sign(payload, header = {}) {
      return new SignJWT(payload).setProtectedHeader({ alg, kid, ...header }).sign(privateKey);
    },
  };
}

export function jwksOf(...signers: TestSigner[]): { keys: JWK[] } {
  return { keys: signers.map((s) => s.publicJwk) };
}

export interface PodClaimsInput {
  namespace?: string;
  serviceAccount?: string;
  podName?: string;
  podUid?: string;
  nodeName?: string;
  issuer?: string;
  audience?: string | string[];
  /** seconds from now */
  expiresIn?: number;
  issuedAgo?: number;
}

/** A payload shaped like a projected token of Kubernetes 1.30+ (with node claims unless nodeName is ''). */
export function podClaims(input: PodClaimsInput = {}): JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  const namespace = input.namespace ?? 'default';
  const serviceAccount = input.serviceAccount ?? 'app';
  const iat = now - (input.issuedAgo ?? 0);
  return {
    aud: input.audience ?? [AUDIENCE],
    exp: now + (input.expiresIn ?? 3600),
    iat,
    nbf: iat,
    iss: input.issuer ?? TEST_ISSUER,
    jti: randomUUID(),
    sub: `system:serviceaccount:${namespace}:${serviceAccount}`,
    'kubernetes.io': {
      namespace,
      serviceaccount: { name: serviceAccount, uid: randomUUID() },
      pod: { name: input.podName ?? `${serviceAccount}-7d4b9c-x2x9k`, uid: input.podUid ?? randomUUID() },
      ...(input.nodeName !== '' && { node: { name: input.nodeName ?? 'node-1', uid: randomUUID() } }),
    },
  };
}

/** A compact JWS from raw parts, for tokens no honest signer makes (alg none, tampered). */
export function rawToken(header: unknown, payload: unknown, signature = ''): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${part(header)}.${part(payload)}.${signature}`;
}

/** Replaces the payload of a signed token, keeping its header and signature. */
export function tamperPayload(token: string, payload: unknown): string {
  const [header, , signature] = token.split('.');
  return `${header}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${signature}`;
}
