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

async function failsWith(verify: () => Promise<unknown>, code: string) {
  await assert.rejects(verify, (e: unknown) => e instanceof WireError && e.code === code && e.status === 403);
}

test('a request signed by signRequest verifies', async () => {
  const caller = verifySigV4(await signed(), { service: 'eks', region: 'us-east-1', lookup });
  assert.equal(caller.accessKeyId, KEY.accessKeyId);
  assert.equal(caller.region, 'us-east-1');
});

test('tampering, unknown keys, wrong service and skew are refused with the SDK error names', async () => {
  const request = await signed();
  await failsWith(async () => verifySigV4({ ...request, body: Buffer.from('{"a":2}') }, { service: 'eks', region: 'us-east-1', lookup }), 'InvalidSignatureException');
  await failsWith(async () => verifySigV4({ ...request, path: '/clusters/other/pod-identity-associations' }, { service: 'eks', region: 'us-east-1', lookup }), 'InvalidSignatureException');
  await failsWith(async () => verifySigV4(request, { service: 'eks', region: 'us-east-1', lookup: () => undefined }), 'UnrecognizedClientException');
  await failsWith(async () => verifySigV4(await signed('{}', 'eks-auth'), { service: 'eks', region: 'us-east-1', lookup }), 'InvalidSignatureException');
  await failsWith(async () => verifySigV4(await signed('{}', 'eks', new Date(Date.now() - 6 * 60_000)), { service: 'eks', region: 'us-east-1', lookup }), 'InvalidSignatureException');
  const { authorization: _, ...unsigned } = request.headers;
  await failsWith(async () => verifySigV4({ ...request, headers: unsigned }, { service: 'eks', region: 'us-east-1', lookup }), 'MissingAuthenticationTokenException');
  // A lying payload hash header does not help: the real body hash is used.
  await failsWith(async () => verifySigV4({ ...request, body: Buffer.from('{"evil":1}'), headers: { ...request.headers, 'x-amz-content-sha256': String(request.headers['x-amz-content-sha256']) } }, { service: 'eks', region: 'us-east-1', lookup }), 'InvalidSignatureException');
});

test('authorization header parsing', () => {
  const parsed = parseAuthorization('AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/eks-auth/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc');
  assert.deepEqual(parsed, {
    credential: 'AKID/20260101/eu-west-1/eks-auth/aws4_request',
    accessKeyId: 'AKID',
    date: '20260101',
    region: 'eu-west-1',
    service: 'eks-auth',
    scope: '20260101/eu-west-1/eks-auth/aws4_request',
    signedHeaders: ['host', 'x-amz-date'],
    signature: 'abc',
  });
  // Other spacing and order (not what the SDKs send) parse the same way.
  assert.deepEqual(parseAuthorization(' AWS4-HMAC-SHA256 Signature=abc,SignedHeaders=host;x-amz-date,  Credential=AKID/20260101/eu-west-1/eks-auth/aws4_request '), parsed);
  assert.throws(() => parseAuthorization('Bearer x'), /AWS4-HMAC-SHA256/);
  assert.throws(() => parseAuthorization('AWS4-HMAC-SHA256 Credential=AKID/2026/aws4_request, SignedHeaders=host, Signature=a'), /Credential must be/);
  assert.equal(parseAmzDate('20261126T190000Z'), Date.parse('2026-11-26T19:00:00.000Z'));
  assert.equal(parseAmzDate('2026-11-26'), undefined);
});

test('the AWS documentation example (IAM ListUsers, 2015-08-30) verifies, and a changed secret does not', async () => {
  // From "Create a signed AWS API request" in the IAM user guide: the published signature.
  const request: SignedRequest = {
    method: 'GET',
    path: '/',
    query: new URLSearchParams('Action=ListUsers&Version=2010-05-08'),
    headers: {
      host: 'iam.amazonaws.com',
      'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
      'x-amz-date': '20150830T123600Z',
      authorization:
        'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7',
    },
    body: Buffer.alloc(0),
  };
  const now = () => Date.UTC(2015, 7, 30, 12, 36);
  const caller = verifySigV4(request, { service: 'iam', region: 'us-east-1', lookup, now });
  assert.equal(caller.region, 'us-east-1');
  // The signing key is cached per key and day; a rotated secret must not reuse it.
  await failsWith(async () => verifySigV4(request, { service: 'iam', region: 'us-east-1', lookup: () => ({ ...KEY, secretAccessKey: 'rotated' }), now }), 'InvalidSignatureException');
  assert.equal(verifySigV4(request, { service: 'iam', region: 'us-east-1', lookup, now }).accessKeyId, KEY.accessKeyId);
  const badHex = String(request.headers.authorization).replace(/Signature=.*/, `Signature=${'z'.repeat(64)}`);
  await failsWith(async () => verifySigV4({ ...request, headers: { ...request.headers, authorization: badHex } }, { service: 'iam', region: 'us-east-1', lookup, now }), 'InvalidSignatureException');
});

