// Property-based tests (fast-check, fixed seed) of the service-account token
// parsers: the compact JWS form (decodeJws, decodePayloadUnverified), the
// claim rules (checkClaims), the agent's pre-check (readTokenExpiry) and the
// local verifier with a real key. None may throw anything but a WireError of
// its contract, and none may accept what the strict path refuses: a token
// changed in any one character never verifies, remembered or not.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { readTokenExpiry } from '../../src/agent/token.js';
import { checkClaims } from '../../src/auth/claims.js';
import { decodeJws, decodePayloadUnverified } from '../../src/auth/jws.js';
import { KeySet } from '../../src/auth/keys.js';
import { JwksTokenVerifier } from '../../src/auth/verifier.js';
import { WireError } from '../../src/lib/errors.js';
import { createLogger } from '../../src/lib/logger.js';
import { fuzzRuns, thrownCode } from '../helpers/fuzz.js';
import { jwksOf, podClaims, TEST_ISSUER, testSigner } from '../helpers/sa-tokens.js';

const b64 = (value: string | Uint8Array) => Buffer.from(value).toString('base64url');

/** Strings shaped like tokens, from plain noise to three base64url parts of arbitrary JSON. */
const tokenLike = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.array(fc.string({ unit: fc.constantFrom(...'abcXYZ019-_.+/=% '), maxLength: 40 }), { maxLength: 5 }).map((parts) => parts.join('.')),
  fc.tuple(fc.jsonValue(), fc.jsonValue(), fc.uint8Array({ maxLength: 80 })).map(([h, p, s]) => `${b64(JSON.stringify(h))}.${b64(JSON.stringify(p))}.${b64(s)}`),
  fc.tuple(fc.record({ alg: fc.constantFrom('RS256', 'ES256', 'none', 'HS256', 'PS512', 'EdDSA'), kid: fc.option(fc.string()), crit: fc.option(fc.array(fc.string())) }, { requiredKeys: ['alg'] }), fc.object(), fc.uint8Array({ minLength: 1, maxLength: 80 })).map(
    ([h, p, s]) => `${b64(JSON.stringify(h))}.${b64(JSON.stringify(p))}.${b64(s)}`,
  ),
);

/** Payloads near the real claim format: each field present, absent or of another type. */
const claimsLike = fc.record(
  {
    iss: fc.oneof(fc.constant(TEST_ISSUER), fc.string(), fc.integer()),
    aud: fc.oneof(fc.constant(['pods.eks.amazonaws.com']), fc.constant('pods.eks.amazonaws.com'), fc.array(fc.string()), fc.anything()),
    sub: fc.oneof(fc.constant('system:serviceaccount:default:app'), fc.string().map((s) => `system:serviceaccount:${s}`), fc.anything()),
    exp: fc.oneof(fc.integer({ min: 0, max: 2 ** 33 }), fc.double(), fc.string(), fc.constant(Math.floor(Date.now() / 1000) + 3600)),
    iat: fc.oneof(fc.integer({ min: 0, max: 2 ** 33 }), fc.double(), fc.constant(Math.floor(Date.now() / 1000))),
    nbf: fc.oneof(fc.integer({ min: 0, max: 2 ** 33 }), fc.anything()),
    'kubernetes.io': fc.oneof(
      fc.anything(),
      fc.record({
        namespace: fc.oneof(fc.constant('default'), fc.string()),
        serviceaccount: fc.oneof(fc.record({ name: fc.oneof(fc.constant('app'), fc.string()), uid: fc.anything() }), fc.anything()),
        pod: fc.oneof(fc.record({ name: fc.string(), uid: fc.string() }), fc.anything()),
        node: fc.option(fc.record({ name: fc.anything(), uid: fc.anything() })),
      }),
    ),
  },
  { requiredKeys: [] },
);

