// Loading kubeconfigs (src/kube/connect.ts, on @kubernetes/client-node):
// what is accepted, what is refused with a message naming the file, and what
// happens to credentials before any request leaves the process (an exec
// plugin's failure, several requests waiting for one plugin run). Requests
// to a real API server: test/integration/kube-connect.test.ts.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { connectKube, KubeCredentialsError, loadKubeConfig } from '../../src/kube/connect.js';

/** Nothing listens on port 1: a request that gets past its credentials fails to connect. */
const NOWHERE = 'https://127.0.0.1:1';

function kubeconfig(dir: string, user: Record<string, unknown>, cluster: Record<string, unknown> = { server: NOWHERE, 'certificate-authority-data': Buffer.from('CA PEM').toString('base64') }): string {
  const path = join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}`);
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'ctx',
      clusters: [
        { name: 'other', cluster: { server: 'https://wrong:1' } },
        { name: 'c', cluster },
      ],
      users: [{ name: 'u', user }],
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u', namespace: 'team-a' } }],
    }),
  );
  return path;
}

/** An exec credential plugin: a shell script that logs each run, then runs `body`. */
function plugin(dir: string, body: string): { command: string; runs: () => number } {
  const command = join(dir, `plugin-${Math.random().toString(36).slice(2)}.sh`);
  const log = `${command}.log`;
  writeFileSync(command, `#!/bin/sh\necho run >> ${log}\n${body}\n`);
  chmodSync(command, 0o755);
  return { command, runs: () => readFileSync(log, 'utf8').split('\n').filter(Boolean).length };
}

const execUser = (command: string) => ({ exec: { apiVersion: 'client.authentication.k8s.io/v1', command, interactiveMode: 'Never' } });

test('the current context: its server and namespace; client certificate paths are relative to the kubeconfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pi-kubeconfig-'));
  const path = kubeconfig(dir, { 'client-certificate': 'client.crt', 'client-key': join(dir, 'client.key') });
  const kube = connectKube(path);
  assert.equal(kube.server, NOWHERE);
  assert.equal(kube.namespace, 'team-a');
  assert.equal(kube.config.getCurrentUser()?.certFile, join(dir, 'client.crt'));
  assert.equal(kube.config.getCurrentUser()?.keyFile, join(dir, 'client.key'));
});

test('exec credential plugins are accepted (client.authentication.k8s.io/v1)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pi-kubeconfig-'));
  assert.equal(loadKubeConfig(kubeconfig(dir, execUser('/bin/true'))).getCurrentUser()?.exec?.command, '/bin/true');
});

test('broken or unsupported kubeconfigs fail with a message naming the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pi-kubeconfig-'));
  const noServer = kubeconfig(dir, {}, {});
  assert.throws(() => loadKubeConfig(noServer), (e: Error) => e.message.startsWith(`${noServer}: not a usable kubeconfig`) && /server is missing/.test(e.message));
  const empty = join(dir, 'empty');
  writeFileSync(empty, '');
  assert.throws(() => loadKubeConfig(empty), new RegExp(`^Error: ${empty}: not a usable kubeconfig`));
  assert.throws(() => loadKubeConfig(join(dir, 'missing')), /not a usable kubeconfig \(ENOENT/);
  const proxied = kubeconfig(dir, { token: 'x' }, { server: NOWHERE, 'proxy-url': 'http://proxy:3128' });
  assert.throws(() => loadKubeConfig(proxied), /proxy-url is not supported/);
  const noContext = join(dir, 'no-context');
  writeFileSync(noContext, stringify({ apiVersion: 'v1', kind: 'Config', clusters: [{ name: 'c', cluster: { server: NOWHERE } }] }));
  assert.throws(() => loadKubeConfig(noContext), /the current context names no cluster/);
});

test('"in-cluster" outside a pod is a clear error', () => {
  const saved = process.env.KUBERNETES_SERVICE_HOST;
  delete process.env.KUBERNETES_SERVICE_HOST;
  try {
    assert.throws(() => loadKubeConfig('in-cluster'), /only works inside a pod/);
  } finally {
    if (saved !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved;
  }
});

test('a failing exec plugin fails the request before it is sent, naming the kubeconfig, the plugin and what it printed, and is not run again at once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pi-kubeconfig-'));
  const failing = plugin(dir, 'echo "error: you must be logged in to the server" >&2\nexit 1');
  const path = kubeconfig(dir, execUser(failing.command));
  const kube = connectKube(path);
  await assert.rejects(
    kube.client(CoreV1Api).readNamespace({ name: 'default' }),
    (e: Error) =>
      e instanceof KubeCredentialsError && e.message === `${path}: the exec credential plugin ${failing.command} failed: error: you must be logged in to the server`,
  );
  // the next request, a moment later, gets the same answer without running the plugin again
  await assert.rejects(kube.client(CoreV1Api).readNamespace({ name: 'default' }), /you must be logged in/);
  assert.equal(failing.runs(), 1);
  const silent = plugin(dir, 'exit 3');
  await assert.rejects(connectKube(kubeconfig(dir, execUser(silent.command))).client(CoreV1Api).readNamespace({ name: 'default' }), /failed: it exited with an error and printed nothing/);
  const missing = join(dir, 'no-such-plugin');
  await assert.rejects(connectKube(kubeconfig(dir, execUser(missing))).client(CoreV1Api).readNamespace({ name: 'default' }), new RegExp(`plugin ${missing} failed: .*ENOENT`));
  const garbage = plugin(dir, 'echo "not json"');
  await assert.rejects(connectKube(kubeconfig(dir, execUser(garbage.command))).client(CoreV1Api).readNamespace({ name: 'default' }), /plugin .* printed no ExecCredential JSON \(Unexpected token/);
  await kube.close();
});

test('requests that need credentials at the same moment wait for one run of the exec plugin', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pi-kubeconfig-'));
  const slow = plugin(dir, `sleep 0.3\necho '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t0ken"}}'`);
  const kube = connectKube(kubeconfig(dir, execUser(slow.command)));
  const core = kube.client(CoreV1Api, { timeoutMs: 5_000 });
  const results = await Promise.allSettled(Array.from({ length: 5 }, () => core.readNamespace({ name: 'default' })));
  // every request got past its credentials and failed to connect (nothing listens on port 1)
  for (const result of results) assert.match(result.status === 'rejected' ? String(result.reason) : 'fulfilled', /ECONNREFUSED/);
  assert.equal(slow.runs(), 1);
  await kube.close();
});
