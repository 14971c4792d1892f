// The credential scope of SigV4 at each of the server's three signed APIs
// (issue 25, item 2): a signature made for another region or another service
// is a valid signature by a known key, and must still be refused with 403
// InvalidSignatureException and the messages AWS uses. The clients are the
// AWS SDK's own: @aws-sdk/client-eks and @aws-sdk/client-sts (their signing
// name overridden through the SDK's httpAuthSchemeProvider), and the SDK's
// signer @smithy/signature-v4 for EKS Auth, which has no npm client.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EKSClient, ListPodIdentityAssociationsCommand } from '@aws-sdk/client-eks';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { NodeSha256 } from '../../src/lib/sigv4.js';
import { ADMIN, NODE } from '../helpers/server-process.js';
import { CLUSTER, startControlPlane, type ControlPlane } from './agent-harness.js';

const REGION = 'us-east-1';
const WRONG_REGION = 'Credential should be scoped to a valid region.';
const wrongService = (service: string) => `Credential should be scoped to correct service: '${service}'.`;

/** The SDK's SigV4 scheme with another signing name than the client's own. */
function signingAs(name: string) {
  return (params: { region?: string }) => [
    {
      schemeId: 'aws.auth#sigv4',
      signingProperties: { name, signingName: name, region: params.region },
      // as the SDK's own option: the signer needs the client's config and context
      propertiesExtractor: (config: object, context: object) => ({ signingProperties: { config, context } }),
    },
  ];
}

/** Signs with the AWS SDK's signer (as the AWS agent's Go SDK would) and POSTs to EKS Auth. */
async function assumeRole(apiUrl: string, token: string, scope: { region: string; service: string }) {
  const url = new URL(`/clusters/${CLUSTER}/assume-role-for-pod-identity`, apiUrl);
  const body = JSON.stringify({ token });
  const signer = new SignatureV4({ credentials: NODE, region: scope.region, service: scope.service, sha256: NodeSha256 });
  const signed = await signer.sign(
    new HttpRequest({ method: 'POST', protocol: url.protocol, hostname: url.hostname, port: Number(url.port), path: url.pathname, headers: { host: url.host, 'content-type': 'application/json' }, body }),
  );
  const res = await fetch(url, { method: 'POST', headers: signed.headers, body, signal: AbortSignal.timeout(5000) });
  return { status: res.status, errorType: res.headers.get('x-amzn-errortype'), body: (await res.json()) as Record<string, unknown> };
}

interface SdkFailure {
  name: string;
  message: string;
  $metadata: { httpStatusCode?: number };
}

async function sdkFailure(send: () => Promise<unknown>): Promise<SdkFailure> {
  try {
    await send();
  } catch (error) {
    if ((error as SdkFailure).$metadata?.httpStatusCode === undefined) throw error;
    return error as SdkFailure;
  }
  assert.fail('the request was accepted');
}

describe('SigV4 credential scope: region and service at every signed API', { timeout: 60_000 }, () => {
  let cp: ControlPlane;
  let credentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string };

  before(async () => {
    cp = await startControlPlane();
    await cp.associate('default', 'app');
    const answer = await assumeRole(cp.server.apiUrl, await cp.token(), { region: REGION, service: 'eks-auth' });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const issued = answer.body.credentials as typeof credentials;
    credentials = { accessKeyId: issued.accessKeyId, secretAccessKey: issued.secretAccessKey, sessionToken: issued.sessionToken };
  });
  after(() => cp?.stop());

  const eks = (options: { region: string; signingName?: string }) =>
    new EKSClient({ endpoint: cp.server.apiUrl, region: options.region, credentials: { ...ADMIN }, maxAttempts: 1, ...(options.signingName && { httpAuthSchemeProvider: signingAs(options.signingName) }) });
  const sts = (options: { region: string; signingName?: string }) =>
    new STSClient({ endpoint: cp.server.apiUrl, region: options.region, credentials, maxAttempts: 1, ...(options.signingName && { httpAuthSchemeProvider: signingAs(options.signingName) }) });

  test('association API (eks): the right scope works; eu-west-1, region "x" and signing name eks-auth are refused', async () => {
    const ok = eks({ region: REGION });
    assert.ok(Array.isArray((await ok.send(new ListPodIdentityAssociationsCommand({ clusterName: CLUSTER }))).associations));
    ok.destroy();
    for (const region of ['eu-west-1', 'x']) {
      const client = eks({ region });
      const error = await sdkFailure(() => client.send(new ListPodIdentityAssociationsCommand({ clusterName: CLUSTER })));
      client.destroy();
      assert.equal(error.$metadata.httpStatusCode, 403, region);
      assert.equal(error.name, 'InvalidSignatureException', region);
      assert.equal(error.message, WRONG_REGION);
    }
    const client = eks({ region: REGION, signingName: 'eks-auth' });
    const error = await sdkFailure(() => client.send(new ListPodIdentityAssociationsCommand({ clusterName: CLUSTER })));
    client.destroy();
    assert.equal(error.$metadata.httpStatusCode, 403);
    assert.equal(error.name, 'InvalidSignatureException');
    assert.equal(error.message, wrongService('eks'));
  });

  test('EKS Auth (eks-auth): a token signed for eu-west-1, region "x" or service eks gets no credentials', async () => {
    const token = await cp.token();
    for (const region of ['eu-west-1', 'x']) {
      const answer = await assumeRole(cp.server.apiUrl, token, { region, service: 'eks-auth' });
      assert.equal(answer.status, 403, region);
      assert.equal(answer.errorType, 'InvalidSignatureException');
      assert.deepEqual(answer.body, { __type: 'InvalidSignatureException', message: WRONG_REGION });
    }
    const answer = await assumeRole(cp.server.apiUrl, token, { region: REGION, service: 'eks' });
    assert.equal(answer.status, 403);
    assert.deepEqual(answer.body, { __type: 'InvalidSignatureException', message: wrongService('eks-auth') });
    const right = await assumeRole(cp.server.apiUrl, token, { region: REGION, service: 'eks-auth' });
    assert.equal(right.status, 200);
  });

  test("the local issuer's STS (sts): GetCallerIdentity signed for another region or as eks is SignatureDoesNotMatch", async () => {
    const ok = sts({ region: REGION });
    assert.match((await ok.send(new GetCallerIdentityCommand({}))).Arn!, /^arn:aws:sts::\d{12}:assumed-role\//);
    ok.destroy();
    for (const region of ['eu-west-1', 'x']) {
      const client = sts({ region });
      const error = await sdkFailure(() => client.send(new GetCallerIdentityCommand({})));
      client.destroy();
      assert.equal(error.$metadata.httpStatusCode, 403, region);
      assert.equal(error.name, 'SignatureDoesNotMatch', region);
      assert.equal(error.message, WRONG_REGION);
    }
    const client = sts({ region: REGION, signingName: 'eks' });
    const error = await sdkFailure(() => client.send(new GetCallerIdentityCommand({})));
    client.destroy();
    assert.equal(error.$metadata.httpStatusCode, 403);
    assert.equal(error.name, 'SignatureDoesNotMatch');
    assert.equal(error.message, wrongService('sts'));
  });
});
