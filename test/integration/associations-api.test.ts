// The EKS association API driven by the real AWS SDK client (@aws-sdk/client-eks)
// against a started `pod-identity server` process.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CreatePodIdentityAssociationCommand,
  DeletePodIdentityAssociationCommand,
  DescribePodIdentityAssociationCommand,
  EKSClient,
  ListPodIdentityAssociationsCommand,
  paginateListPodIdentityAssociations,
  UpdatePodIdentityAssociationCommand,
} from '@aws-sdk/client-eks';
import { signRequest } from '../../src/lib/sigv4.js';
import { rejectsWith } from '../helpers/aws-errors.js';
import { ADMIN, NODE, startServerProcess, writeUnusedJwks, type ServerProcess } from '../helpers/server-process.js';

const ROLE = 'arn:aws:iam::111122223333:role/app-role';
const TARGET = 'arn:aws:iam::444455556666:role/target-role';

function eks(server: ServerProcess, credentials = ADMIN): EKSClient {
  return new EKSClient({ endpoint: server.apiUrl, region: 'us-east-1', credentials: { ...credentials }, maxAttempts: 1 });
}

describe('EKS association API with @aws-sdk/client-eks', () => {
  let server: ServerProcess;
  let client: EKSClient;
  let jwksDir: string;
  before(async () => {
    jwksDir = mkdtempSync(join(tmpdir(), 'associations-api-'));
    const jwksFile = writeUnusedJwks(join(jwksDir, 'jwks.json'));
    server = await startServerProcess({ config: { clusters: [{ name: 'demo', jwksFile }, { name: 'other', jwksFile }] } });
    client = eks(server);
  });
  after(async () => {
    client?.destroy();
    await server?.stop();
    if (jwksDir) rmSync(jwksDir, { recursive: true, force: true });
  });

  test('create, describe, update, list and delete', async () => {
    const created = await client.send(
      new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'team-a', serviceAccount: 'app', roleArn: ROLE, tags: { team: 'a', env: '' } }),
    );
    const a = created.association!;
    assert.match(a.associationId!, /^a-[a-z0-9]{17}$/);
    assert.equal(a.associationArn, `arn:aws:eks:us-east-1:000000000000:podidentityassociation/demo/${a.associationId}`);
    assert.equal(a.clusterName, 'demo');
    assert.equal(a.namespace, 'team-a');
    assert.equal(a.serviceAccount, 'app');
    assert.equal(a.roleArn, ROLE);
    assert.deepEqual(a.tags, { team: 'a', env: '' });
    assert.equal(a.disableSessionTags, false);
    assert.ok(a.createdAt instanceof Date && Math.abs(a.createdAt.getTime() - Date.now()) < 60_000);

    const described = await client.send(new DescribePodIdentityAssociationCommand({ clusterName: 'demo', associationId: a.associationId }));
    assert.deepEqual(described.association, a);

    const updated = await client.send(
      new UpdatePodIdentityAssociationCommand({ clusterName: 'demo', associationId: a.associationId, targetRoleArn: TARGET, disableSessionTags: true, policy: '{"Version":"2012-10-17","Statement":[]}' }),
    );
    assert.equal(updated.association!.targetRoleArn, TARGET);
    assert.match(updated.association!.externalId!, /^[0-9a-f-]{36}$/);
    assert.equal(updated.association!.disableSessionTags, true);
    assert.ok(updated.association!.modifiedAt!.getTime() >= a.createdAt!.getTime());

    const cleared = await client.send(new UpdatePodIdentityAssociationCommand({ clusterName: 'demo', associationId: a.associationId, targetRoleArn: '' }));
    assert.equal(cleared.association!.targetRoleArn, undefined);
    assert.equal(cleared.association!.externalId, undefined);

    const listed = await client.send(new ListPodIdentityAssociationsCommand({ clusterName: 'demo', namespace: 'team-a' }));
    assert.deepEqual(listed.associations, [
      { clusterName: 'demo', namespace: 'team-a', serviceAccount: 'app', associationArn: a.associationArn, associationId: a.associationId },
    ]);

    const deleted = await client.send(new DeletePodIdentityAssociationCommand({ clusterName: 'demo', associationId: a.associationId }));
    assert.equal(deleted.association!.associationId, a.associationId);
    await rejectsWith(client.send(new DescribePodIdentityAssociationCommand({ clusterName: 'demo', associationId: a.associationId })), 'ResourceNotFoundException', 404);
  });

  test('an EKS client that sends none of the new fields sees EKS\'s shapes unchanged; the extension fields travel in the same operations', async () => {
    /** PodIdentityAssociation's members in EKS's model (ownerArn, targetRoleArn, externalId and policy only when set) */
    const EKS_MEMBERS = ['associationArn', 'associationId', 'clusterName', 'createdAt', 'disableSessionTags', 'modifiedAt', 'namespace', 'roleArn', 'serviceAccount', 'tags'];
    const signed = async (method: string, path: string, body?: object) => {
      const url = new URL(`${server.apiUrl}${path}`);
      const text = body && JSON.stringify(body);
      const headers = await signRequest({ method, url, ...(text && { body: text, headers: { 'content-type': 'application/json' } }) }, { credentials: ADMIN, region: 'us-east-1', service: 'eks' });
      const res = await fetch(url, { method, headers, ...(text && { body: text }) });
      return { status: res.status, json: (await res.json()) as Record<string, Record<string, unknown>> };
    };
    const made = (await client.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'shapes', serviceAccount: 'plain', roleArn: ROLE }))).association!;
    const raw = await signed('GET', `/clusters/demo/pod-identity-associations/${made.associationId}`);
    assert.deepEqual(Object.keys(raw.json.association!).sort(), EKS_MEMBERS);
    const updated = await signed('POST', `/clusters/demo/pod-identity-associations/${made.associationId}`, { roleArn: TARGET });
    assert.deepEqual(Object.keys(updated.json.association!).sort(), EKS_MEMBERS);
    const listed = await signed('GET', '/clusters/demo/pod-identity-associations?namespace=shapes');
    assert.deepEqual(Object.keys(listed.json).sort(), ['associations']);
    assert.deepEqual(Object.keys((listed.json.associations as unknown as object[])[0]!).sort(), ['associationArn', 'associationId', 'clusterName', 'namespace', 'serviceAccount']);

    // A pattern goes through the SDK as it is, in the existing fields; our extension fields go in the same body.
    const pattern = (await client.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'shapes', serviceAccount: 'build-*', roleArn: ROLE }))).association!;
    assert.equal(pattern.serviceAccount, 'build-*');
    const extended = await signed('POST', '/clusters/demo/pod-identity-associations', {
      namespace: 'shapes',
      serviceAccount: 'job-*',
      roleArn: ROLE,
      sessionTags: { team: '{{pod.labels.team}}' },
      sessionNameTemplate: '{namespace}-{pod}-{random}',
      transitiveSessionTags: false,
    });
    assert.equal(extended.status, 200);
    const id = extended.json.association!.associationId as string;
    const described = await signed('GET', `/clusters/demo/pod-identity-associations/${id}`);
    assert.deepEqual(
      [described.json.association!.sessionTags, described.json.association!.sessionNameTemplate, described.json.association!.transitiveSessionTags],
      [{ team: '{{pod.labels.team}}' }, '{namespace}-{pod}-{random}', false],
    );
    // the SDK reads such an association too, and ignores what its model does not know
    const viaSdk = (await client.send(new DescribePodIdentityAssociationCommand({ clusterName: 'demo', associationId: id }))).association!;
    assert.equal(viaSdk.serviceAccount, 'job-*');
    // a list for one service account by name answers the association that applies to it
    const applies = await client.send(new ListPodIdentityAssociationsCommand({ clusterName: 'demo', namespace: 'shapes', serviceAccount: 'build-17' }));
    assert.deepEqual(applies.associations?.map((a) => a.associationId), [pattern.associationId]);
    await rejectsWith(client.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'shapes', serviceAccount: 'build-*', roleArn: ROLE })), 'ResourceInUseException', 409);
    const cleared = await signed('POST', `/clusters/demo/pod-identity-associations/${id}`, { sessionTags: {}, sessionNameTemplate: '', transitiveSessionTags: true });
    assert.deepEqual(Object.keys(cleared.json.association!).sort(), EKS_MEMBERS);
  });

  test('paginates 250 associations in pages of 50, with a namespace filter', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 250; i += 25) {
      const batch = await Promise.all(
        Array.from({ length: 25 }, (_, j) =>
          client.send(new CreatePodIdentityAssociationCommand({ clusterName: 'other', namespace: (i + j) % 5 === 0 ? 'five' : 'rest', serviceAccount: `sa-${i + j}`, roleArn: ROLE })),
        ),
      );
      for (const r of batch) ids.add(r.association!.associationId!);
    }
    const seen: string[] = [];
    let pages = 0;
    for await (const page of paginateListPodIdentityAssociations({ client, pageSize: 50 }, { clusterName: 'other' })) {
      pages += 1;
      assert.ok(page.associations!.length <= 50);
      seen.push(...page.associations!.map((s) => s.associationId!));
    }
    assert.equal(pages, 5);
    assert.equal(seen.length, 250);
    assert.deepEqual(new Set(seen), ids);
    assert.deepEqual(seen, [...seen].sort(), 'stable order');

    const five: string[] = [];
    for await (const page of paginateListPodIdentityAssociations({ client, pageSize: 20 }, { clusterName: 'other', namespace: 'five' })) {
      five.push(...page.associations!.map((s) => s.namespace!));
    }
    assert.equal(five.length, 50);
    assert.ok(five.every((ns) => ns === 'five'));

    await rejectsWith(client.send(new ListPodIdentityAssociationsCommand({ clusterName: 'other', nextToken: 'not-a-token' })), 'InvalidParameterException', 400);
    await rejectsWith(client.send(new ListPodIdentityAssociationsCommand({ clusterName: 'other', maxResults: 101 })), 'InvalidParameterException', 400);
  });

  test('duplicate, unknown, invalid and idempotent requests', async () => {
    const input = { clusterName: 'demo', namespace: 'dup', serviceAccount: 'app', roleArn: ROLE };
    const first = await client.send(new CreatePodIdentityAssociationCommand(input));
    await rejectsWith(client.send(new CreatePodIdentityAssociationCommand(input)), 'ResourceInUseException', 409);
    await rejectsWith(client.send(new DescribePodIdentityAssociationCommand({ clusterName: 'demo', associationId: 'a-0000000000000000x' })), 'ResourceNotFoundException', 404);
    await rejectsWith(client.send(new ListPodIdentityAssociationsCommand({ clusterName: 'nope' })), 'ResourceNotFoundException', 404);
    await rejectsWith(client.send(new CreatePodIdentityAssociationCommand({ ...input, serviceAccount: 'x', roleArn: 'arn:aws:iam::1:user/bob' })), 'InvalidParameterException', 400);
    await rejectsWith(client.send(new CreatePodIdentityAssociationCommand({ ...input, namespace: 'Bad_Namespace' })), 'InvalidParameterException', 400);
    await rejectsWith(client.send(new CreatePodIdentityAssociationCommand({ ...input, serviceAccount: 'p', policy: '{}' })), 'InvalidParameterException', 400);
    await rejectsWith(client.send(new CreatePodIdentityAssociationCommand({ ...input, serviceAccount: 'p', disableSessionTags: true, policy: 'not json' })), 'InvalidParameterException', 400);
    await rejectsWith(client.send(new CreatePodIdentityAssociationCommand({ ...input, serviceAccount: 't', tags: { 'aws:x': 'y' } })), 'InvalidParameterException', 400);
    await rejectsWith(
      client.send(new CreatePodIdentityAssociationCommand({ ...input, serviceAccount: 't', tags: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v'])) })),
      'InvalidParameterException',
      400,
    );

    const token = 'retry-token-1';
    const once = await client.send(new CreatePodIdentityAssociationCommand({ ...input, serviceAccount: 'idem', clientRequestToken: token }));
    const twice = await client.send(new CreatePodIdentityAssociationCommand({ ...input, serviceAccount: 'idem', clientRequestToken: token }));
    assert.equal(twice.association!.associationId, once.association!.associationId);
    await rejectsWith(client.send(new CreatePodIdentityAssociationCommand({ ...input, serviceAccount: 'idem2', clientRequestToken: token })), 'InvalidRequestException', 400);
    assert.ok(first.association);
  });

  test('unsigned, wrong-secret and node-key calls are 403', async () => {
    const unsigned = await fetch(`${server.apiUrl}/clusters/demo/pod-identity-associations`);
    assert.equal(unsigned.status, 403);
    assert.equal(unsigned.headers.get('x-amzn-errortype'), 'MissingAuthenticationTokenException');
    assert.deepEqual(Object.keys((await unsigned.json()) as object).sort(), ['__type', 'message']);

    const wrong = eks(server, { accessKeyId: ADMIN.accessKeyId, secretAccessKey: 'wrong' });
    await rejectsWith(wrong.send(new ListPodIdentityAssociationsCommand({ clusterName: 'demo' })), 'InvalidSignatureException', 403);
    const node = eks(server, NODE);
    await rejectsWith(node.send(new ListPodIdentityAssociationsCommand({ clusterName: 'demo' })), 'UnrecognizedClientException', 403);
    const stranger = eks(server, { accessKeyId: 'AKIANOBODY', secretAccessKey: 'x' });
    await rejectsWith(stranger.send(new ListPodIdentityAssociationsCommand({ clusterName: 'demo' })), 'UnrecognizedClientException', 403);

    // A signature made 10 minutes ago is refused (clock skew limit 5 minutes).
    const url = new URL(`${server.apiUrl}/clusters/demo/pod-identity-associations`);
    const headers = await signRequest({ method: 'GET', url }, { credentials: ADMIN, region: 'us-east-1', service: 'eks', now: new Date(Date.now() - 10 * 60_000) });
    const skewed = await fetch(url, { headers });
    assert.equal(skewed.status, 403);
    assert.equal(skewed.headers.get('x-amzn-errortype'), 'InvalidSignatureException');
    // The same request signed now is accepted: the skew was the only fault.
    const fresh = await fetch(url, { headers: await signRequest({ method: 'GET', url }, { credentials: ADMIN, region: 'us-east-1', service: 'eks' }) });
    assert.equal(fresh.status, 200);
  });

  test('an oversized body is a clear 413, and the server keeps serving', async () => {
    const url = new URL(`${server.apiUrl}/clusters/demo/pod-identity-associations`);
    const body = JSON.stringify({ namespace: 'big', serviceAccount: 'big', roleArn: ROLE, policy: 'x'.repeat(200_000) });
    const headers = await signRequest({ method: 'POST', url, body, headers: { 'content-type': 'application/json' } }, { credentials: ADMIN, region: 'us-east-1', service: 'eks' });
    const res = await fetch(url, { method: 'POST', headers, body });
    assert.equal(res.status, 413);
    assert.equal(((await res.json()) as { __type: string }).__type, 'RequestEntityTooLargeException');
    const ok = await client.send(new ListPodIdentityAssociationsCommand({ clusterName: 'demo' }));
    assert.ok(Array.isArray(ok.associations));
  });

  test('50 concurrent creates of one service account: exactly one wins', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, () => client.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'race', serviceAccount: 'app', roleArn: ROLE }))),
    );
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(won.length, 1);
    assert.equal(lost.length, 49);
    assert.ok(lost.every((r) => (r.reason as Error).name === 'ResourceInUseException'));
    const listed = await client.send(new ListPodIdentityAssociationsCommand({ clusterName: 'demo', namespace: 'race' }));
    assert.equal(listed.associations!.length, 1);
  });
});

