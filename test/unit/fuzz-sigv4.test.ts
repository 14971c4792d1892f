// Property-based tests (fast-check, fixed seed) of SigV4 verification, the
// first thing every signed API does with untrusted input: the Authorization
// header parser, whose fast path must read exactly what its general path
// reads, and the verifier, which must answer only the SigV4 error names for
// any header, path, query and body, accept what the signer signed (for any
// path, query and header value), and refuse any change of it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseAuthorization, signRequest, verifySigV4, type SignedRequest } from '../../src/lib/sigv4.js';
import { fuzzRuns, thrownCode } from '../helpers/fuzz.js';

const KEY = { accessKeyId: 'AKIAFUZZ', secretAccessKey: 'fuzz-secret' };
const lookup = (id: string) => (id === KEY.accessKeyId ? KEY : undefined);
const OPTIONS = { service: 'eks', region: 'us-east-1', lookup };
const SIGV4_CODES = ['MissingAuthenticationTokenException', 'UnrecognizedClientException', 'InvalidSignatureException', 'IncompleteSignatureException'];

const piece = fc.string({ unit: fc.constantFrom(...'abcAKIA019-_=/,; \t.'), minLength: 0, maxLength: 24 });
/** Headers in the SDKs' form, with odd pieces, and the same with other spacing, order and junk. */
const authorizationLike = fc.oneof(
  fc.tuple(piece, piece, piece, piece, piece, piece, piece).map(([key, date, region, service, headers, signature, sep]) => `AWS4-HMAC-SHA256 Credential=${key}/${date}/${region}/${service}/aws4_request,${sep}SignedHeaders=${headers},${sep}Signature=${signature}`),
  fc.tuple(fc.stringMatching(/^[A-Z0-9]{4,20}$/), fc.stringMatching(/^\d{8}$/), fc.stringMatching(/^[a-z0-9-]{1,15}$/), fc.stringMatching(/^[a-z0-9-]{1,10}$/), fc.stringMatching(/^[a-z0-9;-]{1,40}$/), fc.stringMatching(/^[0-9a-f]{1,64}$/)).map(
    ([key, date, region, service, headers, signature]) => `AWS4-HMAC-SHA256 Credential=${key}/${date}/${region}/${service}/aws4_request, SignedHeaders=${headers}, Signature=${signature}`,
  ),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ maxLength: 200 }).map((s) => `AWS4-HMAC-SHA256 ${s}`),
);

function asRequest(method: string, url: URL, headers: Record<string, string>, body: string): SignedRequest {
  return { method, path: url.pathname, query: url.searchParams, headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])), body: Buffer.from(body) };
}

describe('fuzz: SigV4', () => {
  it('parseAuthorization: a parse or IncompleteSignatureException; the fast path reads what the general path reads', () => {
    let fast = 0;
    fc.assert(
      fc.property(authorizationLike, (header) => {
        let parsed;
        try {
          parsed = parseAuthorization(header);
        } catch (error) {
          assert.equal(thrownCode(error), 'IncompleteSignatureException');
          return;
        }
        // A leading space never matches the SDK form: the same header, read the general way.
        const general = parseAuthorization(` ${header}`);
        assert.deepEqual(general, parsed);
        assert.equal(parsed.credential, `${parsed.accessKeyId}/${parsed.scope}`);
        assert.equal(parsed.scope, `${parsed.date}/${parsed.region}/${parsed.service}/aws4_request`);
        if (header.startsWith('AWS4-HMAC-SHA256 Credential=')) fast++;
      }),
      fuzzRuns(3000),
    );
    assert.ok(fast > 100, `the fast path was taken (${fast})`);
  });

  it('verifySigV4: only the SigV4 error names for any authorization, date, path, query and body', () => {
    fc.assert(
      fc.property(
        fc.oneof(authorizationLike, fc.stringMatching(/^[0-9a-f]{64}$/).map((sig) => `AWS4-HMAC-SHA256 Credential=AKIAFUZZ/20260101/us-east-1/eks/aws4_request, SignedHeaders=host;x-amz-date, Signature=${sig}`)),
        fc.oneof(fc.constant(new Date().toISOString().replace(/[-:]|\.\d{3}/g, '')), fc.string({ maxLength: 20 })),
        fc.string({ unit: 'binary', maxLength: 60 }).map((p) => `/${p}`),
        fc.string({ maxLength: 60 }),
        fc.uint8Array({ maxLength: 100 }),
        (authorization, amzDate, path, query, body) => {
          try {
            verifySigV4({ method: 'POST', path, query: new URLSearchParams(query), headers: { authorization, 'x-amz-date': amzDate, host: 'h' }, body: Buffer.from(body) }, OPTIONS);
            assert.fail('an unsigned request verified');
          } catch (error) {
            assert.ok(SIGV4_CODES.includes(thrownCode(error)), thrownCode(error));
          }
        },
      ),
      fuzzRuns(2000),
    );
  });

  it('what signRequest signs verifies, for any path, query and header value; any change to the body or signature is refused', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.webPath(),
        fc.webQueryParameters(),
        fc.string({ unit: 'grapheme-ascii', maxLength: 40 }),
        fc.string({ unit: 'binary', maxLength: 200 }),
        fc.nat(),
        async (path, query, headerValue, body, at) => {
          const url = new URL(`http://127.0.0.1:8080${path.startsWith('/') ? path : `/${path}`}${query ? `?${query}` : ''}`);
          const headers = await signRequest({ method: 'POST', url, body, headers: { 'content-type': 'application/json', 'x-fuzz': headerValue } }, { credentials: KEY, region: 'us-east-1', service: 'eks' });
          const request = asRequest('POST', url, headers, body);
          assert.equal(verifySigV4(request, OPTIONS).accessKeyId, KEY.accessKeyId);
          const bytes = Buffer.from(body);
          if (bytes.length > 0) {
            const i = at % bytes.length;
            bytes[i] = bytes[i]! ^ 0x01;
            assert.throws(() => verifySigV4({ ...request, body: bytes }, OPTIONS), (e: unknown) => thrownCode(e) === 'InvalidSignatureException');
          }
          const signature = /Signature=([0-9a-f]{64})$/.exec(headers.authorization!)![1]!;
          const j = at % 64;
          const flipped = signature.slice(0, j) + (signature[j] === '0' ? '1' : '0') + signature.slice(j + 1);
          const forged = { ...request, headers: { ...request.headers, authorization: headers.authorization!.replace(signature, flipped) } };
          assert.throws(() => verifySigV4(forged, OPTIONS), (e: unknown) => thrownCode(e) === 'InvalidSignatureException');
        },
      ),
      fuzzRuns(400),
    );
  });
});
