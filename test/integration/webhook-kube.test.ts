// The webhook registered in a real kube-apiserver with the configuration that
// `pod-identity webhook-config` prints: pods of an associated service account
// are stored mutated (what the API server keeps, not what we answered), other
// pods are untouched, and with the webhook stopped pods are still admitted.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { CreatePodIdentityAssociationCommand, DeletePodIdentityAssociationCommand, EKSClient } from '@aws-sdk/client-eks';
import type { V1Pod } from '@kubernetes/client-node';
import { eventually } from '../helpers/eventually.js';
import { applyYaml, createPod, createServiceAccount } from '../peers/kube-api.js';
import { kubeMissingReason, startKubeControlPlane, type KubeControlPlane } from '../peers/kube.js';
import { requirePeer } from '../peers/require.js';
import { ADMIN, CLI, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const run = promisify(execFile);
const skip = requirePeer('kube-apiserver', kubeMissingReason);

const MOUNT_PATH = '/var/run/secrets/pods.eks.amazonaws.com/serviceaccount';
const TOKEN_FILE = `${MOUNT_PATH}/eks-pod-identity-token`;

function env(container: { env?: { name: string; value?: string }[] } | undefined): Record<string, string | undefined> {
  return Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value]));
}

function identityVolume(pod: V1Pod) {
  return pod.spec?.volumes?.find((v) => v.name === 'eks-pod-identity-token');
}

function assertUntouched(pod: V1Pod): void {
  assert.equal(pod.metadata?.labels?.['eks.amazonaws.com/pod-identity'], undefined);
  assert.equal(identityVolume(pod), undefined);
  for (const c of pod.spec?.containers ?? []) {
    assert.equal(env(c).AWS_CONTAINER_CREDENTIALS_FULL_URI, undefined);
    assert.ok(!(c.volumeMounts ?? []).some((m) => m.name === 'eks-pod-identity-token'));
  }
}

