// The aws-sts issuer against moto (a real AWS-compatible STS/IAM): the server
// assumes the association's role with its own principal, the credentials it
// hands out work for a child process using the AWS SDK for JavaScript, and
// targetRoleArn chaining ends in the target role. Also `pod-identity
// trust-policy`, which asks STS who the server is.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { signedPost } from '../helpers/signed-post.js';
import { ADMIN, CLI, NODE, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { awsQuery, motoMissingReason, startMoto, type MotoServer } from '../peers/moto.js';
import { requirePeer } from '../peers/require.js';
import { jwksOf, podClaims, TEST_ISSUER, testSigner, type TestSigner } from '../helpers/sa-tokens.js';

const skip = requirePeer('moto', motoMissingReason);

const TRUST_ANYONE = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::123456789012:root' }, Action: ['sts:AssumeRole', 'sts:TagSession'] }],
});

function run(command: string, args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    execFile(command, args, { env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null', AWS_EC2_METADATA_DISABLED: 'true', ...env }, cwd: resolve('.'), timeout: 60_000 }, (error, stdout, stderr) =>
      resolvePromise({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}

/** A separate Node process that uses the default credential chain (environment) of the AWS SDK for JavaScript. */
const CALLER_IDENTITY = `
import { STSClient, GetCallerIdentityCommand } from '@aws-sdk/client-sts';
const sts = new STSClient({ endpoint: process.env.STS_ENDPOINT, region: 'us-east-1' });
const identity = await sts.send(new GetCallerIdentityCommand({}));
console.log(JSON.stringify({ Arn: identity.Arn, Account: identity.Account, UserId: identity.UserId }));
`;

describe('aws-sts issuer against moto', { skip, timeout: 180_000 }, () => {
  let dir: string;
  let moto: MotoServer;
  let server: ServerProcess;
  let signer: TestSigner;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eks-auth-moto-'));
    moto = await startMoto();
    for (const RoleName of ['app-reader', 'chain-source', 'chain-target']) {
      await awsQuery(moto, 'iam', 'CreateRole', { RoleName, AssumeRolePolicyDocument: TRUST_ANYONE });
    }
    signer = await testSigner('RS256');
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwksOf(signer)));
    server = await startServerProcess({
      config: {
        region: 'us-east-1',
        accountId: moto.accountId,
        clusters: [{ name: 'demo', issuer: TEST_ISSUER, jwksFile: join(dir, 'jwks.json') }],
        issuer: { type: 'aws-sts', stsEndpoint: moto.endpoint, region: moto.region, durationSeconds: 7200 },
      },
      env: { AWS_ACCESS_KEY_ID: moto.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: moto.credentials.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' },
    });
    const create = (input: Record<string, unknown>) => signedPost(new URL('/clusters/demo/pod-identity-associations', server.apiUrl), input, ADMIN, 'eks');
    assert.equal((await create({ namespace: 'default', serviceAccount: 'reader', roleArn: `arn:aws:iam::${moto.accountId}:role/app-reader` })).status, 200);
    const chained = await create({
      namespace: 'default',
      serviceAccount: 'chained',
      roleArn: `arn:aws:iam::${moto.accountId}:role/chain-source`,
      targetRoleArn: `arn:aws:iam::${moto.accountId}:role/chain-target`,
    });
    assert.equal(chained.status, 200, JSON.stringify(chained.body));
    assert.ok(chained.body.association.externalId, 'an association with targetRoleArn has an externalId');
  });

  after(async () => {
    await server?.stop();
    await moto?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const exchange = async (serviceAccount: string) =>
    signedPost(new URL('/clusters/demo/assume-role-for-pod-identity', server.apiUrl), { token: await signer.sign(podClaims({ serviceAccount, podName: `${serviceAccount}-pod-1` })) }, NODE, 'eks-auth');

  it('issues STS credentials that a child process with the AWS SDK for JavaScript can use', async () => {
    const answer = await exchange('reader');
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const { credentials, assumedRoleUser } = answer.body;
    assert.match(assumedRoleUser.arn, new RegExp(`^arn:aws:sts::${moto.accountId}:assumed-role/app-reader/eks-demo-reader-pod-1-`));
    assert.equal(typeof credentials.expiration, 'number');
    assert.ok(credentials.expiration > Date.now() / 1000 + 3600, 'durationSeconds from config (7200) reaches STS');

    const child = await run(process.execPath, ['--input-type=module', '-e', CALLER_IDENTITY], {
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_SESSION_TOKEN: credentials.sessionToken,
      STS_ENDPOINT: moto.endpoint,
    });
    assert.equal(child.code, 0, child.stderr);
    const identity = JSON.parse(child.stdout) as { Arn: string; Account: string };
    assert.equal(identity.Arn, assumedRoleUser.arn);
    assert.equal(identity.Account, moto.accountId);
  });

  it('chains to targetRoleArn: the credentials are the target role session, at most one hour', async () => {
    const answer = await exchange('chained');
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const { credentials, assumedRoleUser } = answer.body;
    assert.match(assumedRoleUser.arn, new RegExp(`^arn:aws:sts::${moto.accountId}:assumed-role/chain-target/eks-demo-chained-pod-1-`));
    assert.ok(credentials.expiration <= Date.now() / 1000 + 3600 + 5, 'chained sessions last at most one hour');
    const child = await run(process.execPath, ['--input-type=module', '-e', CALLER_IDENTITY], {
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_SESSION_TOKEN: credentials.sessionToken,
      STS_ENDPOINT: moto.endpoint,
    });
    assert.equal(child.code, 0, child.stderr);
    assert.equal((JSON.parse(child.stdout) as { Arn: string }).Arn, assumedRoleUser.arn);
  });

  it('pod-identity trust-policy prints the policy for the principal STS names', async () => {
    const result = await run(process.execPath, [CLI, 'trust-policy', '--role-arn', `arn:aws:iam::${moto.accountId}:role/app-reader`, '--sts-endpoint', moto.endpoint, '--region', moto.region], {
      AWS_ACCESS_KEY_ID: moto.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: moto.credentials.secretAccessKey,
    });
    assert.equal(result.code, 0, result.stderr);
    const policy = JSON.parse(result.stdout) as { Version: string; Statement: { Principal: { AWS: string }; Action: string[] }[] };
    assert.equal(policy.Version, '2012-10-17');
    assert.match(policy.Statement[0]!.Principal.AWS, new RegExp(`^arn:aws:(iam|sts)::${moto.accountId}:`));
    assert.deepEqual(policy.Statement[0]!.Action, ['sts:AssumeRole', 'sts:TagSession']);

    const crossAccount = await run(process.execPath, [CLI, 'trust-policy', '--role-arn', 'arn:aws:iam::444455556666:role/target', '--principal-arn', `arn:aws:iam::${moto.accountId}:role/chain-source`, '--external-id', 'ext-123'], {});
    assert.equal(crossAccount.code, 0, crossAccount.stderr);
    const statement = (JSON.parse(crossAccount.stdout) as { Statement: { Condition?: unknown }[] }).Statement[0]!;
    assert.deepEqual(statement.Condition, { StringEquals: { 'sts:ExternalId': 'ext-123' } });
  });
});
