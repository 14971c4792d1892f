// Associations as Kubernetes resources, on a real kube-apiserver: the CRD from
// the Helm chart applied with kubectl, a `pod-identity server` with
// syncCrds watching it (its credentials from an exec plugin), and the EKS API
// (@aws-sdk/client-eks) as the judge of what the server's store holds. Then
// two replicas on one PostgreSQL database syncing the same cluster: one
// leads (a Lease), a deleted resource's association stays deleted, and
// leadership moves when the leader is killed or stops.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CreatePodIdentityAssociationCommand,
  DeletePodIdentityAssociationCommand,
  EKSClient,
  ListPodIdentityAssociationsCommand,
  DescribePodIdentityAssociationCommand,
  ListTagsForResourceCommand,
  TagResourceCommand,
  UntagResourceCommand,
  type PodIdentityAssociation,
} from '@aws-sdk/client-eks';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { eventually, type Check } from '../helpers/eventually.js';
import { ADMIN, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { signRequest } from '../../src/lib/sigv4.js';
import { kubeApiClient, kubeBinary, kubeMissingReason, startKubeControlPlane, writeExecKubeconfig, type ExecKubeconfig, type KubeControlPlane } from '../peers/kube.js';
import { postgresSkip, startPostgres, type PostgresPeer } from '../peers/postgres.js';
import { requirePeer } from '../peers/require.js';

const CRD = resolve('deploy/helm/pod-identity/crds/podidentityassociations.yaml');
const ROLE = 'arn:aws:iam::111122223333:role/app-role';

interface Condition {
  type: string;
  status: string;
  reason: string;
  lastTransitionTime: string;
  message: string;
  observedGeneration?: number;
}
interface Resource {
  metadata: { name: string; namespace: string; uid: string; generation: number };
  status?: { associationId?: string; associationArn?: string; observedGeneration?: number; conditions?: Condition[] };
}

function runKubectl(kube: KubeControlPlane, args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(kubeBinary('kubectl'), ['--kubeconfig', kube.kubeconfigPath, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });
}

async function runKubectlOk(kube: KubeControlPlane, args: string[], input?: string): Promise<string> {
  const result = await runKubectl(kube, args, input);
  assert.equal(result.code, 0, `kubectl ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

function manifest(name: string, namespace: string, spec: Record<string, unknown>): string {
  return stringify({ apiVersion: 'podidentity.dev/v1alpha1', kind: 'PodIdentityAssociation', metadata: { name, namespace }, spec });
}

/** The end of a server log, for a failure. */
function serverLog(logs: string): string {
  return `server log:\n${logs.slice(-3000)}`;
}

async function installCrd(kube: KubeControlPlane, namespaces: string[]): Promise<void> {
  await runKubectlOk(kube, ['apply', '-f', CRD]);
  await runKubectlOk(kube, ['wait', '--for=condition=Established', '--timeout=30s', 'crd/podidentityassociations.podidentity.dev']);
  for (const ns of namespaces) await runKubectlOk(kube, ['create', 'namespace', ns]);
}

describe('PodIdentityAssociation resources reconciled into the store', { skip: requirePeer('kube-apiserver', kubeMissingReason) }, () => {
  let kube: KubeControlPlane;
  let exec: ExecKubeconfig;
  let server: ServerProcess;
  let eks: EKSClient;
  /** the test's own, so that the store outlives a server's stop() (which removes the data directory it made itself) */
  const dataDir = mkdtempSync(join(tmpdir(), 'crd-sync-data-'));

  const kubectl = (args: string[], input?: string) => runKubectl(kube, args, input);
  const kubectlOk = (args: string[], input?: string) => runKubectlOk(kube, args, input);

  async function getResource(namespace: string, name: string): Promise<Resource> {
    return JSON.parse(await kubectlOk(['get', 'podidentityassociation', name, '-n', namespace, '-o', 'json'])) as Resource;
  }

  const ready = (r: Resource) => r.status?.conditions?.find((c) => c.type === 'Ready');

  const untilSynced = <T>(what: string, check: Check<T>, timeoutMs = 30_000) => eventually(what, check, { timeoutMs, context: () => serverLog(server?.logs() ?? '') });

  async function associationFor(namespace: string, serviceAccount: string): Promise<PodIdentityAssociation | undefined> {
    const listed = await eks.send(new ListPodIdentityAssociationsCommand({ clusterName: 'demo', namespace, serviceAccount }));
    const summary = listed.associations?.[0];
    if (!summary) return undefined;
    return (await eks.send(new DescribePodIdentityAssociationCommand({ clusterName: 'demo', associationId: summary.associationId }))).association;
  }

  async function startServer() {
    server = await startServerProcess({
      dataDir,
      // the reconciler's credentials come from an exec plugin
      config: { clusters: [{ name: 'demo', kubeconfig: exec.path, syncCrds: true }], audit: { file: auditFile } },
    });
  }
  const auditFile = join(dataDir, 'audit.jsonl');

  before(async () => {
    kube = await startKubeControlPlane();
    exec = writeExecKubeconfig(kube, 'crd-sync');
    // pod-identity: where the server's Lease lives when POD_NAMESPACE is unset (a kubeconfig file, not in-cluster)
    await installCrd(kube, ['shop', 'payments', 'pod-identity']);
    await startServer();
    eks = new EKSClient({ endpoint: server.apiUrl, region: 'us-east-1', credentials: { ...ADMIN }, maxAttempts: 1 });
  });
  after(async () => {
    eks?.destroy();
    await server?.stop();
    await kube?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('kubectl apply → the association appears through the EKS API and the status is filled; update follows', async () => {
    await kubectlOk(['apply', '-f', '-'], manifest('checkout', 'shop', { serviceAccount: 'checkout', roleArn: ROLE, tags: { team: 'shop' } }));
    const association = await untilSynced('association created', () => associationFor('shop', 'checkout'));
    assert.equal(association.roleArn, ROLE);
    assert.deepEqual(association.tags, { team: 'shop' });
    assert.equal(association.disableSessionTags, false);
    assert.match(association.ownerArn ?? '', /:podidentityassociationresource\/demo\/shop\/checkout\//, 'owned by the resource');

    const resource = await untilSynced('status filled', async () => {
      const r = await getResource('shop', 'checkout');
      return ready(r)?.status === 'True' ? r : undefined;
    });
    assert.equal(resource.status!.associationId, association.associationId);
    assert.equal(resource.status!.associationArn, association.associationArn);
    assert.equal(resource.status!.observedGeneration, resource.metadata.generation);
    assert.equal(ready(resource)!.reason, 'Synced');
    // The printer columns read the status.
    assert.match(await kubectlOk(['get', 'pia', '-n', 'shop']), new RegExp(`checkout\\s+${ROLE.replace(/[/:]/g, '.')}\\s+${association.associationId}\\s+True`));

    // A changed spec updates the same association.
    const target = 'arn:aws:iam::444455556666:role/target';
    await kubectlOk(['apply', '-f', '-'], manifest('checkout', 'shop', { serviceAccount: 'checkout', roleArn: ROLE, tags: { team: 'shop' }, targetRoleArn: target }));
    const updated = await untilSynced('association updated', async () => {
      const a = await associationFor('shop', 'checkout');
      return a?.targetRoleArn === target ? a : undefined;
    });
    assert.equal(updated.associationId, association.associationId);
    assert.match(updated.externalId ?? '', /^[0-9a-f-]{36}$/);
    await untilSynced('status follows the new generation', async () => {
      const r = await getResource('shop', 'checkout');
      return r.status?.observedGeneration === r.metadata.generation && ready(r)?.status === 'True' ? r : undefined;
    });
  });

  test('kubectl delete → the association is gone', async () => {
    await kubectlOk(['apply', '-f', '-'], manifest('short-lived', 'shop', { serviceAccount: 'short-lived', roleArn: ROLE }));
    const association = await untilSynced('association created', () => associationFor('shop', 'short-lived'));
    await kubectlOk(['delete', 'podidentityassociation', 'short-lived', '-n', 'shop']);
    await untilSynced('association deleted', async () => ((await associationFor('shop', 'short-lived')) ? undefined : true));
    await assert.rejects(
      eks.send(new DescribePodIdentityAssociationCommand({ clusterName: 'demo', associationId: association.associationId })),
      (e: Error) => e.name === 'ResourceNotFoundException',
    );
  });

  test('a service account pattern with session tags, a session name template and non-transitive tags: the schema takes them and the association carries them', async () => {
    await kubectlOk(
      ['apply', '-f', '-'],
      manifest('builds', 'shop', { serviceAccount: 'build-*', roleArn: ROLE, sessionTags: { team: '{{pod.labels.team}}' }, sessionNameTemplate: 'shop-{pod}-{random}', transitiveSessionTags: false }),
    );
    const summary = await untilSynced('association created', () => associationFor('shop', 'build-*'));
    const url = new URL(`${server.apiUrl}/clusters/demo/pod-identity-associations/${summary.associationId}`);
    const described = (await (await fetch(url, { headers: await signRequest({ method: 'GET', url }, { credentials: ADMIN, region: 'us-east-1', service: 'eks' }) })).json()) as {
      association: { serviceAccount: string; sessionTags?: Record<string, string>; sessionNameTemplate?: string; transitiveSessionTags?: boolean };
    };
    assert.deepEqual(
      [described.association.serviceAccount, described.association.sessionTags, described.association.sessionNameTemplate, described.association.transitiveSessionTags],
      ['build-*', { team: '{{pod.labels.team}}' }, 'shop-{pod}-{random}', false],
    );
    // the OpenAPI schema refuses a pattern that is not one, before the reconciler sees it
    const bad = await kubectl(['apply', '-f', '-'], manifest('bad-pattern', 'shop', { serviceAccount: 'build*x', roleArn: ROLE }));
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /spec\.serviceAccount/);
    await kubectlOk(['delete', 'pia', '-n', 'shop', 'builds']);
  });

  test('tags are owned by the resource: a status condition says so, and TagResource or UntagResource on its association is undone', async () => {
    await kubectlOk(['apply', '-f', '-'], manifest('tagged', 'shop', { serviceAccount: 'tagged', roleArn: ROLE, tags: { team: 'shop' } }));
    const association = await untilSynced('association created', () => associationFor('shop', 'tagged'));
    const resource = await untilSynced('status filled', async () => {
      const r = await getResource('shop', 'tagged');
      return ready(r)?.status === 'True' ? r : undefined;
    });
    const owned = resource.status!.conditions!.find((c) => c.type === 'TagsOwnedByResource');
    assert.equal(owned?.status, 'True');
    assert.equal(owned?.reason, 'SpecTags');
    assert.equal(owned?.message, `spec.tags are the tags of ${association.associationArn}: TagResource and UntagResource on it are undone; change spec.tags instead`);

    const resourceArn = association.associationArn!;
    const tagsNow = async () => (await eks.send(new ListTagsForResourceCommand({ resourceArn }))).tags ?? {};
    await eks.send(new TagResourceCommand({ resourceArn, tags: { extra: 'x' } }));
    await untilSynced('a tag added through the API is removed', async () => (JSON.stringify(await tagsNow()) === JSON.stringify({ team: 'shop' }) ? true : undefined));
    await eks.send(new UntagResourceCommand({ resourceArn, tagKeys: ['team'] }));
    await untilSynced('a tag removed through the API is put back', async () => (JSON.stringify(await tagsNow()) === JSON.stringify({ team: 'shop' }) ? true : undefined));
    // spec.tags is the way to change them
    await kubectlOk(['apply', '-f', '-'], manifest('tagged', 'shop', { serviceAccount: 'tagged', roleArn: ROLE, tags: { team: 'payments', tier: 'web' } }));
    await untilSynced('spec.tags applied', async () => (JSON.stringify(await tagsNow()) === JSON.stringify({ team: 'payments', tier: 'web' }) ? true : undefined));
    const after = await getResource('shop', 'tagged');
    assert.equal(after.status!.conditions!.find((c) => c.type === 'TagsOwnedByResource')?.lastTransitionTime, owned?.lastTransitionTime, 'the condition did not flip');
  });

  test('an invalid spec is a status condition, not a crash; the OpenAPI schema refuses malformed ones outright', async () => {
    // Passes the CRD schema, breaks an EKS rule: policy needs disableSessionTags.
    await kubectlOk(['apply', '-f', '-'], manifest('bad-policy', 'shop', { serviceAccount: 'bad-policy', roleArn: ROLE, policy: '{"Version":"2012-10-17"}' }));
    const resource = await untilSynced('InvalidSpec reported', async () => {
      const r = await getResource('shop', 'bad-policy');
      return ready(r)?.reason === 'InvalidSpec' ? r : undefined;
    });
    assert.equal(ready(resource)!.status, 'False');
    assert.match(ready(resource)!.message, /spec\.policy can only be set when spec\.disableSessionTags is true/);
    assert.equal(await associationFor('shop', 'bad-policy'), undefined);
    // A role name EKS refuses (the schema's pattern is looser than EKS's rule).
    await kubectlOk(['apply', '-f', '-'], manifest('bad-role', 'shop', { serviceAccount: 'bad-role', roleArn: 'arn:aws:iam::111122223333:role/has spaces' }));
    const badRole = await untilSynced('InvalidSpec for the role', async () => {
      const r = await getResource('shop', 'bad-role');
      return ready(r)?.reason === 'InvalidSpec' ? r : undefined;
    });
    assert.match(ready(badRole)!.message, /spec\.roleArn/);

    // The CRD's schema rejects what is malformed at apply time.
    const refused = await kubectl(['apply', '-f', '-'], manifest('malformed', 'shop', { serviceAccount: 'x', roleArn: 'not-an-arn' }));
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /spec\.roleArn/);
    const missing = await kubectl(['apply', '-f', '-'], manifest('missing', 'shop', { serviceAccount: 'x' }));
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /roleArn: Required value/);

    // Fixing the spec makes it Ready.
    await kubectlOk(['apply', '-f', '-'], manifest('bad-policy', 'shop', { serviceAccount: 'bad-policy', roleArn: ROLE, policy: '{"Version":"2012-10-17"}', disableSessionTags: true }));
    await untilSynced('fixed spec synced', async () => ((await getResource('shop', 'bad-policy')) && (await associationFor('shop', 'bad-policy'))));
    const res = await fetch(`${server.metricsUrl}/readyz`);
    assert.equal(res.status, 200, 'the server is alive and ready');
  });

  test('a resource for a service account with an API-made association reports Conflict and leaves it alone', async () => {
    const made = (await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'payments', serviceAccount: 'api', roleArn: ROLE }))).association!;
    await kubectlOk(['apply', '-f', '-'], manifest('api', 'payments', { serviceAccount: 'api', roleArn: 'arn:aws:iam::111122223333:role/other' }));
    const resource = await untilSynced('Conflict reported', async () => {
      const r = await getResource('payments', 'api');
      return ready(r)?.reason === 'Conflict' ? r : undefined;
    });
    assert.equal(ready(resource)!.status, 'False');
    assert.match(ready(resource)!.message, new RegExp(`${made.associationId}.*EKS API`));
    assert.equal(resource.status!.associationId ?? undefined, undefined);
    const untouched = await associationFor('payments', 'api');
    assert.deepEqual(untouched, made);

    // Deleting the API-made association frees the service account: the resource takes it.
    await eks.send(new DeletePodIdentityAssociationCommand({ clusterName: 'demo', associationId: made.associationId }));
    const taken = await untilSynced('resource synced after the conflict ended', async () => {
      const a = await associationFor('payments', 'api');
      return a && a.associationId !== made.associationId ? a : undefined;
    });
    assert.equal(taken.roleArn, 'arn:aws:iam::111122223333:role/other');
    await untilSynced('Ready after the conflict', async () => ready(await getResource('payments', 'api'))?.status === 'True' || undefined);
  });

  test('changes made while the server was down are reconciled when it starts: new resources created, orphans removed', async () => {
    await kubectlOk(['apply', '-f', '-'], manifest('orphan', 'payments', { serviceAccount: 'orphan', roleArn: ROLE }));
    await untilSynced('association created', () => associationFor('payments', 'orphan'));
    const inSync = await associationFor('shop', 'checkout');
    assert.ok(inSync);
    await server.stop();
    await kubectlOk(['delete', 'podidentityassociation', 'orphan', '-n', 'payments']);
    await kubectlOk(['apply', '-f', '-'], manifest('while-down', 'payments', { serviceAccount: 'while-down', roleArn: ROLE }));
    eks.destroy();
    await startServer();
    eks = new EKSClient({ endpoint: server.apiUrl, region: 'us-east-1', credentials: { ...ADMIN }, maxAttempts: 1 });
    await untilSynced('created at start', () => associationFor('payments', 'while-down'));
    await untilSynced('orphan removed at start', async () => ((await associationFor('payments', 'orphan')) ? undefined : true));
    // What was in sync stays as it was: the same association, kept in the store across the restart.
    assert.deepEqual(await associationFor('shop', 'checkout'), inSync);
  });

  test('every change the reconciler made is in the audit trail with its resource as actor, beside the API\'s; no sync error was counted', async () => {
    interface Change {
      operation: string;
      actor: { kind: string; accessKeyId?: string; apiVersion?: string; resource?: string; namespace?: string; name?: string; uid?: string };
      before: { serviceAccount: string; roleArn: string; targetRoleArn?: string } | null;
      after: { serviceAccount: string; roleArn: string; targetRoleArn?: string; ownerArn?: string } | null;
    }
    const changes = readFileSync(auditFile, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string } & Change)
      .filter((r) => r.type === 'association-change');
    const of = (namespace: string, serviceAccount: string) =>
      changes.filter((c) => (c.after ?? c.before)!.serviceAccount === serviceAccount && (c.actor.namespace === namespace || c.actor.kind === 'access-key'));
    const checkout = await getResource('shop', 'checkout');
    const byCheckout = { kind: 'kubernetes', apiVersion: 'podidentity.dev/v1alpha1', resource: 'podidentityassociations', namespace: 'shop', name: 'checkout', uid: checkout.metadata.uid };
    assert.deepEqual(
      of('shop', 'checkout').map((c) => [c.operation, c.actor]),
      [
        ['CreatePodIdentityAssociation', byCheckout],
        ['UpdatePodIdentityAssociation', byCheckout],
      ],
    );
    const [created, updated] = of('shop', 'checkout');
    assert.equal(created!.before, null);
    assert.match(created!.after!.ownerArn ?? '', new RegExp(`/shop/checkout/${checkout.metadata.uid}$`));
    assert.equal(updated!.before!.targetRoleArn, undefined);
    assert.equal(updated!.after!.targetRoleArn, 'arn:aws:iam::444455556666:role/target');
    assert.deepEqual(
      of('shop', 'short-lived').map((c) => [c.operation, c.actor.name, c.after === null]),
      [
        ['CreatePodIdentityAssociation', 'short-lived', false],
        ['DeletePodIdentityAssociation', 'short-lived', true],
      ],
    );
    // deleted while the server was down: removed at start, the actor read from the owner ARN it left
    const orphan = of('payments', 'orphan');
    assert.deepEqual(orphan.map((c) => [c.operation, c.actor.kind, c.actor.namespace, c.actor.name]), [
      ['CreatePodIdentityAssociation', 'kubernetes', 'payments', 'orphan'],
      ['DeletePodIdentityAssociation', 'kubernetes', 'payments', 'orphan'],
    ]);
    assert.equal(orphan[1]!.actor.uid, orphan[0]!.actor.uid);
    // the API's own changes to the same service account are the access key's
    assert.deepEqual(
      of('payments', 'api').map((c) => [c.operation, c.actor.kind === 'access-key' ? c.actor.accessKeyId : c.actor.name]),
      [
        ['CreatePodIdentityAssociation', ADMIN.accessKeyId],
        ['DeletePodIdentityAssociation', ADMIN.accessKeyId],
        ['CreatePodIdentityAssociation', 'api'],
      ],
    );

    const metrics = await (await fetch(`${server.metricsUrl}/metrics`)).text();
    for (const kind of ['reconcile', 'status', 'watch', 'lease']) assert.match(metrics, new RegExp(`^pod_identity_crd_sync_errors_total\\{cluster="demo",kind="${kind}"\\} 0$`, 'm'));
  });

  test('the reconciler’s credentials came from the exec plugin, which ran once for all its requests', () => {
    // one run per server process: the credential it printed lasts an hour
    assert.equal(readFileSync(exec.runLog, 'utf8').trim().split('\n').length, 2, 'two server processes so far');
  });

  test('a failing exec plugin: the server stays up, is not ready, logs the kubeconfig, the plugin and what it printed, and counts the sync errors', async () => {
    const failing = writeExecKubeconfig(kube, 'crd-sync-logged-out', { failWith: 'error: token expired; run: login' });
    const other = await startServerProcess({ config: { clusters: [{ name: 'demo', kubeconfig: failing.path, syncCrds: true }] }, untilAlive: true });
    try {
      const expected = `${failing.path}: the exec credential plugin ${failing.command} failed: error: token expired; run: login`;
      await eventually(
        'the failure logged',
        async () => other.logs().split('\n').some((line) => line.startsWith('{') && ((JSON.parse(line) as { err?: string }).err ?? '').includes(expected)) || undefined,
        { timeoutMs: 10_000, context: () => serverLog(other.logs()) },
      );
      const readyz = await eventually(
        'not ready, naming the API server and the plugin',
        async () => {
          const res = await fetch(`${other.metricsUrl}/readyz`);
          const body = await res.text();
          return res.status === 503 && body.includes('token expired') ? body : undefined;
        },
        { timeoutMs: 10_000, context: () => serverLog(other.logs()) },
      );
      assert.match(readyz, /- cluster demo: api-server \(https:\/\/127\.0\.0\.1:\d+\): .*the exec credential plugin .* failed: error: token expired; run: login/);
      await eventually(
        'a lease error counted',
        async () => {
          const metrics = await (await fetch(`${other.metricsUrl}/metrics`)).text();
          const count = Number(/^pod_identity_crd_sync_errors_total\{cluster="demo",kind="lease"\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
          return count > 0 || undefined;
        },
        { timeoutMs: 15_000, context: () => serverLog(other.logs()) },
      );
      assert.ok(existsSync(failing.runLog));
    } finally {
      await other.stop();
    }
  });
});

describe('two replicas syncing the same cluster, one PostgreSQL store', { skip: requirePeer('kube-apiserver', kubeMissingReason) || postgresSkip() }, () => {
  const LEASE = { namespace: 'pod-identity-system', name: 'pod-identity-crd-demo' };
  let kube: KubeControlPlane;
  let pg: PostgresPeer;
  let databaseUrl: string;
  let exec: ExecKubeconfig;
  const replicas = new Map<string, ServerProcess>();
  const clients: EKSClient[] = [];
  const logs = () => [...replicas].map(([name, r]) => `--- ${name}\n${r.logs().slice(-2000)}`).join('\n');
  const untilSynced = <T>(what: string, check: Check<T>, timeoutMs = 30_000) => eventually(what, check, { timeoutMs, context: () => serverLog(logs()) });

  /** A replica as the chart runs it: POD_NAMESPACE and POD_NAME from the downward API. */
  async function replica(name: string): Promise<{ server: ServerProcess; eks: EKSClient }> {
    const server = await startServerProcess({
      config: { databaseUrl, clusters: [{ name: 'demo', kubeconfig: exec.path, syncCrds: true }] },
      env: { POD_NAMESPACE: LEASE.namespace, POD_NAME: name },
    });
    replicas.set(name, server);
    const eks = new EKSClient({ endpoint: server.apiUrl, region: 'us-east-1', credentials: { ...ADMIN }, maxAttempts: 1 });
    clients.push(eks);
    return { server, eks };
  }

  /** The replica named in the Lease (POD_NAME, then its random suffix), or undefined when nobody holds it. */
  async function leader(): Promise<string | undefined> {
    const lease = await kubeApiClient(kube, CoordinationV1Api).readNamespacedLease(LEASE);
    return lease.spec?.holderIdentity?.replace(/-[0-9a-f]{8}$/, '') || undefined;
  }

  async function associationsOf(eks: EKSClient, serviceAccount: string) {
    return (await eks.send(new ListPodIdentityAssociationsCommand({ clusterName: 'demo', namespace: 'shop', serviceAccount }))).associations ?? [];
  }

  before(async () => {
    [kube, pg] = await Promise.all([startKubeControlPlane(), startPostgres()]);
    databaseUrl = await pg.createDatabase();
    exec = writeExecKubeconfig(kube, 'replicas');
    await installCrd(kube, ['shop', LEASE.namespace]);
  });
  after(async () => {
    for (const client of clients) client.destroy();
    for (const server of replicas.values()) await server.kill();
    await Promise.all([kube?.stop(), pg?.stop()]);
  });

  test('one replica leads; a deleted resource’s association stays deleted; leadership moves when the leader is killed, and at once when it stops', { timeout: 240_000 }, async (t) => {
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    const first = await untilSynced('a leader', leader);
    const [leaderName, followerName] = first === 'replica-a' ? ['replica-a', 'replica-b'] : ['replica-b', 'replica-a'];
    const follower = first === 'replica-a' ? b : a;
    t.diagnostic(`${leaderName} leads`);

    await runKubectlOk(kube, ['apply', '-f', '-'], manifest('doomed', 'shop', { serviceAccount: 'doomed', roleArn: ROLE }));
    await untilSynced('association created', async () => ((await associationsOf(follower.eks, 'doomed')).length === 1 ? true : undefined));
    await runKubectlOk(kube, ['delete', 'podidentityassociation', 'doomed', '-n', 'shop']);
    await untilSynced('association deleted', async () => ((await associationsOf(follower.eks, 'doomed')).length === 0 ? true : undefined));
    // and it stays deleted: no replica puts it back
    const deletedAt = Date.now();
    while (Date.now() - deletedAt < 30_000) {
      for (const { eks } of [a, b]) assert.deepEqual(await associationsOf(eks, 'doomed'), [], `put back ${Date.now() - deletedAt} ms after the deletion`);
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(await leader(), leaderName, 'still the same leader');
    assert.doesNotMatch(replicas.get(followerName)!.logs(), /from PodIdentityAssociation|with its PodIdentityAssociation/, 'the follower reconciled nothing');

    // The leader dies without a word: the other replica takes over once the lease expires.
    await replicas.get(leaderName)!.kill();
    const killedAt = Date.now();
    await runKubectlOk(kube, ['apply', '-f', '-'], manifest('after-failover', 'shop', { serviceAccount: 'after-failover', roleArn: ROLE }));
    await untilSynced('the follower leads', async () => ((await leader()) === followerName ? true : undefined), 30_000);
    const tookOverMs = Date.now() - killedAt;
    await untilSynced('the new leader reconciles', async () => ((await associationsOf(follower.eks, 'after-failover')).length === 1 ? true : undefined), 30_000 - tookOverMs);
    const reconciledMs = Date.now() - killedAt;
    t.diagnostic(`after SIGKILL of ${leaderName}: ${followerName} held the lease after ${tookOverMs} ms and had reconciled a new resource after ${reconciledMs} ms`);
    assert.ok(reconciledMs < 30_000);

    // A clean stop (a rolling update) releases the lease: a new replica takes over at once, not after the lease's 15 s.
    const c = await replica('replica-c');
    await replicas.get(followerName)!.stop();
    const stoppedAt = Date.now();
    await untilSynced('the new replica leads', async () => ((await leader()) === 'replica-c' ? true : undefined), 10_000);
    const handedOverMs = Date.now() - stoppedAt;
    await runKubectlOk(kube, ['apply', '-f', '-'], manifest('after-handover', 'shop', { serviceAccount: 'after-handover', roleArn: ROLE }));
    await untilSynced('replica c reconciles', async () => ((await associationsOf(c.eks, 'after-handover')).length === 1 ? true : undefined));
    t.diagnostic(`after SIGTERM of ${followerName}: replica-c held the lease after ${handedOverMs} ms`);
    assert.ok(handedOverMs < 5_000, `${handedOverMs} ms`);
  });
});
