// Several `pod-identity server` processes on one PostgreSQL database: what one
// replica writes, every other one serves (EKS API, EKS Auth, admission
// webhook) — within a second even where it caches, through the store's
// change feed — and a
// replica killed with SIGKILL in the middle of a burst of creates loses no
// create it acknowledged and leaves no duplicates.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, test } from 'node:test';
import {
  CreatePodIdentityAssociationCommand,
  DeletePodIdentityAssociationCommand,
  DescribePodIdentityAssociationCommand,
  EKSClient,
  paginateListPodIdentityAssociations,
  UpdatePodIdentityAssociationCommand,
  type PodIdentityAssociationSummary,
} from '@aws-sdk/client-eks';
import { eventually } from '../helpers/eventually.js';
import { signRequest } from '../../src/lib/sigv4.js';
import { jwksOf, podClaims, TEST_ISSUER, testSigner, type TestSigner } from '../helpers/sa-tokens.js';
import { ADMIN, NODE, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { postgresSkip, startPostgres, type PostgresPeer } from '../peers/postgres.js';

const ROLE = 'arn:aws:iam::111122223333:role/app-role';

function eks(server: ServerProcess): EKSClient {
  return new EKSClient({ endpoint: server.apiUrl, region: 'us-east-1', credentials: { ...ADMIN }, maxAttempts: 1 });
}

async function listAll(client: EKSClient, namespace?: string): Promise<PodIdentityAssociationSummary[]> {
  const out: PodIdentityAssociationSummary[] = [];
  for await (const page of paginateListPodIdentityAssociations({ client }, { clusterName: 'demo', namespace })) out.push(...(page.associations ?? []));
  return out;
}

/** AssumeRoleForPodIdentity on a replica, signed as a node: the HTTP status and the parsed body. */
async function assumeRole(server: ServerProcess, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const url = new URL(`${server.apiUrl}/clusters/demo/assume-role-for-pod-identity`);
  const body = JSON.stringify({ token });
  const headers = await signRequest(
    { method: 'POST', url, headers: { 'content-type': 'application/json' }, body },
    { credentials: { ...NODE }, region: 'us-east-1', service: 'eks-auth' },
  );
  const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** POSTs an AdmissionReview for a pod to a replica's webhook (self-signed certificate) and answers the decoded JSON patch, if any. */
function admit(server: ServerProcess, namespace: string, serviceAccountName: string): Promise<{ op: string; path: string }[] | undefined> {
  const review = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: randomUUID(),
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      operation: 'CREATE',
      namespace,
      object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace }, spec: { serviceAccountName, containers: [{ name: 'app', image: 'busybox' }] } },
    },
  };
  const body = JSON.stringify(review);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${server.webhookUrl}/mutate`,
      { method: 'POST', rejectUnauthorized: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: 5000 },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => {
          try {
            const answer = JSON.parse(text) as { response: { uid: string; allowed: boolean; patch?: string } };
            assert.equal(answer.response.uid, review.request.uid);
            assert.equal(answer.response.allowed, true);
            resolve(answer.response.patch ? (JSON.parse(Buffer.from(answer.response.patch, 'base64').toString('utf8')) as { op: string; path: string }[]) : undefined);
          } catch (error) {
            reject(error instanceof Error ? error : new Error(String(error)));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('webhook timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

describe('server replicas on one PostgreSQL database', { skip: postgresSkip() }, () => {
  let pg: PostgresPeer;
  let databaseUrl: string;
  let signer: TestSigner;
  let dir: string;
  let jwksFile: string;
  const replicas: ServerProcess[] = [];
  const clients: EKSClient[] = [];
  const replica = async () => {
    const server = await startServerProcess({ config: { databaseUrl, clusters: [{ name: 'demo', issuer: TEST_ISSUER, jwksFile }] } });
    replicas.push(server);
    const client = eks(server);
    clients.push(client);
    return { server, client };
  };

  before(async () => {
    pg = await startPostgres();
    databaseUrl = await pg.createDatabase();
    signer = await testSigner();
    dir = mkdtempSync(join(tmpdir(), 'replicas-test-'));
    jwksFile = join(dir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify(jwksOf(signer)));
  });
  after(async () => {
    for (const client of clients) client.destroy();
    for (const server of replicas) await server.kill();
    await pg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('what one replica writes, the other serves at once: EKS API, EKS Auth and admission webhook', async (t) => {
    const [a, b] = await Promise.all([replica(), replica()]);
    assert.doesNotMatch(a.server.logs() + b.server.logs(), new RegExp(new URL(databaseUrl).password), 'the database password is never logged');
    const token = await signer.sign(podClaims({ namespace: 'shop', serviceAccount: 'checkout' }));

    assert.equal(await admit(b.server, 'shop', 'checkout'), undefined, 'no association yet: no patch');
    // Replica b now remembers "no association" for this service account (its EKS Auth cache).
    const before = await assumeRole(b.server, token);
    assert.equal(before.status, 404);
    assert.equal(before.body.__type, 'ResourceNotFoundException');
    const created = (await a.client.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'shop', serviceAccount: 'checkout', roleArn: ROLE }))).association!;
    const createdAt = Date.now();
    // The change feed must reach b's cache within a second.
    let answered = await eventually(
      "the new association in replica b's EKS Auth",
      async () => {
        const answer = await assumeRole(b.server, token);
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        return answer;
      },
      { timeoutMs: 1000, intervalMs: 20 },
    );
    t.diagnostic(`replica b's EKS Auth answered for the new association ${Date.now() - createdAt} ms after replica a created it`);
    assert.deepEqual(answered.body.podIdentityAssociation, { associationArn: created.associationArn, associationId: created.associationId });
    assert.deepEqual(answered.body.subject, { namespace: 'shop', serviceAccount: 'checkout' });
    const described = (await b.client.send(new DescribePodIdentityAssociationCommand({ clusterName: 'demo', associationId: created.associationId }))).association;
    assert.deepEqual(described, created);
    assert.deepEqual(
      (await listAll(b.client)).map((s) => s.associationId),
      [created.associationId],
    );
    // The next pod admitted by the other replica is mutated.
    const patch = await admit(b.server, 'shop', 'checkout');
    assert.ok(patch, 'replica b mutates the pod');
    assert.ok(patch.some((op) => op.path.startsWith('/spec/volumes')), JSON.stringify(patch));

    const updated = (await b.client.send(new UpdatePodIdentityAssociationCommand({ clusterName: 'demo', associationId: created.associationId, roleArn: 'arn:aws:iam::111122223333:role/v2' })))
      .association!;
    assert.equal((await a.client.send(new DescribePodIdentityAssociationCommand({ clusterName: 'demo', associationId: created.associationId }))).association!.roleArn, updated.roleArn);

    // A second create of the same subject through the other replica is refused.
    await assert.rejects(
      b.client.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'shop', serviceAccount: 'checkout', roleArn: ROLE })),
      (error: Error) => error.name === 'ResourceInUseException',
    );

    // b answers (and caches) the association; then a deletes it.
    assert.equal((await assumeRole(b.server, token)).status, 200);
    await a.client.send(new DeletePodIdentityAssociationCommand({ clusterName: 'demo', associationId: created.associationId }));
    const deletedAt = Date.now();
    await assert.rejects(
      b.client.send(new DescribePodIdentityAssociationCommand({ clusterName: 'demo', associationId: created.associationId })),
      (error: Error) => error.name === 'ResourceNotFoundException',
    );
    assert.equal(await admit(b.server, 'shop', 'checkout'), undefined, 'deleted: the next pod is not mutated');
    // The delete made through a reaches b's EKS Auth cache within a second.
    await eventually(
      'the delete reached replica b',
      async () => {
        answered = await assumeRole(b.server, token);
        return answered.status !== 200;
      },
      { timeoutMs: 1000 - (Date.now() - deletedAt), intervalMs: 20 },
    );
    assert.equal(answered.status, 404, 'the delete reached replica b within a second');
  });

  test('SIGKILL of a replica during 200 concurrent creates: every acknowledged create survives, no duplicates', async (t) => {
    const survivor = await replica();
    const victim = await replica();
    const COUNT = 200;
    const inputs = Array.from({ length: COUNT }, (_, i) => ({
      clusterName: 'demo',
      namespace: 'burst',
      serviceAccount: `sa-${i}`,
      roleArn: ROLE,
      clientRequestToken: randomUUID(),
    }));
    const acknowledged = new Map<string, string>(); // serviceAccount → associationId
    let killedAfter = -1;
    const killAt = 40;
    let killing: Promise<void> | undefined;
    // Half of the creates go to the replica that dies, half to the one that stays.
    const outcomes = await Promise.allSettled(
      inputs.map(async (input, i) => {
        const target = i % 2 === 0 ? victim : survivor;
        const out = await target.client.send(new CreatePodIdentityAssociationCommand(input));
        acknowledged.set(input.serviceAccount, out.association!.associationId!);
        if (acknowledged.size === killAt && !killing) {
          killedAfter = acknowledged.size;
          killing = victim.server.kill();
        }
      }),
    );
    await killing;
    assert.ok(killedAfter === killAt, 'the victim was killed mid-burst');
    const failed = inputs.filter((_, i) => outcomes[i]!.status === 'rejected');
    assert.ok(failed.length > 0, 'some creates were cut off by the kill');
    assert.ok(failed.every((input) => inputs.indexOf(input) % 2 === 0), 'only creates sent to the killed replica failed');

    // Every acknowledged create is in the database, seen through the survivor.
    let listed = await listAll(survivor.client, 'burst');
    const byServiceAccount = new Map(listed.map((s) => [s.serviceAccount!, s.associationId!]));
    for (const [serviceAccount, id] of acknowledged) assert.equal(byServiceAccount.get(serviceAccount), id, `acknowledged ${serviceAccount} is present`);
    assert.equal(new Set(listed.map((s) => s.associationId)).size, listed.length, 'no duplicate ids');
    assert.equal(new Set(listed.map((s) => s.serviceAccount)).size, listed.length, 'no duplicate subjects');

    // Clients retry what failed against the survivor with the same request tokens:
    // a create that committed before the kill answers the same association.
    const committedUnacknowledged = failed.filter((input) => byServiceAccount.has(input.serviceAccount)).length;
    t.diagnostic(`acknowledged ${acknowledged.size}/${COUNT}; cut off by the kill ${failed.length}, of which committed ${committedUnacknowledged}`);
    for (const input of failed) {
      const committed = byServiceAccount.get(input.serviceAccount);
      const out = await survivor.client.send(new CreatePodIdentityAssociationCommand(input));
      if (committed) assert.equal(out.association!.associationId, committed, `retry of committed ${input.serviceAccount} answers the same association`);
    }
    listed = await listAll(survivor.client, 'burst');
    assert.equal(listed.length, COUNT);
    assert.deepEqual(new Set(listed.map((s) => s.serviceAccount)), new Set(inputs.map((i) => i.serviceAccount)));
    assert.equal(new Set(listed.map((s) => s.associationId)).size, COUNT);
    const final = new Map(listed.map((s) => [s.serviceAccount!, s.associationId!]));
    for (const [serviceAccount, id] of acknowledged) assert.equal(final.get(serviceAccount), id);
  });
});
