// What src/kube/connect.ts promises about every request to a real
// kube-apiserver: credentials from an exec plugin (run once while its
// credential lasts), kept-alive connections reused request after request, a
// deadline on the whole exchange and a bound on the answer's size.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { AuthenticationV1Api, CoreV1Api } from '@kubernetes/client-node';
import { connectKube } from '../../src/kube/connect.js';
import { createPod, createServiceAccount, requestPodToken } from '../peers/kube-api.js';
import { EKS_AUDIENCE, kubeMissingReason, startKubeControlPlane, writeExecKubeconfig, type KubeControlPlane } from '../peers/kube.js';
import { requirePeer } from '../peers/require.js';

/** The local ports of the TCP connections this process has open to `port` (/proc/net/tcp, sockets among our file descriptors). */
function connectionsTo(port: number): Set<string> {
  const ours = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith('socket:[')) ours.add(target.slice(8, -1));
    } catch {
      // closed meanwhile
    }
  }
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const rows = readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/));
  return new Set(rows.filter((fields) => fields.length > 9 && fields[2]!.endsWith(`:${hexPort}`) && fields[3] === '01' && ours.has(fields[9]!)).map((fields) => fields[1]!));
}

describe('Kubernetes API requests through src/kube/connect.ts', { skip: requirePeer('kube-apiserver', kubeMissingReason), timeout: 120_000 }, () => {
  let kube: KubeControlPlane;
  let port: number;

  before(async () => {
    kube = await startKubeControlPlane();
    port = Number(new URL(kube.url).port);
    await createServiceAccount(kube, 'default', 'app');
  });
  after(async () => {
    await kube?.stop();
  });

  test('an exec credential plugin: requests are authenticated with its token, and it runs once while the token lasts', async () => {
    const exec = writeExecKubeconfig(kube, 'connect');
    const api = connectKube(exec.path);
    try {
      const core = api.client(CoreV1Api);
      for (let i = 0; i < 10; i++) assert.equal((await core.readNamespace({ name: 'default' })).metadata?.name, 'default');
      assert.equal(readFileSync(exec.runLog, 'utf8').trim().split('\n').length, 1, 'one run of the plugin');
    } finally {
      await api.close();
    }
  });

  test('TokenReviews and pod reads, one after the other, reuse kept-alive connections (two at most)', async () => {
    const api = connectKube(kube.kubeconfigPath);
    try {
      const reviews = api.client(AuthenticationV1Api);
      const core = api.client(CoreV1Api);
      const pod = await createPod(kube, { namespace: 'default', name: 'reused', serviceAccountName: 'app' });
      const { token } = await requestPodToken(kube, { namespace: 'default', serviceAccount: 'app', podName: 'reused', podUid: pod.metadata!.uid! });
      // the tests' own helpers keep connections of their own: only new ones count
      const before = connectionsTo(port);
      const opened = new Set<string>();
      for (let i = 0; i < 25; i++) {
        const review = await reviews.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [EKS_AUDIENCE] } } });
        assert.equal(review.status?.authenticated, true);
        assert.equal((await core.readNamespacedPod({ namespace: 'default', name: 'reused' })).metadata?.uid, pod.metadata!.uid);
        for (const local of connectionsTo(port)) if (!before.has(local)) opened.add(local);
      }
      // a request sent the moment the previous answer ends may find its connection not yet released, and take a second one
      assert.ok(opened.size >= 1 && opened.size <= 2, `50 requests, ${opened.size} new connections (${[...opened].join(', ')})`);
    } finally {
      await api.close();
    }
  });

  test('an answer longer than the bound fails the request; a roomier client reads it', async () => {
    const api = connectKube(kube.kubeconfigPath);
    try {
      await assert.rejects(api.client(CoreV1Api, { maxBytes: 1024 }).listNamespace(), /\/api\/v1\/namespaces: the answer is larger than 1024 bytes/);
      assert.ok((await api.client(CoreV1Api).listNamespace()).items.length >= 1);
    } finally {
      await api.close();
    }
  });

  test('the deadline covers the whole exchange: an answer still streaming when it passes fails the request', async () => {
    const api = connectKube(kube.kubeconfigPath);
    try {
      // a watch: the API server answers at once and keeps the answer open
      const started = Date.now();
      await assert.rejects(api.client(CoreV1Api, { timeoutMs: 500 }).listNamespacedPod({ namespace: 'default', watch: true, timeoutSeconds: 30 }), /no answer from https:\/\/127\.0\.0\.1:\d+\/api\/v1\/namespaces\/default\/pods within 500 ms/);
      assert.ok(Date.now() - started < 5_000);
    } finally {
      await api.close();
    }
  });
});
