// The webhook listener over real HTTPS with a real SQLite store: what the API
// server sends, what it gets back, and that nothing ever blocks a pod.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { request, type RequestOptions, type Server } from 'node:https';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import jsonpatch from 'fast-json-patch';
import { SqliteAssociationStore } from '../../src/associations/stores/sqlite.js';
import type { Association } from '../../src/api/eks.js';
import { closeServer, listen } from '../../src/lib/http.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createRegistry } from '../../src/lib/metrics.js';
import { parseServerConfig } from '../../src/config/load.js';
import { ensureGeneratedCertificates, generatedCertificates, generatedPaths } from '../../src/webhook/certs.js';
import type { Pod } from '../../src/api/admission.js';
import { createWebhookServer } from '../../src/server/webhook-listener.js';
import { createWebhookFromConfig } from '../../src/server/setup/webhook.js';

interface Answer {
  status: number;
  body: string;
  json?: { apiVersion: string; kind: string; response: { uid: string; allowed: boolean; patch?: string; patchType?: string; warnings?: string[] } };
  peerCertificate?: string;
}

function post(port: number, ca: string, body: string | Buffer, headers: Record<string, string> = { 'content-type': 'application/json' }, extra: RequestOptions = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/mutate', method: 'POST', ca, headers, agent: false, ...extra }, (res) => {
      const chunks: Buffer[] = [];
      const peer = (res.socket as import('node:tls').TLSSocket).getPeerCertificate?.()?.fingerprint256;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json: Answer['json'];
        try {
          json = JSON.parse(text) as Answer['json'];
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, body: text, json, peerCertificate: peer });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

function podReview(uid: string, namespace: string, serviceAccount: string, extra: Partial<Pod> = {}): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace,
      operation: 'CREATE',
      object: { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'web-' }, spec: { serviceAccountName: serviceAccount, containers: [{ name: 'app', image: 'app' }] }, ...extra },
      oldObject: null,
      dryRun: false,
    },
  });
}

function association(namespace: string, serviceAccount: string): Association {
  const id = `a-${Math.random().toString(36).slice(2, 12).padEnd(17, '0')}`;
  return {
    clusterName: 'demo',
    namespace,
    serviceAccount,
    roleArn: 'arn:aws:iam::111122223333:role/r',
    associationId: id,
    associationArn: `arn:aws:eks:us-east-1:000000000000:podidentityassociation/demo/${id}`,
    tags: {},
    createdAt: Date.now(),
    modifiedAt: Date.now(),
    disableSessionTags: false,
  };
}

