// The agent's pure pieces: the token pre-check, the response encoding the
// SDKs parse, the token bucket, the Host and bind-host rules, and reading
// EKS Auth answers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createHash } from 'node:crypto';
import { PresentedToken } from '../../src/agent/credentials.js';
import { encodeCredentials, formatExpiration } from '../../src/api/credentials.js';
import { allowedHostHeaders, normalizeBindHosts } from '../../src/agent/server.js';
import { readTokenExpiry } from '../../src/agent/token.js';
import { TokenBucket } from '../../src/lib/token-bucket.js';
import { decodeAssumeRoleResponse, decodeErrorResponse } from '../../src/api/eks-auth.js';
import type { WireError } from '../../src/lib/errors.js';

const NOW = Date.UTC(2025, 5, 1, 12, 0, 0);

function jwt(claims: unknown): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'RS256' })}.${part(claims)}.sig`;
}

test('readTokenExpiry returns exp in ms, Infinity without exp', () => {
  assert.equal(readTokenExpiry(jwt({ exp: NOW / 1000 + 60 }), NOW), NOW + 60_000);
  assert.equal(readTokenExpiry(jwt({ sub: 'x' }), NOW), Infinity);
  assert.equal(readTokenExpiry(jwt({ nbf: NOW / 1000 + 30, exp: NOW / 1000 + 60 }), NOW), NOW + 60_000, 'small nbf skew is tolerated');
});

test('readTokenExpiry refuses what the server would refuse, with 400', () => {
  const refused: [string, string][] = [
    ['', 'InvalidParameterException'],
    ['a.b.c\r', 'InvalidParameterException'],
    ['a.b\n.c', 'InvalidParameterException'],
    ['Bearer a.b.c', 'InvalidTokenException'],
    ['onlyone', 'InvalidTokenException'],
    ['a.b', 'InvalidTokenException'],
    [`${Buffer.from('{}').toString('base64url')}.${Buffer.from('not json').toString('base64url')}.s`, 'InvalidTokenException'],
    [jwt([1, 2]), 'InvalidTokenException'],
    [jwt({ exp: '2099' }), 'InvalidTokenException'],
    [jwt({ exp: NOW / 1000 }), 'ExpiredTokenException'],
    [jwt({ exp: NOW / 1000 + 3600, nbf: NOW / 1000 + 600 }), 'InvalidTokenException'],
  ];
  for (const [token, code] of refused) {
    assert.throws(() => readTokenExpiry(token, NOW), (e: WireError) => e.code === code && e.status === 400, JSON.stringify(token));
  }
});

test('Expiration is RFC 3339 UTC with Z and whole seconds; the body has exactly the SDK field names', () => {
  assert.equal(formatExpiration(Date.UTC(2025, 0, 2, 3, 4, 5, 999)), '2025-01-02T03:04:05Z');
  const body = JSON.parse(
    encodeCredentials({ accessKeyId: 'ASIA1', secretAccessKey: 'sk', sessionToken: 'st', accountId: '111122223333', expiresAt: Date.UTC(2025, 0, 1) }).toString(),
  );
  assert.deepEqual(body, { AccessKeyId: 'ASIA1', SecretAccessKey: 'sk', Token: 'st', AccountId: '111122223333', Expiration: '2025-01-01T00:00:00Z' });
  assert.match(body.Expiration, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
});

test('token bucket: burst, then rate', () => {
  let now = 0;
  const bucket = new TokenBucket({ rate: 10, burst: 3 }, now);
  const take = () => bucket.take(now);
  assert.deepEqual([take(), take(), take(), take()], [true, true, true, false]);
  now += 100; // one token a 100 ms
  assert.deepEqual([take(), take()], [true, false]);
  now += 10_000; // refills only up to the burst
  assert.deepEqual([take(), take(), take(), take()], [true, true, true, false]);
  assert.throws(() => new TokenBucket({ rate: 0, burst: 1 }, now));
});

test('Host must name a served address; port 80 may be omitted; loopback adds localhost', () => {
  const allowed = allowedHostHeaders([
    { host: '169.254.170.23', port: 80 },
    { host: 'fd00:ec2::23', port: 80 },
    { host: '127.0.0.1', port: 8080 },
  ]);
  for (const ok of ['169.254.170.23', '169.254.170.23:80', '[fd00:ec2::23]', '[fd00:ec2::23]:80', '127.0.0.1:8080', 'localhost:8080']) assert.ok(allowed.has(ok), ok);
  for (const bad of ['169.254.170.2', '127.0.0.1', 'localhost', 'evil.example', '169.254.170.23:81', 'fd00:ec2::23']) assert.ok(!allowed.has(bad), bad);
});

test('bind hosts: IP literals, brackets stripped, loopback only when allowed, no wildcard', () => {
  assert.deepEqual(normalizeBindHosts(['169.254.170.23', '[fd00:ec2::23]', '169.254.170.23'], false), ['169.254.170.23', 'fd00:ec2::23']);
  assert.deepEqual(normalizeBindHosts(['127.0.0.1', '[::1]'], true), ['127.0.0.1', '::1']);
  assert.throws(() => normalizeBindHosts(['127.0.0.1'], false), /--allow-loopback/);
  assert.throws(() => normalizeBindHosts(['0.0.0.0'], true), /every interface/);
  assert.throws(() => normalizeBindHosts(['[::]'], true), /every interface/);
  assert.throws(() => normalizeBindHosts(['agent.local'], true), /not an IP/);
  assert.throws(() => normalizeBindHosts([], true), /no bind hosts/);
});

test('an EKS Auth 200 answer decodes to the shape the server answers; what the agent needs must be there', () => {
  const answer = {
    subject: { namespace: 'shop', serviceAccount: 'checkout' },
    audience: 'pods.eks.amazonaws.com',
    podIdentityAssociation: { associationArn: 'arn', associationId: 'a-1' },
    assumedRoleUser: { arn: 'arn:aws:sts::111122223333:assumed-role/checkout/eks-demo-pod-1', assumeRoleId: 'AROA:eks' },
    credentials: { accessKeyId: 'ASIA1', secretAccessKey: 'sk', sessionToken: 'st', expiration: 1767225600.5 },
  };
  assert.deepEqual(decodeAssumeRoleResponse(Buffer.from(JSON.stringify(answer))), answer);
  const iso = { ...answer, credentials: { ...answer.credentials, expiration: '2026-01-01T00:00:00Z' } };
  assert.equal(decodeAssumeRoleResponse(Buffer.from(JSON.stringify(iso)))?.credentials.expiration, 1767225600);
  assert.equal(decodeAssumeRoleResponse(Buffer.from('{"credentials":{}}')), undefined);
  assert.equal(decodeAssumeRoleResponse(Buffer.from(JSON.stringify({ ...answer, assumedRoleUser: { arn: 'not-an-arn' } }))), undefined);
  assert.equal(decodeAssumeRoleResponse(Buffer.from('<html>')), undefined);
});

test('EKS Auth errors keep their status and code, whatever the code is spelled like', () => {
  const error = (status: number, body: string, headers: Record<string, string> = {}) => decodeErrorResponse({ status, headers, body: Buffer.from(body) });
  let e = error(404, '{"__type":"ResourceNotFoundException","message":"no association for shop/checkout"}');
  assert.deepEqual([e.status, e.code, e.message], [404, 'ResourceNotFoundException', 'no association for shop/checkout']);
  e = error(400, '{"message":"expired"}', { 'x-amzn-errortype': 'ExpiredTokenException:http://internal.amazon.com/' });
  assert.deepEqual([e.status, e.code], [400, 'ExpiredTokenException']);
  e = error(400, '{"__type":"com.amazonaws.eksauth#InvalidTokenException","message":"bad"}');
  assert.equal(e.code, 'InvalidTokenException');
  e = error(429, 'slow down');
  assert.deepEqual([e.status, e.code], [429, 'ThrottlingException']);
  e = error(502, '<html>bad gateway</html>');
  assert.deepEqual([e.status, e.code], [502, 'InternalServerException']);
  e = error(400, '{"__type":"SomethingNewException","message":"?"}');
  assert.deepEqual([e.status, e.code], [400, 'InvalidRequestException']);
});

test('the cache key is the SHA-256 of the exact token, computed once per presented token', () => {
  const value = jwt({ sub: 'system:serviceaccount:a:b' });
  const presented = new PresentedToken(value);
  assert.equal(presented.key, createHash('sha256').update(value).digest('base64'));
  assert.equal(presented.key, presented.key);
  assert.notEqual(new PresentedToken(`${value}x`).key, presented.key);
  assert.doesNotMatch(presented.key, /system:serviceaccount/);
});
