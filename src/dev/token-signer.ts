// The development token signer of `pod-identity dev`: when no real cluster is
// configured, it plays the cluster's service-account issuer. It keeps one RSA
// key in the dev state directory, publishes its JWKS for the server to verify
// against, and mints pod-bound tokens in exactly the claim format of a
// projected service-account token (DESIGN §3.5).
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';

export const DEV_ISSUER = 'https://pod-identity.dev.local';
export const POD_IDENTITY_AUDIENCE = 'pods.eks.amazonaws.com';

export interface DevSigner {
  /** path of the public JWKS file the server verifies against */
  jwksFile: string;
  mint(subject: { namespace: string; serviceAccount: string; podName?: string; nodeName?: string; expirationSeconds?: number }): Promise<string>;
}

/** Loads the signing key from `stateDir`, making one on first use. */
export async function openDevSigner(stateDir: string): Promise<DevSigner> {
  mkdirSync(stateDir, { recursive: true });
  const keyFile = join(stateDir, 'dev-signing-key.json');
  const jwksFile = join(stateDir, 'dev-jwks.json');
  let privateJwk: JWK;
  if (existsSync(keyFile)) {
    privateJwk = JSON.parse(readFileSync(keyFile, 'utf8')) as JWK;
  } else {
    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    privateJwk = { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: 'RS256', use: 'sig' };
    writeFileSync(keyFile, JSON.stringify(privateJwk), { mode: 0o600 });
    chmodSync(keyFile, 0o600);
  }
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk } = privateJwk;
  writeFileSync(jwksFile, JSON.stringify({ keys: [publicJwk] }, null, 2));
  const key = await importJWK(privateJwk, 'RS256');

  return {
    jwksFile,
    async mint({ namespace, serviceAccount, podName, nodeName = 'dev-node', expirationSeconds = 86400 }) {
      const now = Math.floor(Date.now() / 1000);
      const pod = podName ?? `${serviceAccount}-${randomUUID().slice(0, 5)}`;
      return new SignJWT({
        'kubernetes.io': {
          namespace,
          serviceaccount: { name: serviceAccount, uid: randomUUID() },
          pod: { name: pod, uid: randomUUID() },
          node: { name: nodeName, uid: randomUUID() },
        },
      })
        .setProtectedHeader({ alg: 'RS256', kid: privateJwk.kid!, typ: 'JWT' })
        .setIssuer(DEV_ISSUER)
        .setSubject(`system:serviceaccount:${namespace}:${serviceAccount}`)
        .setAudience([POD_IDENTITY_AUDIENCE])
        .setIssuedAt(now)
        .setNotBefore(now)
        .setExpirationTime(now + expirationSeconds)
        .sign(key);
    },
  };
}
