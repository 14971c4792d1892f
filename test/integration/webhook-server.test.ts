// The webhook listener over real HTTPS with a real SQLite store: what the API
// server sends, what it gets back, and that nothing ever blocks a pod.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, request, type RequestOptions, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import * as x509 from '@peculiar/x509';
import jsonpatch from 'fast-json-patch';
import { parse as parseYaml } from 'yaml';
import { eventually } from '../helpers/eventually.js';
import { SqliteAssociationStore } from '../../src/associations/stores/sqlite.js';
import type { Association } from '../../src/api/eks.js';
import { closeServer, listen } from '../../src/lib/http.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createRegistry } from '../../src/lib/metrics.js';
import { parseServerConfig } from '../../src/config/load.js';
import { ensureGeneratedCertificates, generatedCertificates, generatedPaths, type KeyPair } from '../../src/webhook/certs.js';
import type { Pod } from '../../src/api/admission.js';
import { createWebhookServer } from '../../src/server/webhook-listener.js';
import { createWebhookFromConfig } from '../../src/server/setup/webhook.js';
import { CLI } from '../helpers/server-process.js';

const run = promisify(execFile);

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
  const registry = createRegistry('server');
  let server: Server;
  let port: number;
  let ca: string;

  before(async () => {
    const tls = await generatedCertificates(dir, ['localhost', '127.0.0.1'], { logger: silentLogger(), onChange: () => {} });
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

const DAY_MS = 86_400_000;

/** A TLS handshake from a client that trusts only `ca` (and checks the name, as every client does). */
function handshake(port: number, ca: string, servername?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.on('error', reject);
  });
}