describe('associations.allowPatterns: false', () => {
  let server: ServerProcess;
  let jwksDir: string;
  before(async () => {
    jwksDir = mkdtempSync(join(tmpdir(), 'associations-no-patterns-'));
    server = await startServerProcess({ config: { clusters: [{ name: 'demo', jwksFile: writeUnusedJwks(join(jwksDir, 'jwks.json')) }], associations: { allowPatterns: false } } });
  });
  after(async () => {
    await server?.stop();
    if (jwksDir) rmSync(jwksDir, { recursive: true, force: true });
  });

  test('a pattern is InvalidParameterException; a name is created as ever', async () => {
    const client = eks(server);
    try {
      for (const [namespace, serviceAccount] of [['ci', 'build-*'], ['*', 'app']]) {
        const error = await rejectsWith(client.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace, serviceAccount, roleArn: ROLE })), 'InvalidParameterException', 400);
        assert.match(error.message, /allowPatterns is false/);
      }
      const made = await client.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'ci', serviceAccount: 'build-1', roleArn: ROLE }));
      assert.equal(made.association!.serviceAccount, 'build-1');
    } finally {
      client.destroy();
    }
  });
});

describe('durability', () => {
  test('associations survive SIGKILL and a restart on the same data directory', async () => {
    const first = await startServerProcess();
    const client = eks(first);
    const created: string[] = [];
    try {
      for (let i = 0; i < 20; i++) {
        const r = await client.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'crash', serviceAccount: `sa-${i}`, roleArn: ROLE }));
        created.push(r.association!.associationId!);
      }
    } finally {
      await first.kill();
      client.destroy();
    }
    const second = await startServerProcess({ dataDir: first.dataDir });
    const again = eks(second);
    try {
      const listed = await again.send(new ListPodIdentityAssociationsCommand({ clusterName: 'demo' }));
      assert.deepEqual(listed.associations!.map((s) => s.associationId).sort(), created.sort());
    } finally {
      again.destroy();
      await second.stop();
      first.remove();
    }
  });

  test('SIGKILL during 200 concurrent creates: after a restart every acknowledged create is there once, and retried tokens answer what committed', async (t) => {
    const first = await startServerProcess();
    const client = eks(first);
    const COUNT = 200;
    const killAt = 40;
    const inputs = Array.from({ length: COUNT }, (_, i) => ({ clusterName: 'demo', namespace: 'burst', serviceAccount: `sa-${i}`, roleArn: ROLE, clientRequestToken: randomUUID() }));
    const acknowledged = new Map<string, string>(); // serviceAccount → associationId
    let killing: Promise<void> | undefined;
    const outcomes = await Promise.allSettled(
      inputs.map(async (input) => {
        const out = await client.send(new CreatePodIdentityAssociationCommand(input));
        acknowledged.set(input.serviceAccount, out.association!.associationId!);
        if (acknowledged.size === killAt) killing = first.kill();
      }),
    );
    await killing;
    client.destroy();
    assert.ok(killing, 'the server was killed mid-burst');
    const failed = inputs.filter((_, i) => outcomes[i]!.status === 'rejected');
    assert.ok(failed.length > 0, 'some creates were cut off by the kill');

    const second = await startServerProcess({ dataDir: first.dataDir });
    const again = eks(second);
    const listAll = async () => {
      const out = new Map<string, string>();
      for await (const page of paginateListPodIdentityAssociations({ client: again }, { clusterName: 'demo', namespace: 'burst' })) {
        for (const s of page.associations ?? []) {
          assert.ok(!out.has(s.serviceAccount!), `one association for ${s.serviceAccount}`);
          out.set(s.serviceAccount!, s.associationId!);
        }
      }
      return out;
    };
    try {
      const listed = await listAll();
      for (const [serviceAccount, id] of acknowledged) assert.equal(listed.get(serviceAccount), id, `acknowledged ${serviceAccount} survived`);
      t.diagnostic(`acknowledged ${acknowledged.size}/${COUNT}; cut off by the kill ${failed.length}, of which committed ${failed.filter((i) => listed.has(i.serviceAccount)).length}`);
      // Clients retry what failed with the same request tokens: a create that committed before the kill answers its association.
      for (const input of failed) {
        const out = await again.send(new CreatePodIdentityAssociationCommand(input));
        const committed = listed.get(input.serviceAccount);
        if (committed) assert.equal(out.association!.associationId, committed, `retry of committed ${input.serviceAccount} answers the same association`);
      }
      const final = await listAll();
      assert.equal(final.size, COUNT);
      for (const [serviceAccount, id] of acknowledged) assert.equal(final.get(serviceAccount), id);
    } finally {
      again.destroy();
      await second.stop();
      first.remove();
    }
  });

  test('SIGTERM exits cleanly with code 0', async () => {
    const server = await startServerProcess();
    assert.equal(await server.stop(), 0);
    assert.match(server.logs(), /server stopped/);
  });
});
