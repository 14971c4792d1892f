// The webhook as `pod-identity server` serves it: generated certificate kept in
// the data directory, decisions straight from the association store (an
// association created a moment ago applies to the next pod), the identities
// export over the API and the CLI, and `webhook-config` trusting the same CA.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { CreatePodIdentityAssociationCommand, EKSClient } from '@aws-sdk/client-eks';
import { parse as parseYaml } from 'yaml';
import { signRequest } from '../../src/lib/sigv4.js';
import { ADMIN, CLI, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const run = promisify(execFile);

function review(uid: string, namespace: string, serviceAccount: string): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace,
      operation: 'CREATE',
      object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { serviceAccountName: serviceAccount, containers: [{ name: 'c', image: 'i' }] } },
    },
  });
}

function admit(url: string, ca: string, body: string): Promise<{ status: number; json: { response: { uid: string; allowed: boolean; patch?: string } } }> {
  const target = new URL('/mutate', url);
  return new Promise((resolve, reject) => {
    const req = request(target, { method: 'POST', ca, headers: { 'content-type': 'application/json' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString()) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('webhook in `pod-identity server`', () => {
  let server: ServerProcess;
  let eks: EKSClient;
  let ca: string;
  before(async () => {
    server = await startServerProcess({ config: { region: 'eu-west-1', webhook: { certHosts: ['pod-identity.pod-identity.svc'] } } });
    eks = new EKSClient({ endpoint: server.apiUrl, region: 'eu-west-1', credentials: { ...ADMIN }, maxAttempts: 1 });
    ca = readFileSync(join(server.dataDir, 'webhook-tls', 'ca.crt'), 'utf8');
  });
  after(async () => {
    eks?.destroy();
    await server?.stop();
  });

  test('an association created now applies to the very next pod; other accounts are untouched', async () => {
    const before = await admit(server.webhookUrl, ca, review('u-0', 'shop', 'checkout'));
    assert.equal(before.status, 200);
    assert.equal(before.json.response.patch, undefined);
    await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'shop', serviceAccount: 'checkout', roleArn: 'arn:aws:iam::111122223333:role/r' }));
    const after = await admit(server.webhookUrl, ca, review('u-1', 'shop', 'checkout'));
    assert.equal(after.json.response.uid, 'u-1');
    const patch = JSON.parse(Buffer.from(after.json.response.patch!, 'base64').toString()) as { path: string; value: unknown }[];
    assert.ok(patch.some((op) => op.path === '/spec/volumes'));
    // webhook.injectRegion defaults to true: the server's region is injected.
    assert.ok(JSON.stringify(patch).includes('"AWS_REGION","value":"eu-west-1"'));
    const other = await admit(server.webhookUrl, ca, review('u-2', 'shop', 'cart'));
    assert.equal(other.json.response.patch, undefined);
  });

  test('identities: read-only endpoint (admin SigV4) and CLI give the AWS webhook file', async () => {
    await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'billing', serviceAccount: 'invoicer', roleArn: 'arn:aws:iam::111122223333:role/r' }));
    const expected = { identities: [{ namespace: 'billing', serviceAccount: 'invoicer' }, { namespace: 'shop', serviceAccount: 'checkout' }] };
    const url = new URL(`${server.apiUrl}/clusters/demo/identities`);
    const signed = await fetch(url, { headers: await signRequest({ method: 'GET', url }, { credentials: ADMIN, region: 'eu-west-1', service: 'eks' }) });
    assert.equal(signed.status, 200);
    assert.deepEqual(await signed.json(), expected);
    assert.equal((await fetch(url)).status, 403);
    const missing = new URL(`${server.apiUrl}/clusters/nope/identities`);
    const notFound = await fetch(missing, { headers: await signRequest({ method: 'GET', url: missing }, { credentials: ADMIN, region: 'eu-west-1', service: 'eks' }) });
    assert.equal(notFound.status, 404);

    const { stdout } = await run(process.execPath, [CLI, 'identities', '--cluster-name', 'demo', '--region', 'eu-west-1', '--endpoint', server.apiUrl, '--access-key-id', ADMIN.accessKeyId, '--secret-access-key', ADMIN.secretAccessKey], {
      timeout: 20_000,
    });
    assert.deepEqual(JSON.parse(stdout), expected);
    // --file writes the same document where AWS's webhook watches it.
    const file = join(server.dataDir, 'identities.json');
    await run(process.execPath, [CLI, 'identities', '--cluster-name', 'demo', '--region', 'eu-west-1', '--endpoint', server.apiUrl, '--access-key-id', ADMIN.accessKeyId, '--secret-access-key', ADMIN.secretAccessKey, '--file', file], {
      timeout: 20_000,
    });
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), expected);
  });

  test('webhook-config prints a configuration trusting the CA the server uses', async () => {
    const { stdout, stderr } = await run(process.execPath, [CLI, 'webhook-config', '--config', server.configPath, '--service', 'pod-identity/pod-identity', '--timeout-seconds', '5'], { timeout: 20_000 });
    assert.equal(stderr, '');
    const doc = parseYaml(stdout) as { kind: string; webhooks: { clientConfig: { caBundle: string; service: unknown }; timeoutSeconds: number; failurePolicy: string }[] };
    assert.equal(doc.kind, 'MutatingWebhookConfiguration');
    const [hook] = doc.webhooks;
    assert.equal(Buffer.from(hook!.clientConfig.caBundle, 'base64').toString().trim(), ca.trim());
    assert.deepEqual(hook!.clientConfig.service, { namespace: 'pod-identity', name: 'pod-identity', port: 443, path: '/mutate' });
    assert.equal(hook!.timeoutSeconds, 5);
    assert.equal(hook!.failurePolicy, 'Ignore');
    // A host the serving certificate does not cover is pointed out.
    const { stderr: warned } = await run(process.execPath, [CLI, 'webhook-config', '--config', server.configPath, '--url', 'https://webhook.example.com:9443'], { timeout: 20_000 });
    assert.match(warned, /does not cover "webhook\.example\.com"/);
  });
});
