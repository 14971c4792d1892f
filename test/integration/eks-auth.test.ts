// EKS Auth API against the built server process: requests signed with
// @smithy/signature-v4 (service eks-auth), tokens signed by test keys, the
// local issuer's credentials checked with the AWS SDK's STS client and the
// AWS CLI, and every error type of DESIGN §3.2.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { LocalIssuer } from '../../src/auth/issuers/local.js';
import { signRequest } from '../../src/lib/sigv4.js';
import { ADMIN, freePort, NODE, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { pythonPeersMissingReason, runAwsCli } from '../peers/python.js';
import { requirePeer } from '../peers/require.js';
import { jwksOf, podClaims, TEST_ISSUER, testSigner, type TestSigner } from '../helpers/sa-tokens.js';

const SCOPED_NODE = { accessKeyId: 'AKIASCOPEDNODE', secretAccessKey: 'scoped-node-secret', clusters: ['other'] };

interface Answer {
  status: number;
  errorType: string | null;
  body: Record<string, unknown>;
}

async function assumeRole(
  apiUrl: string,
  clusterName: string,
  body: unknown,
  options: { credentials?: { accessKeyId: string; secretAccessKey: string }; service?: string; raw?: string; unsigned?: boolean } = {},
): Promise<Answer> {
  const url = new URL(`/clusters/${clusterName}/assume-role-for-pod-identity`, apiUrl);
  const text = options.raw ?? JSON.stringify(body);
  const headers = options.unsigned
    ? { 'content-type': 'application/json' }
    : await signRequest(
        { method: 'POST', url, headers: { 'content-type': 'application/json' }, body: text },
        { credentials: options.credentials ?? NODE, region: 'us-east-1', service: options.service ?? 'eks-auth' },
      );
  const res = await fetch(url, { method: 'POST', headers, body: text, signal: AbortSignal.timeout(5000) });
  const json = (await res.json()) as Record<string, unknown>;
  return { status: res.status, errorType: res.headers.get('x-amzn-errortype'), body: json };
}

function assertError(answer: Answer, status: number, type: string, text?: RegExp): void {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.equal(answer.errorType, type);
  assert.equal(answer.body.__type, type);
  assert.equal(typeof answer.body.message, 'string');
  if (text) assert.match(answer.body.message as string, text);
}

async function createAssociation(apiUrl: string, cluster: string, input: Record<string, unknown>): Promise<{ associationId: string; associationArn: string }> {
  const url = new URL(`/clusters/${cluster}/pod-identity-associations`, apiUrl);
  const text = JSON.stringify(input);
  const headers = await signRequest({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body: text }, { credentials: ADMIN, region: 'us-east-1', service: 'eks' });
  const res = await fetch(url, { method: 'POST', headers, body: text });
  const json = (await res.json()) as { association: { associationId: string; associationArn: string } };
  assert.equal(res.status, 200, JSON.stringify(json));
  return json.association;
}

describe('EKS Auth API (local issuer, JWKS file)', { timeout: 180_000 }, () => {
  let dir: string;
  let server: ServerProcess;
  let signer: TestSigner;
  const issuerKey = randomBytes(32);
  let association: { associationId: string; associationArn: string };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eks-auth-it-'));
    signer = await testSigner('RS256');
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwksOf(signer)));
    writeFileSync(join(dir, 'issuer.key'), issuerKey.toString('hex'), { mode: 0o600 });
    const deadPort = await freePort();
    server = await startServerProcess({
      config: {
        nodes: [{ ...NODE }, SCOPED_NODE],
        clusters: [
          { name: 'demo', issuer: TEST_ISSUER, jwksFile: join(dir, 'jwks.json') },
          { name: 'strict', issuer: TEST_ISSUER, jwksFile: join(dir, 'jwks.json'), requireNodeBinding: true },
          { name: 'unreachable', issuer: TEST_ISSUER, jwksUri: `http://127.0.0.1:${deadPort}/jwks` },
          { name: 'other', issuer: TEST_ISSUER, jwksFile: join(dir, 'jwks.json') },
        ],
        issuer: { type: 'local', durationSeconds: 3600, localKeyFile: join(dir, 'issuer.key') },
        throttle: { perServiceAccount: { rate: 0.01, burst: 10 } },
        audit: { file: join(dir, 'audit.jsonl') },
      },
      // cluster "unreachable" keeps it from being ready
      untilAlive: true,
    });
    association = await createAssociation(server.apiUrl, 'demo', { namespace: 'default', serviceAccount: 'app', roleArn: 'arn:aws:iam::111122223333:role/app-reader' });
    await createAssociation(server.apiUrl, 'demo', { namespace: 'default', serviceAccount: 'busy', roleArn: 'arn:aws:iam::111122223333:role/busy' });
    await createAssociation(server.apiUrl, 'strict', { namespace: 'default', serviceAccount: 'app', roleArn: 'arn:aws:iam::111122223333:role/app-reader' });
  });

  after(async () => {
    await server?.stop();
    const logs = server?.logs() ?? '';
    rmSync(dir, { recursive: true, force: true });
    // Tokens never reach the log.
    assert.ok(!/eyJ[A-Za-z0-9_-]{10,}\.eyJ/.test(logs), 'a JWT appeared in the server log');
  });

  it('exchanges a pod token for credentials with every response member', async () => {
    const token = await signer.sign(podClaims({ podName: 'app-5d9f-abcde', nodeName: 'node-1' }));
    const answer = await assumeRole(server.apiUrl, 'demo', { token, eksNodeName: 'node-1', instanceId: 'i-0123456789abcdef0', zone: 'us-east-1a' });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const body = answer.body as {
      subject: Record<string, string>;
      audience: string;
      podIdentityAssociation: Record<string, string>;
      assumedRoleUser: Record<string, string>;
      credentials: Record<string, unknown>;
    };
    assert.deepEqual(Object.keys(body).sort(), ['assumedRoleUser', 'audience', 'credentials', 'podIdentityAssociation', 'subject']);
    assert.deepEqual(body.subject, { namespace: 'default', serviceAccount: 'app' });
    assert.equal(body.audience, 'pods.eks.amazonaws.com');
    assert.deepEqual(body.podIdentityAssociation, { associationArn: association.associationArn, associationId: association.associationId });
    assert.match(body.assumedRoleUser.arn!, /^arn:aws:sts::111122223333:assumed-role\/app-reader\/eks-demo-app-5d9f-abcde-[0-9a-f]{8}/);
    assert.match(body.assumedRoleUser.assumeRoleId!, /^AROA[A-Z2-7]+:eks-demo-app-5d9f-abcde-/);
    assert.deepEqual(Object.keys(body.credentials).sort(), ['accessKeyId', 'expiration', 'secretAccessKey', 'sessionToken']);
    assert.equal(typeof body.credentials.expiration, 'number');
    assert.ok(Math.abs((body.credentials.expiration as number) - (Date.now() / 1000 + 3600)) < 10);
  });

  it('answers STS GetCallerIdentity for minted credentials (AWS SDK for JavaScript)', async () => {
    const token = await signer.sign(podClaims({ podName: 'sdk-pod' }));
    const answer = await assumeRole(server.apiUrl, 'demo', { token });
    const { accessKeyId, secretAccessKey, sessionToken } = answer.body.credentials as { accessKeyId: string; secretAccessKey: string; sessionToken: string };
    const creds = { accessKeyId, secretAccessKey, sessionToken };
    const sts = new STSClient({ region: 'us-east-1', endpoint: server.apiUrl, credentials: creds });
    const identity = await sts.send(new GetCallerIdentityCommand({}));
    assert.equal(identity.Arn, (answer.body.assumedRoleUser as { arn: string }).arn);
    assert.equal(identity.Account, '111122223333');
    assert.equal(identity.UserId, (answer.body.assumedRoleUser as { assumeRoleId: string }).assumeRoleId);

    const wrong = new STSClient({ region: 'us-east-1', endpoint: server.apiUrl, credentials: { ...creds, secretAccessKey: 'not-the-secret' }, maxAttempts: 1 });
    await assert.rejects(wrong.send(new GetCallerIdentityCommand({})), (e: Error) => e.name === 'SignatureDoesNotMatch');
    const noSession = new STSClient({ region: 'us-east-1', endpoint: server.apiUrl, credentials: { accessKeyId: NODE.accessKeyId, secretAccessKey: NODE.secretAccessKey }, maxAttempts: 1 });
    await assert.rejects(noSession.send(new GetCallerIdentityCommand({})), (e: Error) => e.name === 'InvalidClientTokenId');
  });

  it('refuses expired minted credentials with STS ExpiredToken', async () => {
    // Same key as the server, clock two hours back: credentials that expired an hour ago.
    const past = new LocalIssuer({ key: issuerKey, durationSeconds: 3600, now: () => Date.now() - 2 * 3600_000 });
    const issued = await past.issue({
      association: { clusterName: 'demo', namespace: 'default', serviceAccount: 'app', roleArn: 'arn:aws:iam::111122223333:role/app-reader', associationId: 'a', associationArn: 'a', tags: {}, createdAt: 0, modifiedAt: 0, disableSessionTags: false },
      sessionName: 'expired-session',
    });
    const sts = new STSClient({ region: 'us-east-1', endpoint: server.apiUrl, credentials: issued, maxAttempts: 1 });
    await assert.rejects(sts.send(new GetCallerIdentityCommand({})), (e: Error & { $metadata?: { httpStatusCode?: number } }) => e.name === 'ExpiredToken' && e.$metadata?.httpStatusCode === 403);
  });

  it('aws sts get-caller-identity --endpoint-url prints the assumed-role ARN; a wrong secret is refused', { skip: requirePeer('AWS CLI', pythonPeersMissingReason) }, async () => {
    const token = await signer.sign(podClaims({ podName: 'cli-pod' }));
    const answer = await assumeRole(server.apiUrl, 'demo', { token });
    const creds = answer.body.credentials as { accessKeyId: string; secretAccessKey: string; sessionToken: string };
    const env = { AWS_ACCESS_KEY_ID: creds.accessKeyId, AWS_SECRET_ACCESS_KEY: creds.secretAccessKey, AWS_SESSION_TOKEN: creds.sessionToken };
    const ok = await runAwsCli(['sts', 'get-caller-identity', '--endpoint-url', server.apiUrl, '--output', 'json'], { env });
    const identity = JSON.parse(ok.stdout) as { Arn: string; Account: string };
    assert.equal(identity.Arn, (answer.body.assumedRoleUser as { arn: string }).arn);
    assert.equal(identity.Account, '111122223333');
    const bad = await runAwsCli(['sts', 'get-caller-identity', '--endpoint-url', server.apiUrl], { env: { ...env, AWS_SECRET_ACCESS_KEY: 'wrong-secret-wrong-secret' }, allowFailure: true });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /SignatureDoesNotMatch/);
  });

  it('repeats of the same token are answered with fresh credentials each time', async () => {
    const token = await signer.sign(podClaims({ podName: 'repeat-pod' }));
    const a = await assumeRole(server.apiUrl, 'demo', { token });
    const b = await assumeRole(server.apiUrl, 'demo', { token });
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.notEqual((a.body.credentials as { accessKeyId: string }).accessKeyId, (b.body.credentials as { accessKeyId: string }).accessKeyId);
  });

  describe('errors (DESIGN §3.2)', () => {
    it('InvalidTokenException names the failed check: audience, issuer, other key, alg none, tampered, not pod-bound, sub mismatch', async () => {
      const stranger = await testSigner('RS256', signer.kid);
      const good = await signer.sign(podClaims());
      const [h, , s] = good.split('.');
      const cases: [string, RegExp][] = [
        [await signer.sign(podClaims({ audience: ['sts.amazonaws.com'] })), /audience/],
        [await signer.sign(podClaims({ issuer: 'https://another-cluster' })), /issuer/],
        [await stranger.sign(podClaims()), /signature/],
        [`${Buffer.from('{"alg":"none"}').toString('base64url')}.${good.split('.')[1]}.`, /alg "none"/],
        [`${h}.${Buffer.from(JSON.stringify({ ...podClaims(), sub: 'system:serviceaccount:kube-system:admin' })).toString('base64url')}.${s}`, /signature/],
        [await signer.sign({ ...podClaims(), 'kubernetes.io': { namespace: 'default', serviceaccount: { name: 'app', uid: 'u' } } }), /not bound to a pod/],
        [await signer.sign({ ...podClaims(), sub: 'system:serviceaccount:default:other' }), /does not match/],
        ['not.a-jwt', /not a JWT/],
      ];
      for (const [token, text] of cases) {
        const answer = await assumeRole(server.apiUrl, 'demo', { token });
        assertError(answer, 400, 'InvalidTokenException', text);
        assert.ok(!(answer.body.message as string).includes(token.split('.')[1] ?? token));
      }
    });

    it('ExpiredTokenException for an expired token', async () => {
      assertError(await assumeRole(server.apiUrl, 'demo', { token: await signer.sign(podClaims({ expiresIn: -600, issuedAgo: 4000 })) }), 400, 'ExpiredTokenException');
    });

    it('InvalidParameterException and InvalidRequestException for malformed input', async () => {
      assertError(await assumeRole(server.apiUrl, 'demo', {}), 400, 'InvalidParameterException', /token/);
      assertError(await assumeRole(server.apiUrl, 'demo', { token: 42 }), 400, 'InvalidParameterException', /token/);
      assertError(await assumeRole(server.apiUrl, '-bad', { token: await signer.sign(podClaims()) }), 400, 'InvalidParameterException', /clusterName/);
      assertError(await assumeRole(server.apiUrl, 'demo', { token: await signer.sign(podClaims()), eksNodeName: 7 }), 400, 'InvalidParameterException', /eksNodeName/);
      assertError(await assumeRole(server.apiUrl, 'demo', undefined, { raw: '{not json' }), 400, 'InvalidRequestException');
      assertError(await assumeRole(server.apiUrl, 'strict', { token: await signer.sign(podClaims()) }), 400, 'InvalidRequestException', /eksNodeName/);
    });

    it('ResourceNotFoundException for an unknown cluster and a service account without association', async () => {
      const token = await signer.sign(podClaims());
      assertError(await assumeRole(server.apiUrl, 'nowhere', { token }), 404, 'ResourceNotFoundException', /nowhere/);
      const orphan = await signer.sign(podClaims({ namespace: 'team-x', serviceAccount: 'lonely' }));
      assertError(await assumeRole(server.apiUrl, 'demo', { token: orphan }), 404, 'ResourceNotFoundException', /lonely.*team-x|team-x.*lonely/);
    });

    it('AccessDeniedException for a node key scoped to other clusters and for a token of another node', async () => {
      const token = await signer.sign(podClaims({ nodeName: 'node-1' }));
      assertError(await assumeRole(server.apiUrl, 'demo', { token }, { credentials: SCOPED_NODE }), 400, 'AccessDeniedException', /demo/);
      assertError(await assumeRole(server.apiUrl, 'demo', { token, eksNodeName: 'node-2' }), 400, 'AccessDeniedException', /node/);
    });

    it('ThrottlingException past the per-service-account bucket', async () => {
      const token = await signer.sign(podClaims({ serviceAccount: 'busy' }));
      const statuses: number[] = [];
      for (let i = 0; i < 10; i++) statuses.push((await assumeRole(server.apiUrl, 'demo', { token })).status);
      assert.deepEqual(new Set(statuses), new Set([200]));
      assertError(await assumeRole(server.apiUrl, 'demo', { token }), 429, 'ThrottlingException');
    });

    it('ServiceUnavailableException when the cluster keys cannot be fetched', async () => {
      assertError(await assumeRole(server.apiUrl, 'unreachable', { token: await signer.sign(podClaims()) }), 503, 'ServiceUnavailableException');
      // and the server says so: not ready, naming the cluster and why
      const ready = await fetch(`${server.metricsUrl}/readyz`);
      assert.equal(ready.status, 503);
      assert.match(await ready.text(), /cluster unreachable: signing-keys \(jwksUri http:\/\/127\.0\.0\.1:\d+\/jwks\): fetch failed \(ECONNREFUSED\)/);
    });

    it('SigV4: admin keys, other signing names and unsigned calls are refused', async () => {
      const token = await signer.sign(podClaims());
      assertError(await assumeRole(server.apiUrl, 'demo', { token }, { credentials: ADMIN }), 403, 'UnrecognizedClientException');
      assertError(await assumeRole(server.apiUrl, 'demo', { token }, { service: 'eks' }), 403, 'InvalidSignatureException');
      assertError(await assumeRole(server.apiUrl, 'demo', { token }, { credentials: { ...NODE, secretAccessKey: 'wrong' } }), 403, 'InvalidSignatureException');
      assertError(await assumeRole(server.apiUrl, 'demo', { token }, { unsigned: true }), 403, 'MissingAuthenticationTokenException');
    });
  });
});

