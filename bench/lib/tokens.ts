// Projected service-account tokens for the AssumeRoleForPodIdentity
// benchmarks: RS256, in the exact format of the kube-apiserver's, for pods of
// the service accounts of namespace `bench`.
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { writeFileSync } from 'node:fs';

export const BENCH_ISSUER = 'https://kubernetes.default.svc.cluster.local';
export const BENCH_SERVICE_ACCOUNTS = 50;

/** RS256 signing with node:crypto (on its thread pool, so both cores mint); `jwks` is the cluster's key set. */
export function tokenMinter() {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomUUID();
  const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid })).toString('base64url');
  return {
    jwks: { keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }] },
    /** a token of pod number `pod`, of service account sa-<pod % 50> */
    mint(pod: number): Promise<string> {
      const now = Math.floor(Date.now() / 1000);
      const sa = `sa-${pod % BENCH_SERVICE_ACCOUNTS}`;
      const payload = {
        aud: ['pods.eks.amazonaws.com'],
        exp: now + 86400,
        iat: now,
        nbf: now,
        iss: BENCH_ISSUER,
        jti: randomUUID(),
        sub: `system:serviceaccount:bench:${sa}`,
        'kubernetes.io': {
          namespace: 'bench',
          node: { name: `node-${pod % 20}`, uid: randomUUID() },
          pod: { name: `${sa}-pod-${pod}`, uid: randomUUID() },
          serviceaccount: { name: sa, uid: randomUUID() },
        },
      };
      const input = `${header}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
      return new Promise((resolve, reject) => {
        sign('sha256', Buffer.from(input), privateKey, (error, signature) => (error ? reject(error) : resolve(`${input}.${signature.toString('base64url')}`)));
      });
    },
  };
}

/** A JWKS file with one key nobody signs with, for a bench that sends no tokens (the server refuses a JWKS without a usable key). */
export function writeUnusedJwks(path: string): string {
  const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
  writeFileSync(path, JSON.stringify({ keys: [{ ...jwk, kid: 'unused', use: 'sig', alg: 'ES256' }] }));
  return path;
}
