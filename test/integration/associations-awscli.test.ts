// The AWS CLI (awscli from PyPI, in the peers' venv) manages associations on
// our server with nothing but --endpoint-url.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pythonPeersMissingReason, runAwsCli } from '../peers/python.js';
import { requirePeer } from '../peers/require.js';
import { ADMIN, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const skip = requirePeer('aws cli', pythonPeersMissingReason);

describe('aws eks … --endpoint-url', { skip }, () => {
  let server: ServerProcess;
  const env = () => ({ AWS_ACCESS_KEY_ID: ADMIN.accessKeyId, AWS_SECRET_ACCESS_KEY: ADMIN.secretAccessKey });
  before(async () => {
    server = await startServerProcess();
  });
  after(async () => {
    await server?.stop();
  });

  test('create-pod-identity-association and list-pod-identity-associations', async () => {
    const created = await runAwsCli(
      ['eks', 'create-pod-identity-association', '--endpoint-url', server.apiUrl, '--cluster-name', 'demo', '--namespace', 'billing', '--service-account', 'api', '--role-arn', 'arn:aws:iam::111122223333:role/billing', '--tags', 'team=billing', '--output', 'json'],
      { env: env() },
    );
    const association = (JSON.parse(created.stdout) as { association: { associationId: string; namespace: string; tags: Record<string, string>; createdAt: string } }).association;
    assert.match(association.associationId, /^a-[a-z0-9]{17}$/);
    assert.equal(association.namespace, 'billing');
    assert.deepEqual(association.tags, { team: 'billing' });
    // AWS CLI v1 prints timestamps as the wire gave them: epoch seconds
    assert.ok(Math.abs(Number(association.createdAt) - Date.now() / 1000) < 120, String(association.createdAt));

    const listed = await runAwsCli(['eks', 'list-pod-identity-associations', '--endpoint-url', server.apiUrl, '--cluster-name', 'demo', '--output', 'json'], { env: env() });
    const summaries = (JSON.parse(listed.stdout) as { associations: { associationId: string; serviceAccount: string }[] }).associations;
    assert.deepEqual(summaries.map((s) => [s.associationId, s.serviceAccount]), [[association.associationId, 'api']]);

    const duplicate = await runAwsCli(
      ['eks', 'create-pod-identity-association', '--endpoint-url', server.apiUrl, '--cluster-name', 'demo', '--namespace', 'billing', '--service-account', 'api', '--role-arn', 'arn:aws:iam::111122223333:role/billing'],
      { env: env(), allowFailure: true },
    );
    assert.notEqual(duplicate.code, 0);
    assert.match(duplicate.stderr, /ResourceInUseException/);
  });

  test('patterns pass through the AWS CLI unchanged: create, list for a service account by name, and a duplicate pattern', async () => {
    const create = (serviceAccount: string, allowFailure = false) =>
      runAwsCli(
        ['eks', 'create-pod-identity-association', '--endpoint-url', server.apiUrl, '--cluster-name', 'demo', '--namespace', 'ci', '--service-account', serviceAccount, '--role-arn', 'arn:aws:iam::111122223333:role/ci', '--output', 'json'],
        { env: env(), allowFailure },
      );
    const wide = (JSON.parse((await create('*')).stdout) as { association: { associationId: string; serviceAccount: string } }).association;
    const builds = (JSON.parse((await create('build-*')).stdout) as { association: { associationId: string; serviceAccount: string } }).association;
    assert.deepEqual([wide.serviceAccount, builds.serviceAccount], ['*', 'build-*']);
    const applies = async (serviceAccount: string) => {
      const listed = await runAwsCli(
        ['eks', 'list-pod-identity-associations', '--endpoint-url', server.apiUrl, '--cluster-name', 'demo', '--namespace', 'ci', '--service-account', serviceAccount, '--query', 'associations[].associationId', '--output', 'json'],
        { env: env() },
      );
      return JSON.parse(listed.stdout) as string[];
    };
    assert.deepEqual(await applies('build-9'), [builds.associationId]);
    assert.deepEqual(await applies('deploy'), [wide.associationId]);
    const duplicate = await create('build-*', true);
    assert.notEqual(duplicate.code, 0);
    assert.match(duplicate.stderr, /ResourceInUseException/);
  });

  test('list-clusters and describe-cluster discover the configured clusters, with the issuer as identity.oidc.issuer', async () => {
    const listed = await runAwsCli(['eks', 'list-clusters', '--endpoint-url', server.apiUrl, '--output', 'json'], { env: env() });
    assert.deepEqual(JSON.parse(listed.stdout), { clusters: ['demo'] });

    const described = await runAwsCli(['eks', 'describe-cluster', '--endpoint-url', server.apiUrl, '--name', 'demo', '--output', 'json'], { env: env() });
    const cluster = (JSON.parse(described.stdout) as { cluster: { name: string; arn: string; status: string; identity: { oidc: { issuer: string } } } }).cluster;
    assert.equal(cluster.name, 'demo');
    assert.equal(cluster.arn, 'arn:aws:eks:us-east-1:000000000000:cluster/demo');
    assert.equal(cluster.status, 'ACTIVE');
    assert.equal(cluster.identity.oidc.issuer, 'https://kubernetes.default.svc');
    const query = await runAwsCli(['eks', 'describe-cluster', '--endpoint-url', server.apiUrl, '--name', 'demo', '--query', 'cluster.identity.oidc.issuer', '--output', 'text'], { env: env() });
    assert.equal(query.stdout.trim(), 'https://kubernetes.default.svc');

    const missing = await runAwsCli(['eks', 'describe-cluster', '--endpoint-url', server.apiUrl, '--name', 'nope'], { env: env(), allowFailure: true });
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /ResourceNotFoundException/);
  });
});