describe('webhook listener', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pi-webhook-'));
  const store = new SqliteAssociationStore(':memory:');
  const registry = createRegistry('pod_identity_');
  let server: Server;
  let port: number;
  let ca: string;

  before(async () => {
    const tls = generatedCertificates(dir, ['localhost', '127.0.0.1'], { logger: silentLogger(), onChange: () => {} });
    ca = tls.caCert!;
    server = createWebhookServer({ store, clusterName: 'demo', ipv6: false, region: 'eu-west-1', logger: silentLogger(), registry, bodyLimit: 256 * 1024 }, tls);
    port = (await listen(server, { host: '127.0.0.1', port: 0 })).port;
    await store.create(association('shop', 'checkout'));
  });
  after(async () => {
    await closeServer(server, 1000);
    await store.close().catch(() => {});
  });

  test('a pod of an associated service account gets a patch that applies; envelope and uid echoed', async () => {
    const answer = await post(port, ca, podReview('uid-1', 'shop', 'checkout'));
    assert.equal(answer.status, 200);
    assert.equal(answer.json!.apiVersion, 'admission.k8s.io/v1');
    assert.equal(answer.json!.kind, 'AdmissionReview');
    assert.equal(answer.json!.response.uid, 'uid-1');
    assert.equal(answer.json!.response.allowed, true);
    assert.equal(answer.json!.response.patchType, 'JSONPatch');
    const patch = JSON.parse(Buffer.from(answer.json!.response.patch!, 'base64').toString()) as jsonpatch.Operation[];
    const original = JSON.parse(podReview('uid-1', 'shop', 'checkout')).request.object as Pod;
    const pod = jsonpatch.applyPatch(original, patch, true).newDocument;
    assert.equal(pod.metadata?.labels?.['eks.amazonaws.com/pod-identity'], 'enabled');
    assert.equal(pod.spec?.volumes?.[0]?.name, 'eks-pod-identity-token');
    const env = Object.fromEntries(pod.spec!.containers![0]!.env!.map((e) => [e.name, e.value]));
    assert.equal(env.AWS_CONTAINER_CREDENTIALS_FULL_URI, 'http://169.254.170.23/v1/credentials');
    assert.equal(env.AWS_REGION, 'eu-west-1');
  });

  test('another service account, another namespace, the skip label, an UPDATE: allowed without a patch', async () => {
    const cases = [
      podReview('u-a', 'shop', 'other'),
      podReview('u-b', 'elsewhere', 'checkout'),
      podReview('u-c', 'shop', 'checkout', { metadata: { labels: { 'eks.amazonaws.com/skip-pod-identity-webhook': 'true' } } }),
      podReview('u-d', 'shop', 'checkout').replace('"CREATE"', '"UPDATE"'),
    ];
    for (const body of cases) {
      const answer = await post(port, ca, body);
      assert.equal(answer.status, 200);
      assert.equal(answer.json!.response.allowed, true);
      assert.equal(answer.json!.response.patch, undefined, body);
      assert.equal(answer.json!.response.warnings, undefined);
    }
  });

  test('wrong content type is 415; other paths and methods are refused', async () => {
    assert.equal((await post(port, ca, podReview('u', 'shop', 'checkout'), { 'content-type': 'text/plain' })).status, 415);
    assert.equal((await post(port, ca, podReview('u', 'shop', 'checkout'), {})).status, 415);
    assert.equal((await post(port, ca, podReview('u', 'shop', 'checkout'), { 'content-type': 'application/json; charset=utf-8' })).status, 200);
    assert.equal((await post(port, ca, '', {}, { method: 'GET' })).status, 405);
    assert.equal((await post(port, ca, '{}', { 'content-type': 'application/json' }, { path: '/elsewhere' })).status, 404);
  });

  test('a malformed review is admitted with a warning, never rejected', async () => {
    for (const body of ['{broken', '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}', JSON.stringify({ request: { uid: 'u-x', operation: 'CREATE', kind: { kind: 'Pod' }, object: 'not a pod' } })]) {
      const answer = await post(port, ca, body);
      assert.equal(answer.status, 200, body);
      assert.equal(answer.json!.response.allowed, true);
      assert.equal(answer.json!.response.patch, undefined);
      assert.match(answer.json!.response.warnings![0]!, /pod-identity webhook/);
    }
  });

  test('a body over the limit is refused with 413 (the API server then applies failurePolicy Ignore)', async () => {
    const big = podReview('u-big', 'shop', 'checkout', { metadata: { annotations: { filler: 'x'.repeat(300 * 1024) } } });
    const answer = await post(port, ca, big);
    assert.equal(answer.status, 413);
    // and the listener still serves
    assert.equal((await post(port, ca, podReview('u-after', 'shop', 'checkout'))).json!.response.allowed, true);
  });

  test('metrics count admissions by outcome and record latency', async () => {
    const text = await registry.metrics();
    const count = (outcome: string) => Number(new RegExp(`pod_identity_webhook_admissions_total\\{outcome="${outcome}"\\} (\\d+)`).exec(text)?.[1]);
    assert.ok(count('mutated') >= 2);
    assert.ok(count('skipped') >= 4);
    assert.ok(count('error') >= 3);
    assert.match(text, /pod_identity_webhook_admission_duration_seconds_bucket\{le="0.005",outcome="mutated"\}/);
  });

  test('when the store fails, the pod is admitted unmutated with a warning', async () => {
    await store.close();
    const answer = await post(port, ca, podReview('u-down', 'shop', 'checkout'));
    assert.equal(answer.status, 200);
    assert.equal(answer.json!.response.uid, 'u-down');
    assert.equal(answer.json!.response.allowed, true);
    assert.equal(answer.json!.response.patch, undefined);
    assert.match(answer.json!.response.warnings![0]!, /could not look up/);
  });
});

