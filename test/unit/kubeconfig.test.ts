// The small kubeconfig reader the webhook uses to read ServiceAccounts.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { loadKubeAccess } from '../../src/kube/kubeconfig.js';

function kubeconfig(dir: string, user: Record<string, unknown>, cluster: Record<string, unknown> = { server: 'https://127.0.0.1:6443', 'certificate-authority-data': Buffer.from('CA PEM').toString('base64') }): string {
  const path = join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}`);
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'ctx',
      clusters: [{ name: 'other', cluster: { server: 'https://wrong:1' } }, { name: 'c', cluster }],
      users: [{ name: 'u', user }],
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
    }),
  );
  return path;
}

test('the current context: server, CA data, client certificate files relative to the kubeconfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pi-kubeconfig-'));
  writeFileSync(join(dir, 'client.crt'), 'CERT');
  writeFileSync(join(dir, 'client.key'), 'KEY');
  const access = loadKubeAccess(kubeconfig(dir, { 'client-certificate': 'client.crt', 'client-key': join(dir, 'client.key') }));
  assert.equal(access.server.href, 'https://127.0.0.1:6443/');
  assert.equal(access.ca?.toString(), 'CA PEM');
  assert.equal(access.cert?.toString(), 'CERT');
  assert.equal(access.key?.toString(), 'KEY');
  assert.equal(access.token, undefined);
  assert.equal(access.insecureSkipTlsVerify, false);
});

test('bearer tokens, inline or from a file read on every request', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pi-kubeconfig-'));
  assert.equal(loadKubeAccess(kubeconfig(dir, { token: 'abc' })).token?.(), 'abc');
  writeFileSync(join(dir, 'token'), 'first\n');
  const access = loadKubeAccess(kubeconfig(dir, { tokenFile: 'token' }));
  assert.equal(access.token?.(), 'first');
  writeFileSync(join(dir, 'token'), 'rotated\n');
  assert.equal(access.token?.(), 'rotated');
});

test('unsupported or broken kubeconfigs fail with a clear message', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pi-kubeconfig-'));
  assert.throws(() => loadKubeAccess(kubeconfig(dir, { exec: { command: 'aws' } })), /exec and auth-provider users are not supported/);
  assert.throws(() => loadKubeAccess(kubeconfig(dir, {}, {})), /no cluster server/);
  const empty = join(dir, 'empty');
  writeFileSync(empty, '');
  assert.throws(() => loadKubeAccess(empty), /not a kubeconfig/);
});

test('"in-cluster" outside a pod is a clear error', () => {
  const saved = process.env.KUBERNETES_SERVICE_HOST;
  delete process.env.KUBERNETES_SERVICE_HOST;
  try {
    assert.throws(() => loadKubeAccess('in-cluster'), /only works inside a pod/);
  } finally {
    if (saved !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved;
  }
});
