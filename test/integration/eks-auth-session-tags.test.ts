// Custom session tags, session name templates and non-transitive tags with the
// aws-sts issuer: a `pod-identity server` assumes roles on moto through a
// proxy that records each AssumeRole form, so the test reads exactly what STS
// was sent. Pattern associations take part as any other.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { SESSION_TAG_KEYS } from '../../src/api/eks.js';
import { signedPost } from '../helpers/signed-post.js';
import { ADMIN, NODE, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { jwksOf, podClaims, TEST_ISSUER, testSigner, type TestSigner } from '../helpers/sa-tokens.js';
import { awsQuery, motoMissingReason, startMoto, type MotoServer } from '../peers/moto.js';
import { requirePeer } from '../peers/require.js';
import { startStsRecorder, tagsOf, transitiveTagKeysOf, type StsRecorder } from '../peers/sts-recorder.js';

const skip = requirePeer('moto', motoMissingReason);

const TRUST_ANYONE = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::123456789012:root' }, Action: ['sts:AssumeRole', 'sts:TagSession'] }],
});

describe('session tags, session names and transitive tags, as STS receives them', { skip, timeout: 180_000 }, () => {
  let dir: string;
  let moto: MotoServer;
  let recorder: StsRecorder;
  let server: ServerProcess;
  let signer: TestSigner;
  const role = (name: string) => `arn:aws:iam::${moto.accountId}:role/${name}`;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eks-auth-session-tags-'));
    moto = await startMoto();
    recorder = await startStsRecorder(moto.endpoint);
    for (const RoleName of ['plain', 'tagged', 'chain-source', 'chain-target']) await awsQuery(moto, 'iam', 'CreateRole', { RoleName, AssumeRolePolicyDocument: TRUST_ANYONE });
    signer = await testSigner('RS256');
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwksOf(signer)));
    server = await startServerProcess({
      config: {
        region: 'us-east-1',
        accountId: moto.accountId,
        clusters: [{ name: 'demo', issuer: TEST_ISSUER, jwksFile: join(dir, 'jwks.json') }],
        issuer: { type: 'aws-sts', stsEndpoint: recorder.endpoint, iamEndpoint: moto.endpoint, region: moto.region },
      },
      env: { AWS_ACCESS_KEY_ID: moto.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: moto.credentials.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' },
    });
    const create = async (input: Record<string, unknown>) => {
      const made = await signedPost(new URL('/clusters/demo/pod-identity-associations', server.apiUrl), input, ADMIN, 'eks');
      assert.equal(made.status, 200, JSON.stringify(made.body));
    };
    await create({ namespace: 'default', serviceAccount: 'plain', roleArn: role('plain') });
    await create({ namespace: 'default', serviceAccount: 'tagged', roleArn: role('tagged'), sessionTags: { team: 'payments', 'cost-center': 'cc-42' }, sessionNameTemplate: 'ci.{namespace}.{serviceAccount}@{pod}-{random}' });
    await create({ namespace: 'jobs', serviceAccount: 'batch-*', roleArn: role('tagged'), sessionTags: { team: 'batch' }, transitiveSessionTags: false });
    await create({ namespace: 'default', serviceAccount: 'chained', roleArn: role('chain-source'), targetRoleArn: role('chain-target'), transitiveSessionTags: false });
    await create({ namespace: 'default', serviceAccount: 'labelled', roleArn: role('tagged'), sessionTags: { team: '{{pod.labels.team}}' } });
  });

  after(async () => {
    await server?.stop();
    await recorder?.stop();
    await moto?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    recorder.assumeRoles.length = 0;
  });

  const exchange = async (namespace: string, serviceAccount: string) =>
    signedPost(new URL('/clusters/demo/assume-role-for-pod-identity', server.apiUrl), { token: await signer.sign(podClaims({ namespace, serviceAccount, podName: `${serviceAccount}-pod-1`, podUid: 'uid-1' })) }, NODE, 'eks-auth');

  it('an association as EKS makes it: the six tags, all transitive, and EKS\'s session name', async () => {
    const answer = await exchange('default', 'plain');
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const [form] = recorder.assumeRoles;
    assert.equal(recorder.assumeRoles.length, 1);
    assert.deepEqual(Object.keys(tagsOf(form!)), [...SESSION_TAG_KEYS]);
    assert.deepEqual(transitiveTagKeysOf(form!), [...SESSION_TAG_KEYS]);
    assert.match(form!.get('RoleSessionName')!, /^eks-demo-plain-pod-1-[0-9a-f-]+$/);
  });

  it('custom tags ride with the six, and the session name follows the template', async () => {
    const answer = await exchange('default', 'tagged');
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const form = recorder.assumeRoles[0]!;
    const tags = tagsOf(form);
    assert.equal(tags.team, 'payments');
    assert.equal(tags['cost-center'], 'cc-42');
    assert.equal(tags['kubernetes-service-account'], 'tagged');
    assert.equal(Object.keys(tags).length, 8);
    assert.deepEqual(transitiveTagKeysOf(form)?.sort(), Object.keys(tags).sort());
    const sessionName = form.get('RoleSessionName')!;
    assert.match(sessionName, /^ci\.default\.tagged@tagged-pod-1-[0-9a-f]{16}$/);
    // the credentials are that session's: STS made the name part of the assumed-role ARN
    assert.equal(answer.body.assumedRoleUser.arn, `arn:aws:sts::${moto.accountId}:assumed-role/tagged/${sessionName}`);
  });

  it('transitiveSessionTags false: the tags are sent, TransitiveTagKeys is absent (a pattern association)', async () => {
    const answer = await exchange('jobs', 'batch-17');
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const form = recorder.assumeRoles[0]!;
    assert.equal(tagsOf(form).team, 'batch');
    assert.equal(tagsOf(form)['kubernetes-service-account'], 'batch-17');
    assert.equal(transitiveTagKeysOf(form), undefined);
    assert.ok(![...form.keys()].some((key) => key.startsWith('TransitiveTagKeys')), 'no TransitiveTagKeys member at all');
  });

  it('transitiveSessionTags false with a targetRoleArn: both hops carry the tags, neither passes them on', async () => {
    const answer = await exchange('default', 'chained');
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(recorder.assumeRoles.length, 2);
    const [first, second] = recorder.assumeRoles;
    assert.equal(first!.get('RoleArn'), role('chain-source'));
    assert.equal(second!.get('RoleArn'), role('chain-target'));
    for (const form of [first!, second!]) {
      assert.deepEqual(Object.keys(tagsOf(form)), [...SESSION_TAG_KEYS]);
      assert.equal(transitiveTagKeysOf(form), undefined);
    }
  });

  it('a tag that reads pod labels, on a cluster without API access, is refused by name and reaches no STS', async () => {
    const answer = await exchange('default', 'labelled');
    assert.equal(answer.status, 400);
    assert.equal(answer.body.__type, 'InvalidRequestException');
    assert.match(answer.body.message, /read pod labels, and cluster demo has no API access/);
    assert.equal(recorder.assumeRoles.length, 0);
  });
});
