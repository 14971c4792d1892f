import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { importJwks, KeySet } from '../../src/auth/keys.js';
import { JwksTokenVerifier, withRevocation, type TokenVerifier } from '../../src/auth/verifier.js';
import { invalidToken } from '../../src/auth/claims.js';
import { WireError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/logger.js';
import { jwksOf, podClaims, rawToken, tamperPayload, TEST_ISSUER, testSigner } from '../helpers/sa-tokens.js';

function rejectsWith(promise: Promise<unknown>, code: string, text?: RegExp): Promise<void> {
  return assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof WireError, String(error));
    assert.equal(error.code, code);
    if (text) assert.match(error.message, text);
    return true;
  });
}

/** A JWKS "server" the test controls: counts fetches, can fail, can rotate. */
function jwksSource(initial: unknown) {
  let doc = initial;
  let fail = false;
  const state = {
    fetches: 0,
    set(next: unknown) {
      doc = next;
    },
    failing(value: boolean) {
      fail = value;
    },
    async fetch() {
      state.fetches++;
      await new Promise((r) => setTimeout(r, 5));
      if (fail) throw new Error('unreachable');
      return doc;
    },
  };
  return state;
}

describe('importJwks', () => {
  it('imports public signing keys and skips private, symmetric, encryption and weak keys', async () => {
    const rs = await testSigner('RS256', 'rs');
    const es = await testSigner('ES256', 'es');
    const { keys, skipped } = await importJwks({
      keys: [rs.publicJwk, es.publicJwk, { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' }, { ...rs.publicJwk, kid: 'enc', use: 'enc' }, { kty: 'RSA', kid: 'small', n: 'AQAB', e: 'AQAB' }],
    });
    assert.deepEqual(
      keys.map((k) => k.kid),
      ['rs', 'es'],
    );
    assert.equal(skipped.length, 3);
    await assert.rejects(importJwks({ nope: [] }), /not a JWKS/);
  });
});

/** Uses a token until the verifier answers it from its cache (the same claims object again). */
async function useUntilCached(verifier: TokenVerifier, token: string): Promise<void> {
  await verifier.verify(token);
  const kept = await verifier.verify(token);
  assert.equal(await verifier.verify(token), kept, 'the token is answered from the cache');
}

describe('JwksTokenVerifier', () => {
  const logger = silentLogger();

  it('verifies, and from a token\'s second use answers it from the cache without fetching or re-verifying', async () => {
    const signer = await testSigner('RS256');
    const source = jwksSource(jwksOf(signer));
    const verifier = new JwksTokenVerifier({ keys: new KeySet({ fetchJwks: source.fetch, describe: 'test', logger }), issuer: TEST_ISSUER });
    const token = await signer.sign(podClaims({ podName: 'p-1' }));
    const first = await verifier.verify(token);
    const second = await verifier.verify(token);
    assert.equal(first.podName, 'p-1');
    assert.notEqual(second, first, 'the first use leaves only the hash: the second is verified again');
    assert.deepEqual(second, first);
    assert.equal(await verifier.verify(token), second, 'the second verification is remembered');
    assert.equal(await verifier.verify(token), second);
    assert.equal(source.fetches, 1);
  });

  it('answers from the cache only the very token it verified, not another one ending the same way', async () => {
    const signer = await testSigner('RS256');
    const verifier = new JwksTokenVerifier({ keys: new KeySet({ fetchJwks: async () => jwksOf(signer), describe: 'test', logger }), issuer: TEST_ISSUER });
    const token = await signer.sign(podClaims({ podName: 'p-1' }));
    await useUntilCached(verifier, token);
    // Same signature (so the same place in the cache), another payload: verified, and refused.
    const forged = tamperPayload(token, { ...podClaims({ podName: 'p-1' }), sub: 'system:serviceaccount:kube-system:admin' });
    assert.equal(forged.slice(-12), token.slice(-12));
    await rejectsWith(verifier.verify(forged), 'InvalidTokenException', /signature/);
    assert.equal((await verifier.verify(token)).podName, 'p-1');
  });

  it('covers the edge cases: other key, tampered, alg none, wrong audience, issuer, expired, not pod-bound, sub mismatch', async () => {
    const signer = await testSigner('RS256');
    const stranger = await testSigner('RS256', signer.kid);
    const unknownKid = await testSigner('RS256');
    const verifier = new JwksTokenVerifier({ keys: new KeySet({ fetchJwks: async () => jwksOf(signer), describe: 'test', logger, cooldownMs: 0 }), issuer: TEST_ISSUER });
    const good = await signer.sign(podClaims());
    await verifier.verify(good);

    await rejectsWith(verifier.verify(await stranger.sign(podClaims())), 'InvalidTokenException', /signature/);
    await rejectsWith(verifier.verify(await unknownKid.sign(podClaims())), 'InvalidTokenException', /kid/);
    await rejectsWith(verifier.verify(tamperPayload(good, { ...podClaims(), sub: 'system:serviceaccount:kube-system:admin' })), 'InvalidTokenException', /signature/);
    await rejectsWith(verifier.verify(rawToken({ alg: 'none', kid: signer.kid }, podClaims())), 'InvalidTokenException', /alg "none"/);
    await rejectsWith(verifier.verify(await signer.sign(podClaims({ audience: ['sts.amazonaws.com'] }))), 'InvalidTokenException', /audience/);
    await rejectsWith(verifier.verify(await signer.sign(podClaims({ issuer: 'https://other-cluster' }))), 'InvalidTokenException', /issuer/);
    await rejectsWith(verifier.verify(await signer.sign(podClaims({ expiresIn: -3600, issuedAgo: 7200 }))), 'ExpiredTokenException');
    const unbound = podClaims();
    delete (unbound['kubernetes.io'] as Record<string, unknown>).pod;
    await rejectsWith(verifier.verify(await signer.sign(unbound)), 'InvalidTokenException', /not bound to a pod/);
    await rejectsWith(verifier.verify(await signer.sign({ ...podClaims({ namespace: 'a' }), sub: 'system:serviceaccount:b:app' })), 'InvalidTokenException', /does not match/);
  });

  it('messages never echo the token', async () => {
    const signer = await testSigner('ES256');
    const verifier = new JwksTokenVerifier({ keys: new KeySet({ fetchJwks: async () => jwksOf(signer), describe: 'test', logger }) });
    const token = await signer.sign(podClaims({ audience: 'nope' }));
    await assert.rejects(verifier.verify(token), (error: Error) => !error.message.includes(token.split('.')[1]!) && !error.message.includes(token.split('.')[2]!));
  });

  it('follows key rotation: an unknown kid refetches, once, and not again within the cooldown', async () => {
    const oldKey = await testSigner('RS256');
    const newKey = await testSigner('RS256');
    const source = jwksSource(jwksOf(oldKey));
    let clock = 1_000_000;
    const keys = new KeySet({ fetchJwks: source.fetch, describe: 'test', logger, cooldownMs: 10_000, now: () => clock });
    const verifier = new JwksTokenVerifier({ keys });
    await verifier.verify(await oldKey.sign(podClaims()));
    assert.equal(source.fetches, 1);

    // Rotation: the new key is published; tokens signed by it cause one refetch.
    source.set(jwksOf(oldKey, newKey));
    clock += 11_000;
    const rotated = await newKey.sign(podClaims());
    await Promise.all([verifier.verify(rotated), verifier.verify(await newKey.sign(podClaims())), verifier.verify(await newKey.sign(podClaims()))]);
    assert.equal(source.fetches, 2, 'concurrent unknown kids share one fetch');

    // A flood of forged kids within the cooldown fetches nothing.
    const forger = await testSigner('RS256');
    for (let i = 0; i < 20; i++) await rejectsWith(verifier.verify(await forger.sign(podClaims())), 'InvalidTokenException', /kid/);
    assert.equal(source.fetches, 2);
    clock += 11_000;
    await rejectsWith(verifier.verify(await forger.sign(podClaims())), 'InvalidTokenException', /kid/);
    assert.equal(source.fetches, 3);
  });

  it('a key dropped from the JWKS revokes its cached tokens', async () => {
    const oldKey = await testSigner('RS256');
    const newKey = await testSigner('RS256');
    const source = jwksSource(jwksOf(oldKey));
    let clock = 1_000_000;
    const keys = new KeySet({ fetchJwks: source.fetch, describe: 'test', logger, cooldownMs: 1_000, refreshMs: 60_000, now: () => clock });
    const verifier = new JwksTokenVerifier({ keys });
    const token = await oldKey.sign(podClaims());
    await useUntilCached(verifier, token);
    source.set(jwksOf(newKey));
    clock += 2_000;
    await verifier.verify(await newKey.sign(podClaims())); // unknown kid → refetch drops oldKey
    await rejectsWith(verifier.verify(token), 'InvalidTokenException', /kid/);
  });

  it('no keys and no way to fetch them is ServiceUnavailableException; stale keys keep working', async () => {
    const signer = await testSigner('RS256');
    const source = jwksSource(jwksOf(signer));
    source.failing(true);
    let clock = 1_000_000;
    const keys = new KeySet({ fetchJwks: source.fetch, describe: 'test', logger, cooldownMs: 1_000, refreshMs: 5_000, now: () => clock });
    const verifier = new JwksTokenVerifier({ keys });
    await rejectsWith(verifier.verify(await signer.sign(podClaims())), 'ServiceUnavailableException');
    source.failing(false);
    clock += 2_000;
    await verifier.verify(await signer.sign(podClaims()));
    source.failing(true);
    clock += 10_000; // stale: background refresh fails, the old keys stay
    await verifier.verify(await signer.sign(podClaims()));
  });

  it('cached tokens still expire', async () => {
    const signer = await testSigner('RS256');
    let clock = Date.now();
    const verifier = new JwksTokenVerifier({ keys: new KeySet({ fetchJwks: async () => jwksOf(signer), describe: 'test', logger }), now: () => clock });
    const token = await signer.sign(podClaims({ expiresIn: 600 }));
    await useUntilCached(verifier, token);
    clock += 700_000;
    await rejectsWith(verifier.verify(token), 'ExpiredTokenException');
  });

  it('withRevocation applies to cached tokens too', async () => {
    const signer = await testSigner('RS256');
    const dead = new Set<string>();
    const verifier = withRevocation(new JwksTokenVerifier({ keys: new KeySet({ fetchJwks: async () => jwksOf(signer), describe: 'test', logger }) }), async (claims) => {
      if (dead.has(claims.podUid)) throw invalidToken('pod_gone', "the token's pod no longer exists");
    });
    const token = await signer.sign(podClaims({ podUid: 'pod-uid-1' }));
    await useUntilCached(verifier, token);
    dead.add('pod-uid-1');
    await rejectsWith(verifier.verify(token), 'InvalidTokenException', /no longer exists/);
  });
});
