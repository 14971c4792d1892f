// The maximum token lifetime (issue 25, item 4) through the built server
// process: tokens signed by the cluster's own key, valid for 10 years or just
// over a cluster's maxTokenLifetimeSeconds, get InvalidTokenException naming
// the check; a token inside the limit gets credentials.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreatePodIdentityAssociationCommand, EKSClient } from '@aws-sdk/client-eks';
import { signRequest } from '../../src/lib/sigv4.js';
import { jwksOf, podClaims, TEST_ISSUER, testSigner, type TestSigner } from '../helpers/sa-tokens.js';
import { ADMIN, NODE, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const YEAR = 365 * 86_400;

async function assumeRole(apiUrl: string, cluster: string, token: string) {
  const url = new URL(`/clusters/${cluster}/assume-role-for-pod-identity`, apiUrl);
  const body = JSON.stringify({ token });
  const headers = await signRequest({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body }, { credentials: NODE, region: 'us-east-1', service: 'eks-auth' });
  const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(5000) });
  return { status: res.status, errorType: res.headers.get('x-amzn-errortype'), body: (await res.json()) as Record<string, unknown> };
}

describe('maximum service-account token lifetime', { timeout: 60_000 }, () => {
  let dir: string;
  let signer: TestSigner;
  let server: ServerProcess;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'token-lifetime-'));
    signer = await testSigner();
    const jwksFile = join(dir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify(jwksOf(signer)));
    server = await startServerProcess({
      config: {
        clusters: [
          { name: 'demo', issuer: TEST_ISSUER, jwksFile },
          { name: 'short', issuer: TEST_ISSUER, jwksFile, maxTokenLifetimeSeconds: 3600 },
        ],
      },
    });
    const eks = new EKSClient({ endpoint: server.apiUrl, region: 'us-east-1', credentials: { ...ADMIN }, maxAttempts: 1 });
    for (const clusterName of ['demo', 'short']) {
      await eks.send(new CreatePodIdentityAssociationCommand({ clusterName, namespace: 'default', serviceAccount: 'app', roleArn: 'arn:aws:iam::111122223333:role/app' }));
    }
    eks.destroy();
  });
  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a 10-year token signed by the cluster key is InvalidTokenException naming the check (default 48 h)', async () => {
    const answer = await assumeRole(server.apiUrl, 'demo', await signer.sign(podClaims({ expiresIn: 10 * YEAR })));
    assert.equal(answer.status, 400, JSON.stringify(answer.body));
    assert.equal(answer.errorType, 'InvalidTokenException');
    assert.equal(
      answer.body.message,
      `The service account token failed verification: token lifetime (exp - iat) of ${10 * YEAR} s exceeds the cluster's maxTokenLifetimeSeconds (172800 s).`,
    );
    const day = await assumeRole(server.apiUrl, 'demo', await signer.sign(podClaims({ expiresIn: 86_400 })));
    assert.equal(day.status, 200, 'the 24 h token the webhook asks for is fine');
  });

  test("a cluster's own maxTokenLifetimeSeconds (3600) refuses a 2 h token and takes a 1 h one", async () => {
    const long = await assumeRole(server.apiUrl, 'short', await signer.sign(podClaims({ expiresIn: 7200 })));
    assert.equal(long.status, 400);
    assert.equal(long.errorType, 'InvalidTokenException');
    assert.match(long.body.message as string, /token lifetime \(exp - iat\) of 7200 s exceeds the cluster's maxTokenLifetimeSeconds \(3600 s\)/);
    const hour = await assumeRole(server.apiUrl, 'short', await signer.sign(podClaims({ expiresIn: 3600 })));
    assert.equal(hour.status, 200, JSON.stringify(hour.body));
  });
});
