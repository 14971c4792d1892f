import assert from 'node:assert/strict';
import { createPublicKey, createSecretKey, generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { decodeJws, verifyJwsSignature } from '../../src/auth/jws.js';
import { WireError } from '../../src/lib/errors.js';
import { podClaims, rawToken, tamperPayload, testSigner } from '../helpers/sa-tokens.js';

function invalid(fn: () => unknown, text: RegExp): void {
  assert.throws(fn, (error: unknown) => error instanceof WireError && error.code === 'InvalidTokenException' && text.test(error.message));
}

describe('JWS decoding and node:crypto verification', () => {
  for (const alg of ['RS256', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA']) {
    it(`verifies ${alg} and refuses another key and a tampered payload`, async () => {
      const signer = await testSigner(alg);
      const other = await testSigner(alg);
      const token = await signer.sign(podClaims());
      const key = createPublicKey({ key: signer.publicJwk as never, format: 'jwk' });
      const otherKey = createPublicKey({ key: other.publicJwk as never, format: 'jwk' });
      const jws = decodeJws(token);
      assert.equal(jws.header.alg, alg);
      assert.equal(jws.header.kid, signer.kid);
      assert.equal(verifyJwsSignature(jws, key), true);
      assert.equal(verifyJwsSignature(jws, otherKey), false);
      assert.equal(verifyJwsSignature(decodeJws(tamperPayload(token, { ...podClaims(), sub: 'system:serviceaccount:kube-system:admin' })), key), false);
    });
  }

  it('refuses a key of the wrong type for the alg (RSA key, ES256 header)', async () => {
    const rsa = await testSigner('RS256');
    const es = await testSigner('ES256');
    const token = await es.sign(podClaims());
    assert.equal(verifyJwsSignature(decodeJws(token), createPublicKey({ key: rsa.publicJwk as never, format: 'jwk' })), false);
  });

  it('refuses alg none, HMAC and unknown algs, crit headers and non-JWTs', () => {
    invalid(() => decodeJws(rawToken({ alg: 'none' }, podClaims())), /alg "none"/);
    invalid(() => decodeJws(rawToken({ alg: 'none' }, podClaims(), 'c2ln')), /alg "none"/);
    invalid(() => decodeJws(rawToken({ alg: 'HS256' }, podClaims(), 'c2ln')), /not an allowed asymmetric/);
    invalid(() => decodeJws(rawToken({ typ: 'JWT' }, podClaims(), 'c2ln')), /missing/);
    invalid(() => decodeJws(rawToken({ alg: 'RS256', crit: ['exp'] }, podClaims(), 'c2ln')), /critical/);
    invalid(() => decodeJws(rawToken({ alg: 'RS256' }, podClaims())), /signature is empty/);
    invalid(() => decodeJws('not-a-jwt'), /not a JWT/);
    invalid(() => decodeJws('a.b.c.d'), /not a JWT/);
    const header = Buffer.from(JSON.stringify({ alg: 'RS256' })).toString('base64url');
    invalid(() => decodeJws(`${header}.bm90IGpzb24.c2ln`), /payload is not base64url-encoded JSON/);
    invalid(() => decodeJws('bm90IGpzb24.e30.c2ln'), /header is not base64url-encoded JSON/);
    // The signature part in base64 (+ and /) or with stray characters is not this signature's spelling.
    invalid(() => decodeJws(`${header}.e30.c2+n`), /signature is not base64url/);
    invalid(() => decodeJws(`${header}.e30.c2ln!`), /signature is not base64url/);
  });

  it('an HMAC secret can never verify a token', async () => {
    const signer = await testSigner('RS256');
    const jws = decodeJws(await signer.sign(podClaims()));
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    assert.equal(verifyJwsSignature(jws, createSecretKey(Buffer.alloc(32))), false);
    assert.equal(verifyJwsSignature(jws, publicKey), false);
  });
});