test('signRequest gives exactly the headers the SDK signer gives', async () => {
  const { SignatureV4 } = await import('@smithy/signature-v4');
  const { HttpRequest } = await import('@smithy/protocol-http');
  const { NodeSha256 } = await import('../../src/lib/sigv4.js');
  const now = new Date('2026-11-26T23:30:05.123Z');
  const cases: { method: string; url: URL; body: string; headers: Record<string, string>; credentials: typeof KEY & { sessionToken?: string } }[] = [
    { method: 'POST', url: new URL('http://127.0.0.1:8080/clusters/demo/assume-role-for-pod-identity'), body: '{"token":"x"}', headers: { 'content-type': 'application/json' }, credentials: KEY },
    { method: 'GET', url: new URL('https://eks.us-east-1.amazonaws.com/clusters/a%20b/pod-identity-associations?maxResults=5&namespace=x%2Fy'), body: '', headers: {}, credentials: { ...KEY, sessionToken: 'session/token+=' } },
  ];
  for (const c of cases) {
    const ours = await signRequest({ method: c.method, url: c.url, headers: c.headers, body: c.body }, { credentials: c.credentials, region: 'eu-west-1', service: 'eks-auth', now });
    const query: Record<string, string> = {};
    c.url.searchParams.forEach((v, k) => (query[k] = v));
    const reference = await new SignatureV4({ credentials: c.credentials, region: 'eu-west-1', service: 'eks-auth', sha256: NodeSha256 }).sign(
      new HttpRequest({ method: c.method, protocol: c.url.protocol, hostname: c.url.hostname, path: c.url.pathname, query, headers: { host: c.url.host, ...c.headers }, body: c.body }),
      { signingDate: now },
    );
    assert.deepEqual(ours, reference.headers);
  }
});

test('requests signed by the SDK signer verify, whatever their path, query and header spacing', async () => {
  const { SignatureV4 } = await import('@smithy/signature-v4');
  const { HttpRequest } = await import('@smithy/protocol-http');
  const { NodeSha256 } = await import('../../src/lib/sigv4.js');
  const cases: { path: string; query: [string, string][]; headers: Record<string, string> }[] = [
    { path: '/clusters/a%20b/pod-identity-associations', query: [], headers: {} },
    { path: '/a/./b/../c//d/', query: [['k', '2'], ['k', '1'], ['a b', 'x/y+z'], ['X-Amz-Signature', 'ignored']], headers: {} },
    { path: '/', query: [['Action', 'GetCallerIdentity']], headers: { 'x-custom': '  a   b\t c ', 'x-lines': 'one\r\ntwo' } },
    // too long to be remembered
    { path: `/clusters/${'x'.repeat(600)}/pod-identity-associations`, query: [], headers: {} },
  ];
  for (const c of cases) {
    const query = new URLSearchParams(c.query);
    const values: Record<string, string | string[]> = {};
    for (const name of new Set(query.keys())) values[name] = query.getAll(name).length === 1 ? query.get(name)! : query.getAll(name);
    const body = '{"x":1}';
    // Twice: the second time the path and query lines come from the verifier's memo (unless too long).
    for (let round = 0; round < 2; round++) {
      const signedRequest = await new SignatureV4({ credentials: KEY, region: 'us-east-1', service: 'eks', sha256: NodeSha256 }).sign(
        new HttpRequest({ method: 'POST', protocol: 'http:', hostname: '127.0.0.1', port: 8080, path: c.path, query: values, headers: { host: '127.0.0.1:8080', 'content-type': 'application/json', ...c.headers }, body }),
      );
      const headers = Object.fromEntries(Object.entries(signedRequest.headers).map(([k, v]) => [k.toLowerCase(), v]));
      const caller = verifySigV4({ method: 'POST', path: c.path, query, headers, body: Buffer.from(body) }, { service: 'eks', region: 'us-east-1', lookup });
      assert.equal(caller.accessKeyId, KEY.accessKeyId, c.path);
      await failsWith(async () => verifySigV4({ method: 'POST', path: `${c.path}x`, query, headers, body: Buffer.from(body) }, { service: 'eks', region: 'us-east-1', lookup }), 'InvalidSignatureException');
    }
  }
});

test('the credential scope must name the server region and the endpoint service, checked before the signature', async () => {
  const url = new URL('http://127.0.0.1:8080/clusters/demo/assume-role-for-pod-identity');
  const request = async (region: string, service: string): Promise<SignedRequest> => {
    const headers = await signRequest({ method: 'POST', url, body: '{}' }, { credentials: KEY, region, service });
    return { method: 'POST', path: url.pathname, query: url.searchParams, headers, body: Buffer.from('{}') };
  };
  const refused = async (r: SignedRequest, message: string) =>
    assert.throws(() => verifySigV4(r, { service: 'eks-auth', region: 'us-east-1', lookup }), (e: unknown) => e instanceof WireError && e.code === 'InvalidSignatureException' && e.status === 403 && e.message === message);
  await refused(await request('eu-west-1', 'eks-auth'), 'Credential should be scoped to a valid region.');
  await refused(await request('x', 'eks-auth'), 'Credential should be scoped to a valid region.');
  await refused(await request('us-east-1', 'eks'), "Credential should be scoped to correct service: 'eks-auth'.");
  assert.equal(verifySigV4(await request('us-east-1', 'eks-auth'), { service: 'eks-auth', region: 'us-east-1', lookup }).region, 'us-east-1');
});
