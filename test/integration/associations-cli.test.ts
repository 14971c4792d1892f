// `pod-identity associations …` against a running server, as an operator types it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { ADMIN, CLI, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const run = promisify(execFile);
let server: ServerProcess;

before(async () => {
  server = await startServerProcess();
});
after(async () => {
  await server?.stop();
});

function cli(args: string[], env: Record<string, string> = {}) {
  return run(process.execPath, [CLI, 'associations', ...args, '--cluster-name', 'demo', '--endpoint', server.apiUrl], {
    env: { ...process.env, AWS_ACCESS_KEY_ID: ADMIN.accessKeyId, AWS_SECRET_ACCESS_KEY: ADMIN.secretAccessKey, AWS_REGION: 'us-east-1', ...env },
  });
}

test('create, list (json and table), update, describe and delete from the shell', async () => {
  const created = JSON.parse(
    (await cli(['create', '--namespace', 'shop', '--service-account', 'cart', '--role-arn', 'arn:aws:iam::111122223333:role/cart', '--tag', 'team=shop'])).stdout,
  ) as { association: { associationId: string; tags: Record<string, string> } };
  const id = created.association.associationId;
  assert.match(id, /^a-[a-z0-9]{17}$/);
  assert.deepEqual(created.association.tags, { team: 'shop' });

  const listed = JSON.parse((await cli(['list'])).stdout) as { associations: { associationId: string }[] };
  assert.deepEqual(listed.associations.map((a) => a.associationId), [id]);
  const table = (await cli(['list', '--output', 'table'])).stdout;
  assert.match(table, /^ASSOCIATIONID\s+NAMESPACE\s+SERVICEACCOUNT\s+ROLE\s+AGE\n/);
  assert.match(table, new RegExp(`${id}\\s+shop\\s+cart\\s+arn:aws:iam::111122223333:role/cart\\s+\\d+s\\n`));
  assert.equal((await cli(['list', '-o', 'table', '-n', 'nobody'])).stdout, 'no associations in cluster demo for namespace nobody\n');

  const updated = JSON.parse((await cli(['update', '--association-id', id, '--role-arn', 'arn:aws:iam::111122223333:role/cart-v2'])).stdout) as {
    association: { roleArn: string };
  };
  assert.equal(updated.association.roleArn, 'arn:aws:iam::111122223333:role/cart-v2');
  const described = JSON.parse((await cli(['describe', '--association-id', id])).stdout) as { association: { roleArn: string } };
  assert.equal(described.association.roleArn, 'arn:aws:iam::111122223333:role/cart-v2');
  await cli(['delete', '--association-id', id]);

  await assert.rejects(cli(['describe', '--association-id', id]), (error: { code: number; stderr: string }) => {
    assert.equal(error.code, 1);
    assert.match(error.stderr, /^pod-identity associations: ResourceNotFoundException: /);
    return true;
  });
});

test('keys from flags; a wrong key is a clear error', async () => {
  await assert.rejects(cli(['list', '--access-key-id', ADMIN.accessKeyId, '--secret-access-key', 'nope']), (error: { stderr: string }) => {
    assert.match(error.stderr, /InvalidSignatureException/);
    return true;
  });
  const ok = await cli(['list', '--access-key-id', ADMIN.accessKeyId, '--secret-access-key', ADMIN.secretAccessKey], { AWS_SECRET_ACCESS_KEY: 'ignored' });
  assert.ok(Array.isArray((JSON.parse(ok.stdout) as { associations: unknown[] }).associations));
});

test('patterns, session tags, a session name template and non-transitive tags from the shell', async () => {
  type Shown = { association: { associationId: string; serviceAccount: string; sessionTags?: Record<string, string>; sessionNameTemplate?: string; transitiveSessionTags?: boolean } };
  const created = JSON.parse(
    (
      await cli([
        'create',
        '-n',
        'ci',
        '-s',
        'build-*',
        '--role-arn',
        'arn:aws:iam::111122223333:role/ci',
        '--session-tag',
        'team={{pod.labels.team}}',
        '--session-tag',
        'cost-center=cc-42',
        '--session-name-template',
        'ci-{pod}-{random}',
        '--no-transitive-session-tags',
      ])
    ).stdout,
  ) as Shown;
  const id = created.association.associationId;
  assert.equal(created.association.serviceAccount, 'build-*');
  assert.deepEqual(created.association.sessionTags, { team: '{{pod.labels.team}}', 'cost-center': 'cc-42' });
  assert.equal(created.association.sessionNameTemplate, 'ci-{pod}-{random}');
  assert.equal(created.association.transitiveSessionTags, false);

  // the association that applies to one service account, by name
  const applies = JSON.parse((await cli(['list', '-n', 'ci', '-s', 'build-42'])).stdout) as { associations: { associationId: string }[] };
  assert.deepEqual(applies.associations.map((a) => a.associationId), [id]);
  assert.match((await cli(['describe', '--association-id', id, '-o', 'table'])).stdout, /ci-\{pod\}-\{random\}\s+false/);

  const updated = JSON.parse((await cli(['update', '--association-id', id, '--no-session-tags', '--session-name-template', '', '--transitive-session-tags', 'true'])).stdout) as Shown;
  for (const key of ['sessionTags', 'sessionNameTemplate', 'transitiveSessionTags'] as const) assert.equal(updated.association[key], undefined, key);
  const described = JSON.parse((await cli(['describe', '--association-id', id])).stdout) as Shown;
  assert.equal(described.association.sessionTags, undefined);

  await assert.rejects(cli(['create', '-n', 'ci', '-s', 'x', '--role-arn', 'arn:aws:iam::111122223333:role/ci', '--session-tag', 'kubernetes-namespace=x']), (error: { stderr: string }) => {
    assert.match(error.stderr, /^pod-identity associations: InvalidParameterException: sessionTags key "kubernetes-namespace" is one of the six EKS session tags/);
    return true;
  });
  await cli(['delete', '--association-id', id]);
});
