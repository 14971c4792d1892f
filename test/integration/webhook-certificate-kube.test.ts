// The webhook's certificate kept by the server in a Secret of a real
// kube-apiserver (webhook.certificateSecret, the chart's default): the
// objects start as the chart renders them (a Secret and a ConfigMap without
// data, a MutatingWebhookConfiguration without caBundle); the server fills
// them, the API server then trusts the webhook, a restart keeps the same CA,
// two replicas starting together agree on one, and an emptied Secret gets a
// new CA within a check.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { Agent as HttpsAgent } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { CreatePodIdentityAssociationCommand, EKSClient } from '@aws-sdk/client-eks';
import { AdmissionregistrationV1Api, CoreV1Api } from '@kubernetes/client-node';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { eventually } from '../helpers/eventually.js';
import { parseServerConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/lib/logger.js';
import { kubeConnections } from '../../src/server/setup/kube-connections.js';
import { webhookTlsFromConfig } from '../../src/server/setup/webhook.js';
import { ADMIN, freePort, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { createNamespace, createPod, createServiceAccount } from '../peers/kube-api.js';
import { kubeApiClient, kubeMissingReason, startKubeControlPlane, type KubeControlPlane } from '../peers/kube.js';
import { requirePeer } from '../peers/require.js';

const skip = requirePeer('kube-apiserver', kubeMissingReason);

const NAMESPACE = 'pi-system';
const TARGET = { namespace: NAMESPACE, secretName: 'pi-webhook-tls', caConfigMap: 'pi-ca', webhookConfiguration: 'pi' };

interface Held {
  secret: Record<string, string>;
  secretVersion: string;
  configMapCa: string | undefined;
  caBundle: string | undefined;
}

/** The certificate a TLS listener on loopback serves. */
function servedCertificate(url: string): Promise<PeerCertificate> {
  const { port } = new URL(url);
  return new Promise((resolvePeer, reject) => {
    const socket = connect({ host: '127.0.0.1', port: Number(port), rejectUnauthorized: false }, () => {
      resolvePeer(socket.getPeerCertificate());
      socket.end();
    });
    socket.once('error', reject);
  });
}

describe('the webhook certificate kept in a Secret of a real kube-apiserver', { skip, timeout: 180_000 }, () => {
  let kube: KubeControlPlane;
  let core: CoreV1Api;
  let admission: AdmissionregistrationV1Api;
  const dirs: string[] = [];
  const servers: ServerProcess[] = [];

  const held = async (): Promise<Held> => {
    const secret = await core.readNamespacedSecret({ namespace: NAMESPACE, name: TARGET.secretName });
    const map = await core.readNamespacedConfigMap({ namespace: NAMESPACE, name: TARGET.caConfigMap });
    const hook = await admission.readMutatingWebhookConfiguration({ name: TARGET.webhookConfiguration });
    const decoded = Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
    return { secret: decoded, secretVersion: secret.metadata!.resourceVersion!, configMapCa: map.data?.['ca.crt'], caBundle: hook.webhooks?.[0]?.clientConfig.caBundle };
  };

  /** A server whose webhook listens where the registered webhook calls it, and whose API serves the same certificate. */
  const start = async (webhookPort: number) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pi-cert-secret-'));
    dirs.push(dataDir);
    const server = await startServerProcess({
      dataDir,
      config: {
        webhookListen: `127.0.0.1:${webhookPort}`,
        listen: `127.0.0.1:${await freePort()}`,
        metricsListen: `127.0.0.1:${await freePort()}`,
        clusters: [{ name: 'demo', issuer: kube.issuer, kubeconfig: kube.kubeconfigPath }],
        webhook: { certificateSecret: TARGET },
        tls: { certFile: join(dataDir, 'webhook-tls/tls.crt'), keyFile: join(dataDir, 'webhook-tls/tls.key') },
      },
    });
    servers.push(server);
    return server;
  };

  let webhookPort: number;

  before(async () => {
    kube = await startKubeControlPlane();
    core = kubeApiClient(kube, CoreV1Api);
    admission = kubeApiClient(kube, AdmissionregistrationV1Api);
    await createNamespace(kube, NAMESPACE);
    webhookPort = await freePort();
    // as the chart renders them: no data, no caBundle
    await core.createNamespacedSecret({ namespace: NAMESPACE, body: { metadata: { name: TARGET.secretName }, type: 'Opaque' } });
    await core.createNamespacedConfigMap({ namespace: NAMESPACE, body: { metadata: { name: TARGET.caConfigMap } } });
    await admission.createMutatingWebhookConfiguration({
      body: {
        metadata: { name: TARGET.webhookConfiguration },
        webhooks: [
          {
            name: 'pod-identity-webhook.podidentity.dev',
            admissionReviewVersions: ['v1'],
            sideEffects: 'None',
            failurePolicy: 'Ignore',
            timeoutSeconds: 5,
            clientConfig: { url: `https://127.0.0.1:${webhookPort}/mutate` },
            objectSelector: { matchExpressions: [{ key: 'eks.amazonaws.com/skip-pod-identity-webhook', operator: 'DoesNotExist' }] },
            rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
          },
        ],
      },
    });
  });

  after(async () => {
    for (const server of servers) await server.stop();
    await kube?.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  let first: Held;

  test('the server fills the Secret, publishes the CA in the ConfigMap and the caBundle, and serves a certificate of that CA on the webhook and the API', async () => {
    const server = await start(webhookPort);
    first = await held();
    assert.deepEqual(Object.keys(first.secret).sort(), ['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
    const ca = new X509Certificate(first.secret['ca.crt']!);
    assert.ok(ca.ca);
    assert.equal(first.configMapCa, first.secret['ca.crt']);
    assert.equal(Buffer.from(first.caBundle!, 'base64').toString(), first.secret['ca.crt']);
    for (const url of [server.webhookUrl, server.apiUrl]) {
      const served = new X509Certificate((await servedCertificate(url)).raw);
      assert.equal(served.fingerprint256, new X509Certificate(first.secret['tls.crt']!).fingerprint256, url);
      assert.ok(served.checkIssued(ca) && served.verify(ca.publicKey), `${url} serves a certificate of the published CA`);
    }
    assert.ok(!server.logs().includes('PRIVATE KEY'), 'no key in the logs');

    // the API server trusts the webhook with that caBundle: a pod of an associated service account is mutated
    const requestHandler = new NodeHttpHandler({ httpsAgent: new HttpsAgent({ ca: first.secret['ca.crt'] }) });
    const eks = new EKSClient({ endpoint: server.apiUrl, region: 'us-east-1', credentials: { ...ADMIN }, maxAttempts: 1, requestHandler });
    try {
      await createServiceAccount(kube, 'default', 'checkout');
      await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'default', serviceAccount: 'checkout', roleArn: 'arn:aws:iam::111122223333:role/checkout' }));
    } finally {
      eks.destroy();
    }
    await eventually(
      'the API server calls the webhook',
      async () => (await createPod(kube, { namespace: 'default', name: 'checkout-1', serviceAccountName: 'checkout', dryRun: true })).metadata?.labels?.['eks.amazonaws.com/pod-identity'] === 'enabled',
      { timeoutMs: 20_000, intervalMs: 200, context: () => `server logs:\n${server.logs()}` },
    );
    for (const started of servers.splice(0)) await started.stop();
  });

  test('a second start, from an empty data directory, keeps the same CA and certificate and writes nothing', async () => {
    assert.ok(first, 'previous step');
    const server = await start(webhookPort);
    const again = await held();
    assert.deepEqual(again, first);
    assert.equal(new X509Certificate((await servedCertificate(server.webhookUrl)).raw).fingerprint256, new X509Certificate(first.secret['tls.crt']!).fingerprint256);
    for (const started of servers.splice(0)) await started.stop();
  });

  test('two replicas starting together on an emptied Secret agree on one new CA', async () => {
    assert.ok(first, 'previous step');
    const secret = await core.readNamespacedSecret({ namespace: NAMESPACE, name: TARGET.secretName });
    await core.replaceNamespacedSecret({ namespace: NAMESPACE, name: TARGET.secretName, body: { ...secret, data: {} } });
    const [a, b] = await Promise.all([start(await freePort()), start(await freePort())]);
    const now = await held();
    assert.notEqual(now.secret['ca.crt'], first.secret['ca.crt'], 'an emptied Secret gets a new CA');
    assert.equal(now.configMapCa, now.secret['ca.crt']);
    assert.equal(Buffer.from(now.caBundle!, 'base64').toString(), now.secret['ca.crt']);
    // both serve the Secret's certificate (the one that lost the race adopted the winner's)
    for (const server of [a!, b!]) {
      assert.equal(new X509Certificate((await servedCertificate(server.webhookUrl)).raw).fingerprint256, new X509Certificate(now.secret['tls.crt']!).fingerprint256);
    }
    for (const server of servers.splice(0)) await server.stop();
  });

  test('every check follows the Secret: emptied while running, it gets a new CA, published and served', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pi-cert-secret-'));
    dirs.push(dataDir);
    const config = parseServerConfig({ dataDir, clusters: [{ name: 'demo', issuer: kube.issuer, kubeconfig: kube.kubeconfigPath }], webhook: { certificateSecret: TARGET } });
    const connections = kubeConnections();
    const tls = await webhookTlsFromConfig(config, { logger: silentLogger(), kube: connections, certificateSecretCheckMs: 100 });
    try {
      const before = await held();
      assert.equal(tls.source.caCert, before.secret['ca.crt'], 'adopted what the replicas wrote');
      const secret = await core.readNamespacedSecret({ namespace: NAMESPACE, name: TARGET.secretName });
      await core.replaceNamespacedSecret({ namespace: NAMESPACE, name: TARGET.secretName, body: { ...secret, data: {} } });
      await eventually('a new CA, from checks every 100 ms', () => tls.source.caCert !== before.secret['ca.crt'], { timeoutMs: 10_000, intervalMs: 50 });
      const after = await held();
      assert.equal(after.secret['ca.crt'], tls.source.caCert);
      assert.equal(after.configMapCa, tls.source.caCert);
      assert.equal(Buffer.from(after.caBundle!, 'base64').toString(), tls.source.caCert);
      assert.equal(tls.source.current().cert, after.secret['tls.crt']);
    } finally {
      tls.source.close();
      await connections.close();
    }
  });
});