describe('fuzz: service-account token parsers', () => {
  it('decodeJws and decodePayloadUnverified: a result or InvalidTokenException, never anything else', () => {
    let accepted = 0;
    fc.assert(
      fc.property(tokenLike, (token) => {
        for (const parse of [decodeJws, decodePayloadUnverified]) {
          try {
            parse(token);
          } catch (error) {
            assert.equal(thrownCode(error), 'InvalidTokenException');
          }
        }
        try {
          const jws = decodeJws(token);
          // what it accepts is a compact JWS of an asymmetric alg with a canonical signature
          assert.equal(token.split('.').length, 3);
          assert.ok(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'].includes(jws.header.alg));
          assert.equal(b64(jws.signature), token.split('.')[2]);
          accepted++;
        } catch (error) {
          assert.ok(error instanceof WireError);
        }
      }),
      fuzzRuns(3000),
    );
    assert.ok(accepted > 50, `some inputs were well-formed (${accepted})`);
  });

  it('checkClaims: claims that satisfy every rule, or InvalidTokenException / ExpiredTokenException', () => {
    const now = Date.now() / 1000;
    const valid = podClaims();
    // a real payload with some fields replaced by odd values and some removed, or anything at all
    const payloads = fc.oneof(
      fc.tuple(claimsLike, fc.subarray(Object.keys(valid), { maxLength: 2 }), fc.subarray(Object.keys(valid), { maxLength: 1 })).map(([changes, changed, removed]) => {
        const payload: Record<string, unknown> = { ...valid };
        for (const key of changed) if (key in changes) payload[key] = (changes as Record<string, unknown>)[key];
        for (const key of removed) delete payload[key];
        return payload;
      }),
      fc.anything(),
    );
    let accepted = 0;
    fc.assert(
      fc.property(payloads, (payload) => {
        let claims;
        try {
          claims = checkClaims(payload, { issuer: TEST_ISSUER, now });
        } catch (error) {
          assert.ok(['InvalidTokenException', 'ExpiredTokenException'].includes(thrownCode(error)), thrownCode(error));
          return;
        }
        const p = payload as Record<string, unknown>;
        assert.equal(p.iss, TEST_ISSUER);
        assert.equal(p.sub, `system:serviceaccount:${claims.namespace}:${claims.serviceAccount}`);
        assert.ok(typeof p.exp === 'number' && typeof p.iat === 'number' && p.exp - p.iat <= 48 * 3600);
        assert.ok(now <= (p.exp as number) + 60);
        assert.ok(claims.podName.length > 0 && claims.podUid.length > 0);
        accepted++;
      }),
      fuzzRuns(3000),
    );
    assert.ok(accepted > 20, `some payloads passed every rule (${accepted})`);
  });

  it("the agent's readTokenExpiry: an expiry or a 400 WireError, never a crash", () => {
    let accepted = 0;
    fc.assert(
      fc.property(tokenLike, (token) => {
        try {
          const expiry = readTokenExpiry(token, Date.now());
          assert.ok(expiry > Date.now());
          accepted++;
        } catch (error) {
          assert.ok(['InvalidTokenException', 'InvalidParameterException', 'ExpiredTokenException'].includes(thrownCode(error)), thrownCode(error));
        }
      }),
      fuzzRuns(3000),
    );
    assert.ok(accepted > 100, `some tokens passed the pre-check (${accepted})`);
  });

  it('a signed token changed in any one character never verifies, whether the verifier remembers the original or not', async () => {
    const signer = await testSigner('ES256');
    const keys = new KeySet({ fetchJwks: async () => jwksOf(signer), describe: 'fuzz', logger: createLogger({ level: 'silent' }) });
    const verifier = new JwksTokenVerifier({ keys, issuer: TEST_ISSUER });
    const token = await signer.sign(podClaims());
    // seen twice: the second verification remembers its claims
    await verifier.verify(token);
    await verifier.verify(token);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ';
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: token.length - 1 }), fc.constantFrom(...alphabet), async (at, replacement) => {
        fc.pre(token[at] !== replacement);
        const changed = token.slice(0, at) + replacement + token.slice(at + 1);
        await assert.rejects(verifier.verify(changed), (error: unknown) => thrownCode(error) === 'InvalidTokenException');
      }),
      fuzzRuns(1500),
    );
    assert.equal((await verifier.verify(token)).serviceAccount, 'app', 'the original still verifies');
  });
});
