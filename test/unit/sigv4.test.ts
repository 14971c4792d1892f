import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WireError } from '../../src/lib/errors.js';
import { parseAmzDate, parseAuthorization, signRequest, verifySigV4, type SignedRequest } from '../../src/lib/sigv4.js';

const KEY = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };

async function signed(body = '{"a":1}', service = 'eks', now = new Date()): Promise<SignedRequest> {
  const url = new URL('http://127.0.0.1:8080/clusters/demo/pod-identity-associations?maxResults=5&namespace=a%20b');
  const headers = await signRequest({ method: 'POST', url, body, headers: { 'content-type': 'application/json' } }, { credentials: KEY, region: 'us-east-1', service, now });
  return { method: 'POST', path: url.pathname, query: url.searchParams, headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])), body: Buffer.from(body) };
}

const lookup = (id: string) => (id === KEY.accessKeyId ? KEY : undefined);

async function failsWith(promise: Promise<unknown>, code: string) {
  await assert.rejects(promise, (e: unknown) => e instanceof WireError && e.code === code && e.status === 403);
}

test('a request signed by the SDK signer verifies', async () => {
  const caller = await verifySigV4(await signed(), { service: 'eks', lookup });
  assert.equal(caller.accessKeyId, KEY.accessKeyId);
  assert.equal(caller.region, 'us-east-1');
});

test('tampering, unknown keys, wrong service and skew are refused with the SDK error names', async () => {
  const request = await signed();
  await failsWith(verifySigV4({ ...request, body: Buffer.from('{"a":2}') }, { service: 'eks', lookup }), 'InvalidSignatureException');
  await failsWith(verifySigV4({ ...request, path: '/clusters/other/pod-identity-associations' }, { service: 'eks', lookup }), 'InvalidSignatureException');
  await failsWith(verifySigV4(request, { service: 'eks', lookup: () => undefined }), 'UnrecognizedClientException');
  await failsWith(verifySigV4(await signed('{}', 'eks-auth'), { service: 'eks', lookup }), 'InvalidSignatureException');
  await failsWith(verifySigV4(await signed('{}', 'eks', new Date(Date.now() - 6 * 60_000)), { service: 'eks', lookup }), 'InvalidSignatureException');
  const { authorization: _, ...unsigned } = request.headers;
  await failsWith(verifySigV4({ ...request, headers: unsigned }, { service: 'eks', lookup }), 'MissingAuthenticationTokenException');
  // A lying payload hash header does not help: the real body hash is used.
  await failsWith(verifySigV4({ ...request, body: Buffer.from('{"evil":1}'), headers: { ...request.headers, 'x-amz-content-sha256': String(request.headers['x-amz-content-sha256']) } }, { service: 'eks', lookup }), 'InvalidSignatureException');
});

test('authorization header parsing', () => {
  const parsed = parseAuthorization('AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/eks-auth/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc');
  assert.deepEqual(parsed, { accessKeyId: 'AKID', date: '20260101', region: 'eu-west-1', service: 'eks-auth', signedHeaders: ['host', 'x-amz-date'], signature: 'abc' });
  assert.throws(() => parseAuthorization('Bearer x'), /AWS4-HMAC-SHA256/);
  assert.throws(() => parseAuthorization('AWS4-HMAC-SHA256 Credential=AKID/2026/aws4_request, SignedHeaders=host, Signature=a'), /Credential must be/);
  assert.equal(parseAmzDate('20261126T190000Z')?.toISOString(), '2026-11-26T19:00:00.000Z');
  assert.equal(parseAmzDate('2026-11-26'), undefined);
});