describe('webhook on a real kube-apiserver', { skip, timeout: 180_000 }, () => {
  let kube: KubeControlPlane;
  let server: ServerProcess;
  let eks: EKSClient;
  let podNumber = 0;
  const pod = (options: Omit<Parameters<typeof createPod>[1], 'namespace' | 'name'>) => createPod(kube, { namespace: 'default', name: `p-${++podNumber}`, ...options });

  before(async () => {
    kube = await startKubeControlPlane();
    server = await startServerProcess({
      config: { region: 'eu-west-1', clusters: [{ name: 'demo', issuer: kube.issuer, kubeconfig: kube.kubeconfigPath }] },
    });
    eks = new EKSClient({ endpoint: server.apiUrl, region: 'eu-west-1', credentials: { ...ADMIN }, maxAttempts: 1 });

    // Register exactly what `webhook-config` prints.
    const { stdout } = await run(process.execPath, [CLI, 'webhook-config', '--config', server.configPath, '--url', server.webhookUrl, '--timeout-seconds', '5'], { timeout: 20_000 });
    await applyYaml(kube, stdout);

    await createServiceAccount(kube, 'default', 'checkout', { annotations: { 'eks.amazonaws.com/token-expiration': '3600' } });
    await createServiceAccount(kube, 'default', 'cart');
    await createServiceAccount(kube, 'default', 'billing', { annotations: { 'eks.amazonaws.com/sts-regional-endpoints': 'true' } });
    await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'default', serviceAccount: 'checkout', roleArn: 'arn:aws:iam::111122223333:role/checkout' }));
    await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'default', serviceAccount: 'billing', roleArn: 'arn:aws:iam::111122223333:role/billing' }));

    // The API server picks the configuration up from its informer: wait until a dry run shows the webhook working.
    await eventually('the webhook called', async () => (await pod({ serviceAccountName: 'checkout', dryRun: true })).metadata?.labels?.['eks.amazonaws.com/pod-identity'] === 'enabled', {
      timeoutMs: 20_000,
      intervalMs: 200,
      context: () => `server logs:\n${server.logs()}`,
    });
  });

  after(async () => {
    eks?.destroy();
    await server?.kill();
    await kube?.stop();
  });

  test('a pod of the associated service account is stored with the volume, variables and mount', async () => {
    const stored = await pod({
      serviceAccountName: 'checkout',
      spec: {
        containers: [{ name: 'app', image: 'registry.invalid/app:1' }],
        initContainers: [
          { name: 'init', image: 'registry.invalid/init:1' },
          { name: 'sidecar', image: 'registry.invalid/sidecar:1', restartPolicy: 'Always' },
        ],
      },
    });
    assert.equal(stored.metadata?.labels?.['eks.amazonaws.com/pod-identity'], 'enabled');
    // The service account's token-expiration annotation, read through the cluster's kubeconfig.
    assert.deepEqual(identityVolume(stored)?.projected?.sources, [
      { serviceAccountToken: { audience: 'pods.eks.amazonaws.com', expirationSeconds: 3600, path: 'eks-pod-identity-token' } },
    ]);
    for (const c of [...stored.spec!.containers, ...stored.spec!.initContainers!]) {
      const vars = env(c);
      assert.equal(vars.AWS_CONTAINER_CREDENTIALS_FULL_URI, 'http://169.254.170.23/v1/credentials', c.name);
      assert.equal(vars.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, TOKEN_FILE, c.name);
      assert.equal(vars.AWS_REGION, 'eu-west-1', c.name);
      const mount = c.volumeMounts?.find((m) => m.name === 'eks-pod-identity-token');
      assert.deepEqual({ path: mount?.mountPath, readOnly: mount?.readOnly }, { path: MOUNT_PATH, readOnly: true }, c.name);
    }
    assert.equal(stored.spec!.initContainers![1]!.restartPolicy, 'Always');
    // The API server's own service-account volume is still there beside ours.
    assert.ok(stored.spec!.volumes!.some((v) => v.name.startsWith('kube-api-access-')));
  });

  test("the service account's sts-regional-endpoints annotation puts AWS_STS_REGIONAL_ENDPOINTS first; others do not get it", async () => {
    const billing = await pod({ serviceAccountName: 'billing' });
    assert.deepEqual((billing.spec!.containers[0]!.env ?? []).map((e) => e.name), [
      'AWS_STS_REGIONAL_ENDPOINTS',
      'AWS_DEFAULT_REGION',
      'AWS_REGION',
      'AWS_CONTAINER_CREDENTIALS_FULL_URI',
      'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE',
    ]);
    assert.equal(env(billing.spec!.containers[0]).AWS_STS_REGIONAL_ENDPOINTS, 'regional');
    // No annotation anywhere: the default lifetime, jittered into [79200, 86400].
    const seconds = identityVolume(billing)?.projected?.sources?.[0]?.serviceAccountToken?.expirationSeconds ?? 0;
    assert.ok(seconds >= 79200 && seconds <= 86400, String(seconds));
    const checkout = await pod({ serviceAccountName: 'checkout' });
    assert.equal(env(checkout.spec!.containers[0]).AWS_STS_REGIONAL_ENDPOINTS, undefined);
  });

  test('the pod annotation overrides the service account, floor 600', async () => {
    const stored = await pod({ serviceAccountName: 'checkout', annotations: { 'eks.amazonaws.com/token-expiration': '120' } });
    assert.equal(identityVolume(stored)?.projected?.sources?.[0]?.serviceAccountToken?.expirationSeconds, 600);
  });

  test('a pattern association (job-*) mutates the pods of every matching service account, and no other', async () => {
    await createServiceAccount(kube, 'default', 'job-1');
    await createServiceAccount(kube, 'default', 'jobless');
    const made = await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'default', serviceAccount: 'job-*', roleArn: 'arn:aws:iam::111122223333:role/jobs' }));
    try {
      const job = await pod({ serviceAccountName: 'job-1' });
      assert.equal(job.metadata?.labels?.['eks.amazonaws.com/pod-identity'], 'enabled');
      assert.equal(env(job.spec!.containers[0]).AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, TOKEN_FILE);
      assertUntouched(await pod({ serviceAccountName: 'jobless' }));
    } finally {
      await eks.send(new DeletePodIdentityAssociationCommand({ clusterName: 'demo', associationId: made.association!.associationId }));
    }
  });

  test('a pod of another service account, and a labelled pod, are untouched', async () => {
    assertUntouched(await pod({ serviceAccountName: 'cart' }));
    assertUntouched(await pod({ serviceAccountName: 'default' }));
    assertUntouched(await pod({ serviceAccountName: 'checkout', labels: { 'eks.amazonaws.com/skip-pod-identity-webhook': 'true' } }));
  });

  test('with the webhook stopped, pods are still admitted (failurePolicy Ignore)', async () => {
    await server.stop();
    const started = Date.now();
    const stored = await pod({ serviceAccountName: 'checkout' });
    assert.equal(stored.metadata?.namespace, 'default');
    assertUntouched(stored);
    assert.ok(Date.now() - started < 6_000, 'admitted within the webhook timeout');
  });
});
