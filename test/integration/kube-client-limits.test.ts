// The Kubernetes client's bounds (issue 25, item 3) against a stand-in API
// server on loopback that misbehaves in ways a real one will not on demand:
// an answer that drips a byte at a time (each within any socket timeout), an
// answer far over the size limit, and a watch line that never ends.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { kubeClientFromKubeconfig, type KubeClient } from '../../src/kube/client.js';
import { listen } from '../../src/lib/http.js';

describe('Kubernetes client bounds', { timeout: 60_000 }, () => {
  let dir: string;
  let peer: Server;
  let kube: KubeClient;
  let behaviour: (res: ServerResponse) => void = () => undefined;
  let sent = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kube-limits-'));
    peer = createServer((req, res) => {
      req.resume();
      behaviour(res);
    });
    const { port } = await listen(peer, { host: '127.0.0.1', port: 0 });
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        'current-context': 'peer',
        contexts: [{ name: 'peer', context: { cluster: 'peer', user: 'peer' } }],
        clusters: [{ name: 'peer', cluster: { server: `http://127.0.0.1:${port}` } }],
        users: [{ name: 'peer', user: { token: 'test-token' } }],
      }),
    );
    kube = kubeClientFromKubeconfig(kubeconfig);
  });
  after(async () => {
    kube.close();
    peer.closeAllConnections();
    await new Promise<void>((resolve) => peer.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  /** 1 MiB chunks as fast as the client reads them, counting what got out. */
  const flood = (res: ServerResponse, prefix = '') => {
    sent = 0;
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write(prefix);
    const pump = () => {
      while (sent < 512 * 1024 * 1024) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  };

  test('an answer that drips a byte at a time ends at the request deadline', async () => {
    behaviour = (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const drip = setInterval(() => res.write(' '), 200);
      res.on('close', () => clearInterval(drip));
    };
    const started = performance.now();
    await assert.rejects(kube.request('GET', '/openid/v1/jwks', { timeoutMs: 1000 }), /no answer from the API server within 1000 ms/);
    const seconds = (performance.now() - started) / 1000;
    assert.ok(seconds >= 0.95 && seconds < 2, `gave up after ${seconds.toFixed(2)} s`);
  });

  test('an answer over the limit is cut off while it streams', async () => {
    behaviour = (res) => flood(res);
    await assert.rejects(kube.request('GET', '/api/v1/namespaces/default/pods/x', { timeoutMs: 10_000, maxBytes: 1024 * 1024 }), /larger than 1048576 bytes/);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(sent < 32 * 1024 * 1024, `the peer got out ${(sent / 2 ** 20).toFixed(0)} MiB`);
  });

  test('a watch line that never ends is cut off', async () => {
    behaviour = (res) => flood(res, '{"type":"ADDED","object":');
    const lines: string[] = [];
    await assert.rejects(kube.watch('/apis/podidentity.dev/v1alpha1/podidentityassociations?watch=1', (line) => lines.push(line), new AbortController().signal, 10_000), /a watch event is longer than \d+ characters/);
    assert.equal(lines.length, 0);
    assert.ok(sent < 64 * 1024 * 1024, `the peer got out ${(sent / 2 ** 20).toFixed(0)} MiB`);
  });
});