function days(cert: X509Certificate): number {
  return Math.round((Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / DAY_MS);
}

/** RFC 5280's key identifier: SHA-1 of the public key's bits (for P-256, the uncompressed point), computed without the library. */
function keyIdentifier(cert: X509Certificate): string {
  const { x, y } = cert.publicKey.export({ format: 'jwk' });
  return createHash('sha1')
    .update(Buffer.concat([Buffer.from([4]), Buffer.from(x!, 'base64url'), Buffer.from(y!, 'base64url')]))
    .digest('hex');
}

const EXTENSIONS: Record<string, string> = {
  '2.5.29.14': 'subjectKeyIdentifier',
  '2.5.29.15': 'keyUsage',
  '2.5.29.17': 'subjectAltName',
  '2.5.29.19': 'basicConstraints',
  '2.5.29.35': 'authorityKeyIdentifier',
  '2.5.29.37': 'extendedKeyUsage',
};

/** What Node's X509Certificate does not show: which extensions, which critical, key usage bits, key identifiers (read with @peculiar/x509's parser). */
function extensionsOf(pem: string) {
  const cert = new x509.X509Certificate(pem);
  return {
    extensions: [...cert.extensions].map((e) => `${EXTENSIONS[e.type] ?? e.type}${e.critical ? ' (critical)' : ''}`),
    keyUsage: cert.getExtension(x509.KeyUsagesExtension)?.usages,
    subjectKeyId: cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId,
    authorityKeyId: cert.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId,
  };
}

describe('webhook certificates', () => {
  test('generated once and kept: a restart reuses the CA and the serving certificate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pi-certs-'));
    const first = await ensureGeneratedCertificates(dir, ['localhost', '127.0.0.1', 'pod-identity.pod-identity.svc']);
    assert.deepEqual(first.issued, { ca: true, serving: true });
    const again = await ensureGeneratedCertificates(dir, ['localhost', '127.0.0.1', 'pod-identity.pod-identity.svc']);
    assert.deepEqual(again.issued, { ca: false, serving: false });
    assert.equal(again.cert, first.cert);
    const cert = new X509Certificate(first.cert);
    assert.ok(cert.checkIssued(new X509Certificate(first.caCert)));
    assert.ok(cert.checkHost('pod-identity.pod-identity.svc'));
    assert.ok(cert.checkIP('127.0.0.1'));
    // Other hosts reissue the serving certificate under the same CA (caBundle stays valid).
    const widened = await ensureGeneratedCertificates(dir, ['localhost', 'webhook.example.com']);
    assert.deepEqual(widened.issued, { ca: false, serving: true });
    assert.equal(widened.caCert, first.caCert);
    assert.equal(new X509Certificate(widened.cert).subjectAltName, 'DNS:localhost, DNS:webhook.example.com');
    assert.ok(new X509Certificate(widened.cert).verify(new X509Certificate(first.caCert).publicKey));
    // An expired (or nearly expired) serving certificate is renewed: pretend it is 2 years from now.
    const later = await ensureGeneratedCertificates(dir, ['localhost', 'webhook.example.com'], Date.now() + 2 * 365 * DAY_MS);
    assert.deepEqual(later.issued, { ca: false, serving: true });
    // Private keys are not readable by others; nothing half-written is left behind.
    const paths = generatedPaths(dir);
    assert.equal(statSync(paths.key).mode & 0o777, 0o600);
    assert.equal(statSync(paths.caKey).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(paths.dir).sort(), ['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
    await assert.rejects(ensureGeneratedCertificates(dir, ['bad host\nname']), /not a DNS name/);
  });

  test('what Node reads of the generated CA and serving certificate; a client trusting only the CA completes a TLS handshake', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pi-certs-read-'));
    const hosts = ['localhost', '127.0.0.1', '::1', 'pod-identity.pod-identity.svc'];
    const started = Date.now();
    const made = await ensureGeneratedCertificates(dir, hosts);
    const ca = new X509Certificate(made.caCert);
    const serving = new X509Certificate(made.cert);

    assert.equal(ca.subject, 'CN=pod-identity webhook CA');
    assert.equal(ca.issuer, ca.subject);
    assert.equal(ca.ca, true);
    assert.ok(ca.verify(ca.publicKey));
    assert.ok(ca.checkPrivateKey(createPrivateKey(readFileSync(generatedPaths(dir).caKey))));
    assert.equal(ca.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(days(ca), 3650);
    assert.deepEqual(extensionsOf(made.caCert), {
      extensions: ['basicConstraints (critical)', 'keyUsage (critical)', 'subjectKeyIdentifier'],
      keyUsage: x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
      subjectKeyId: keyIdentifier(ca),
      authorityKeyId: undefined,
    });

    assert.equal(serving.subject, 'CN=localhost');
    assert.equal(serving.issuer, ca.subject);
    assert.equal(serving.ca, false);
    assert.ok(serving.checkIssued(ca));
    assert.ok(serving.verify(ca.publicKey));
    assert.ok(serving.checkPrivateKey(createPrivateKey(made.key)));
    assert.equal(serving.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(serving.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:pod-identity.pod-identity.svc');
    assert.equal(serving.checkHost('pod-identity.pod-identity.svc'), 'pod-identity.pod-identity.svc');
    assert.equal(serving.checkIP('::1'), '::1');
    assert.equal(serving.checkHost('elsewhere.example.com'), undefined);
    assert.equal(serving.checkIP('10.0.0.1'), undefined);
    assert.deepEqual(serving.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'Node calls the extended key usage keyUsage: serverAuth');
    assert.equal(days(serving), 365);
    assert.ok(Date.parse(serving.validFrom) >= started - 1000 && Date.parse(serving.validFrom) <= Date.now());
    // Serial numbers: random, and positive (Node would print a negative INTEGER with a minus sign).
    assert.match(serving.serialNumber, /^[0-9A-F]{16,34}$/);
    assert.notEqual(serving.serialNumber, ca.serialNumber);
    assert.deepEqual(extensionsOf(made.cert), {
      extensions: ['basicConstraints (critical)', 'keyUsage (critical)', 'extendedKeyUsage', 'subjectKeyIdentifier', 'authorityKeyIdentifier', 'subjectAltName'],
      keyUsage: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
      subjectKeyId: keyIdentifier(serving),
      authorityKeyId: keyIdentifier(ca),
    });

    const server = createHttpsServer({ cert: made.cert, key: made.key }, (_req, res) => res.end());
    const { port } = await listen(server, { host: '127.0.0.1', port: 0 });
    try {
      assert.equal(await handshake(port, made.caCert, 'pod-identity.pod-identity.svc'), serving.fingerprint256);
      assert.equal(await handshake(port, made.caCert), serving.fingerprint256, 'by IP address');
      await assert.rejects(handshake(port, made.caCert, 'elsewhere.example.com'), /ERR_TLS_CERT_ALTNAME_INVALID|does not match/);
      const other = await ensureGeneratedCertificates(mkdtempSync(join(tmpdir(), 'pi-certs-other-')), hosts);
      await assert.rejects(handshake(port, other.caCert, 'localhost'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    } finally {
      await closeServer(server, 1000);
    }
  });

  test('a serving certificate within 30 days of expiry is renewed under the same CA; new connections get it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pi-certs-renew-'));
    // The certificates are made 340 days ago by the source's clock: today 25 days are left.
    let clock = Date.now() - 340 * DAY_MS;
    const config = parseServerConfig({ webhookListen: '127.0.0.1:0', dataDir: dir, clusters: [{ name: 'demo', jwksFile: '/dev/null' }] });
    const store = new SqliteAssociationStore(':memory:');
    const webhook = await createWebhookFromConfig(config, { store, logger: silentLogger(), registry: createRegistry('server'), now: () => clock });
    const { port } = await listen(webhook.server, { host: '127.0.0.1', port: 0 });
    try {
      const ca = webhook.tls.caCert!;
      const old = new X509Certificate(webhook.tls.current().cert);
      assert.equal(Math.round((Date.parse(old.validTo) - Date.now()) / DAY_MS), 25);
      assert.equal((await post(port, ca, podReview('u-old', 'ns', 'sa'))).peerCertificate, old.fingerprint256);

      // Nothing is due by the source's clock yet: a refresh keeps what there is.
      await webhook.tls.refresh();
      assert.equal(new X509Certificate(webhook.tls.current().cert).fingerprint256, old.fingerprint256);

      clock = Date.now();
      await webhook.tls.refresh();
      const renewed = new X509Certificate(webhook.tls.current().cert);
      assert.notEqual(renewed.fingerprint256, old.fingerprint256);
      assert.equal(webhook.tls.caCert, ca, 'the CA is kept, so the registered caBundle still works');
      assert.equal(readFileSync(generatedPaths(dir).caCert, 'utf8'), ca);
      assert.equal(readFileSync(generatedPaths(dir).cert, 'utf8'), webhook.tls.current().cert);
      assert.ok(renewed.verify(new X509Certificate(ca).publicKey));
      assert.equal(Math.round((Date.parse(renewed.validTo) - Date.now()) / DAY_MS), 365);
      // A new connection from a client that trusts only the CA gets the new certificate.
      const answer = await post(port, ca, podReview('u-new', 'ns', 'sa'));
      assert.equal(answer.status, 200);
      assert.equal(answer.peerCertificate, renewed.fingerprint256);
    } finally {
      webhook.close();
      await closeServer(webhook.server, 1000);
      await store.close();
    }
  });

  test('an unusable CA (due, corrupt, or not matching its key) reissues both', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pi-certs-ca-'));
    const hosts = ['localhost', '127.0.0.1'];
    const paths = generatedPaths(dir);
    const spoilers: Array<[string, () => void]> = [
      ['missing key', () => rmSync(paths.caKey)],
      ['corrupt certificate', () => writeFileSync(paths.caCert, '-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n')],
      ['a key that is not the CA’s', () => writeFileSync(paths.caKey, readFileSync(paths.key))],
    ];
    let previous = await ensureGeneratedCertificates(dir, hosts);
    for (const [what, spoil] of spoilers) {
      spoil();
      const next = await ensureGeneratedCertificates(dir, hosts);
      assert.deepEqual(next.issued, { ca: true, serving: true }, what);
      assert.notEqual(next.caCert, previous.caCert, what);
      assert.ok(new X509Certificate(next.cert).verify(new X509Certificate(next.caCert).publicKey), what);
      previous = next;
    }
    // Within 30 days of the CA's end (10 years on): both again.
    const due = await ensureGeneratedCertificates(dir, hosts, Date.now() + (3650 - 20) * DAY_MS);
    assert.deepEqual(due.issued, { ca: true, serving: true });
  });

  test('a refresh that reissues both does not block the event loop; refreshes at once share one renewal', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pi-certs-loop-'));
    // Made 3640 days ago by the source's clock: today the CA has 10 days left, so both are reissued.
    let clock = Date.now() - 3640 * DAY_MS;
    const changes: KeyPair[] = [];
    const source = await generatedCertificates(dir, ['localhost', '127.0.0.1'], { logger: silentLogger(), onChange: (pair) => changes.push(pair), now: () => clock });
    const oldCa = source.caCert;
    clock = Date.now();

    const delay = monitorEventLoopDelay({ resolution: 10 });
    let turns = 0;
    let renewing = true;
    const spin = () => {
      if (!renewing) return;
      turns += 1;
      setImmediate(spin);
    };
    delay.enable();
    setImmediate(spin);
    const refresh = source.refresh();
    assert.equal(source.refresh(), refresh, 'a second refresh waits for the one under way');
    await refresh;
    renewing = false;
    delay.disable();
    source.close();

    // The loop kept turning while the keys were made and signed (a synchronous renewal would leave turns at 0) …
    assert.ok(turns > 0, `the event loop turned ${turns} times during the renewal`);
    // … and no turn waited long (generous: 2 busy cores).
    assert.ok(delay.max < 200e6, `longest event-loop delay during the renewal: ${(delay.max / 1e6).toFixed(1)} ms`);
    assert.notEqual(source.caCert, oldCa);
    assert.equal(changes.length, 1);
    assert.deepEqual(changes[0], source.current());
    assert.ok(new X509Certificate(source.current().cert).verify(new X509Certificate(source.caCert!).publicKey));
  });

  test('the built CLI generates them with child processes forbidden (Node\'s permission model)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pi-certs-perm-'));
    // Without --allow-child-process, any spawn (an openssl call, say) throws ERR_ACCESS_DENIED.
    const { stdout } = await run(
      process.execPath,
      ['--permission', '--allow-fs-read=*', `--allow-fs-write=${dir}`, CLI, 'webhook-config', '--url', 'https://127.0.0.1:9443'],
      { env: { ...process.env, POD_IDENTITY_DATA_DIR: dir }, timeout: 20_000 },
    );
    const caBundle = (parseYaml(stdout) as { webhooks: { clientConfig: { caBundle: string } }[] }).webhooks[0]!.clientConfig.caBundle;
    assert.equal(Buffer.from(caBundle, 'base64').toString(), readFileSync(generatedPaths(dir).caCert, 'utf8'));
    const serving = new X509Certificate(readFileSync(generatedPaths(dir).cert));
    assert.ok(serving.checkIP('127.0.0.1'));
    assert.ok(serving.verify(new X509Certificate(Buffer.from(caBundle, 'base64')).publicKey));
  });

  test('configured certificate files are reloaded when they change on disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pi-reload-'));
    const a = await ensureGeneratedCertificates(join(dir, 'a'), ['127.0.0.1']);
    const b = await ensureGeneratedCertificates(join(dir, 'b'), ['127.0.0.1']);
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
    const webhook = await createWebhookFromConfig(config, { store, logger: silentLogger(), registry: createRegistry('server'), certPollMs: 50 });
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
      await eventually(
        'the new certificate served',
        async () => {
          assert.equal((await post(port, `${a.caCert}${b.caCert}`, review)).peerCertificate, fingerprint(b.cert));
          return true;
        },
        { timeoutMs: 5000, intervalMs: 50 },
      );
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