describe('webhook certificates', () => {
  test('generated once and kept: a restart reuses the CA and the serving certificate', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pi-certs-'));
    const first = ensureGeneratedCertificates(dir, ['localhost', '127.0.0.1', 'pod-identity.pod-identity.svc']);
    assert.deepEqual(first.issued, { ca: true, serving: true });
    const again = ensureGeneratedCertificates(dir, ['localhost', '127.0.0.1', 'pod-identity.pod-identity.svc']);
    assert.deepEqual(again.issued, { ca: false, serving: false });
    assert.equal(again.cert, first.cert);
    const cert = new X509Certificate(first.cert);
    assert.ok(cert.checkIssued(new X509Certificate(first.caCert)));
    assert.ok(cert.checkHost('pod-identity.pod-identity.svc'));
    assert.ok(cert.checkIP('127.0.0.1'));
    // A new host renews the serving certificate under the same CA (caBundle stays valid).
    const widened = ensureGeneratedCertificates(dir, ['localhost', 'webhook.example.com']);
    assert.deepEqual(widened.issued, { ca: false, serving: true });
    assert.equal(widened.caCert, first.caCert);
    // An expired (or nearly expired) serving certificate is renewed: pretend it is 2 years from now.
    const later = ensureGeneratedCertificates(dir, ['localhost', 'webhook.example.com'], Date.now() + 2 * 365 * 86_400_000);
    assert.deepEqual(later.issued, { ca: false, serving: true });
    // Private keys are not readable by others.
    assert.equal(statSync(generatedPaths(dir).key).mode & 0o077, 0);
    assert.equal(statSync(generatedPaths(dir).caKey).mode & 0o077, 0);
    assert.throws(() => ensureGeneratedCertificates(dir, ['bad host\nname']), /not a DNS name/);
  });

  test('configured certificate files are reloaded when they change on disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pi-reload-'));
    const a = ensureGeneratedCertificates(join(dir, 'a'), ['127.0.0.1']);
    const b = ensureGeneratedCertificates(join(dir, 'b'), ['127.0.0.1']);
    const certFile = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    writeFileSync(certFile, a.cert);
    writeFileSync(keyFile, a.key);
    const config = parseServerConfig({
      webhookListen: '127.0.0.1:0',
      dataDir: dir,
      clusters: [{ name: 'demo', jwksFile: '/dev/null' }],
      webhook: { certFile, keyFile },
    });
    const store = new SqliteAssociationStore(':memory:');
    const webhook = createWebhookFromConfig(config, { store, logger: silentLogger(), registry: createRegistry('pod_identity_'), certPollMs: 50 });
    const { port } = await listen(webhook.server, { host: '127.0.0.1', port: 0 });
    try {
      const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;
      const review = podReview('u', 'ns', 'sa');
      const first = await post(port, `${a.caCert}${b.caCert}`, review);
      assert.equal(first.peerCertificate, fingerprint(a.cert));
      // Replace key and certificate the way a Secret volume does: new files renamed into place.
      writeFileSync(`${keyFile}.new`, b.key);
      writeFileSync(`${certFile}.new`, b.cert);
      renameSync(`${keyFile}.new`, keyFile);
      renameSync(`${certFile}.new`, certFile);
      const deadline = Date.now() + 5000;
      let seen: string | undefined = first.peerCertificate;
      while (seen !== fingerprint(b.cert) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        seen = (await post(port, `${a.caCert}${b.caCert}`, review)).peerCertificate;
      }
      assert.equal(seen, fingerprint(b.cert));
      // A half-written pair (certificate without its key) is ignored; the current one keeps serving.
      writeFileSync(certFile, a.cert);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal((await post(port, `${a.caCert}${b.caCert}`, review)).peerCertificate, fingerprint(b.cert));
      assert.equal(readFileSync(keyFile, 'utf8'), b.key);
    } finally {
      await webhook.close();
      await closeServer(webhook.server, 1000);
      await store.close();
    }
  });
});