/** A broken STS for the failure mappings (the real one, moto, is in eks-auth-sts.test.ts). */
function brokenSts(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const role = new URLSearchParams(Buffer.concat(chunks).toString()).get('RoleArn') ?? '';
      const error = (status: number, code: string) => {
        res.writeHead(status, { 'content-type': 'text/xml' });
        res.end(`<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${code}</Code><Message>m</Message></Error><RequestId>r</RequestId></ErrorResponse>`);
      };
      if (role.endsWith('/denied')) error(403, 'AccessDenied');
      else if (role.endsWith('/throttled')) error(400, 'Throttling');
      else if (role.endsWith('/unavailable')) error(503, 'ServiceUnavailable');
      else {
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end('<AssumeRoleResponse><AssumeRoleResult></AssumeRoleResult></AssumeRoleResponse>');
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server })));
}

describe('EKS Auth API errors from the aws-sts issuer', { timeout: 120_000 }, () => {
  let dir: string;
  let server: ServerProcess;
  let sts: { url: string; server: Server };
  let signer: TestSigner;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eks-auth-sts-errors-'));
    signer = await testSigner('ES256');
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwksOf(signer)));
    sts = await brokenSts();
    server = await startServerProcess({
      config: { clusters: [{ name: 'demo', issuer: TEST_ISSUER, jwksFile: join(dir, 'jwks.json') }], issuer: { type: 'aws-sts', stsEndpoint: sts.url, durationSeconds: 3600 } },
      env: { AWS_ACCESS_KEY_ID: 'AKIASERVER', AWS_SECRET_ACCESS_KEY: 'server-secret', AWS_REGION: 'us-east-1' },
    });
    for (const sa of ['denied', 'throttled', 'unavailable', 'garbage']) {
      await createAssociation(server.apiUrl, 'demo', { namespace: 'default', serviceAccount: sa, roleArn: `arn:aws:iam::111122223333:role/${sa}` });
    }
  });

  after(async () => {
    await server?.stop();
    sts?.server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('maps STS AccessDenied, Throttling, unavailability and garbage to the EKS Auth names', async () => {
    const call = async (sa: string) => assumeRole(server.apiUrl, 'demo', { token: await signer.sign(podClaims({ serviceAccount: sa })) });
    assertError(await call('denied'), 400, 'AccessDeniedException', /trust/);
    assertError(await call('throttled'), 429, 'ThrottlingException');
    assertError(await call('unavailable'), 503, 'ServiceUnavailableException');
    assertError(await call('garbage'), 500, 'InternalServerException');
  });
});
