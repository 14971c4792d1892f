// Failing fast, against the built server process: a jwksFile that is
// missing, unreadable or holds no key stops the server at once with exit 2
// and the key named; an issuer whose OIDC discovery does not answer, or a
// cluster API server out of reach, keeps /readyz at 503 with the reason in
// its body and pod_identity_dependency_up at 0, until it answers again.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, connect, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { eventually } from '../helpers/eventually.js';
import { ADMIN, CLI, freePort, NODE, startServerProcess, writeUnusedJwks, type ServerProcess } from '../helpers/server-process.js';
import { jwksOf, testSigner } from '../helpers/sa-tokens.js';
import { kubeMissingReason, startKubeControlPlane, type KubeControlPlane } from '../peers/kube.js';
import { requirePeer } from '../peers/require.js';

/** Runs `pod-identity server` with this config until it exits (or 15 s pass); its exit code and stderr. */
function runServer(dir: string, clusters: unknown[]): Promise<{ code: number | null; stderr: string }> {
  const configPath = join(dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    configPath,
    stringify({ listen: '127.0.0.1:0', webhookListen: '127.0.0.1:0', metricsListen: '127.0.0.1:0', dataDir: join(dir, 'data'), admins: [ADMIN], nodes: [NODE], clusters }),
  );
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'server', '--config', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

async function readiness(server: ServerProcess): Promise<{ status: number; body: string; up: Record<string, number> }> {
  const res = await fetch(`${server.metricsUrl}/readyz`);
  const body = await res.text();
  const metrics = await (await fetch(`${server.metricsUrl}/metrics`)).text();
  const up: Record<string, number> = {};
  for (const [, cluster, dependency, value] of metrics.matchAll(/^pod_identity_dependency_up\{cluster="([^"]+)",dependency="([^"]+)"\} (\d+)$/gm)) up[`${cluster}/${dependency}`] = Number(value);
  return { status: res.status, body, up };
}

/** Polls until `check` holds; answers how long it took. */
async function within<T>(ms: number, read: () => Promise<T>, check: (value: T) => boolean, what: string): Promise<number> {
  const started = Date.now();
  let last: T | undefined;
  await eventually(what, async () => check((last = await read())), { timeoutMs: ms, context: () => `last: ${JSON.stringify(last)}` });
  return Date.now() - started;
}

function listenOn(server: Server | TcpServer, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
}

function closeAll(server: Server | TcpServer, sockets: Set<{ destroy(): void }>): Promise<void> {
  for (const socket of sockets) socket.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('fail fast: jwksFile', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'fail-fast-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a missing jwksFile exits 2 naming clusters[i].jwksFile', async () => {
    const good = writeUnusedJwks(join(dir, 'good.json'));
    const missing = join(dir, 'nowhere', 'jwks.json');
    const { code, stderr } = await runServer(dir, [
      { name: 'first', jwksFile: good },
      { name: 'second', jwksFile: missing },
    ]);
    assert.equal(code, 2, stderr);
    assert.match(stderr, new RegExp(`clusters\\[1\\]\\.jwksFile: cannot read ${missing.replace(/[.]/g, '\\.')} \\(ENOENT\\)`));
    assert.doesNotMatch(stderr, /server started/);
  });

  test('an unreadable jwksFile (a directory), one that is not JSON and one without a usable key exit 2 too', async () => {
    const directory = join(dir, 'a-directory');
    mkdirSync(directory);
    const notJson = join(dir, 'not-json');
    writeFileSync(notJson, 'keys: [] # YAML, not JSON');
    const noKeys = join(dir, 'no-keys.json');
    writeFileSync(noKeys, JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' }] }));
    for (const [file, reason] of [
      [directory, /cannot read .* \(EISDIR\)/],
      [notJson, /is not JSON/],
      [noKeys, /holds no usable signing key \(hmac: not an asymmetric public key\)/],
    ] as const) {
      const { code, stderr } = await runServer(dir, [{ name: 'demo', jwksFile: file }]);
      assert.equal(code, 2, stderr);
      assert.match(stderr, /clusters\[0\]\.jwksFile: /);
      assert.match(stderr, reason);
    }
  });
});

describe('fail fast: an unreachable issuer', { timeout: 90_000 }, () => {
  let dir: string;
  let server: ServerProcess;
  let issuerPort: number;
  let issuerUrl: string;
  let jwks: unknown;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fail-fast-issuer-'));
    jwks = jwksOf(await testSigner('RS256'));
    issuerPort = await freePort();
    issuerUrl = `http://127.0.0.1:${issuerPort}`;
    server = await startServerProcess({
      config: {
        clusters: [
          { name: 'fine', jwksFile: writeUnusedJwks(join(dir, 'jwks.json')) },
          { name: 'discovered', issuer: issuerUrl },
        ],
      },
      untilAlive: true,
    });
  });

  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('/readyz is 503 naming the cluster and why, the metric says 0; when discovery answers it is ready, and not again when it goes', async () => {
    await within(10_000, () => readiness(server), (r) => r.status === 503 && /discovered/.test(r.body), 'not ready');
    const down = await readiness(server);
    assert.match(down.body, new RegExp(`^not ready:\\n- cluster discovered: signing-keys \\(OIDC discovery of ${issuerUrl}\\): fetch failed \\(ECONNREFUSED\\)\\n$`));
    assert.deepEqual(down.up, { 'fine/signing-keys': 1, 'discovered/signing-keys': 0 });

    // the issuer comes up: discovery document, then its JWKS
    const sockets = new Set<{ destroy(): void }>();
    const issuer = createServer((req, res) => {
      const body = req.url === '/.well-known/openid-configuration' ? { issuer: issuerUrl, jwks_uri: `${issuerUrl}/openid/v1/jwks` } : req.url === '/openid/v1/jwks' ? jwks : undefined;
      res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body ?? {}));
    });
    issuer.on('connection', (socket) => (sockets.add(socket), socket.on('close', () => sockets.delete(socket))));
    await listenOn(issuer, issuerPort);
    const recovered = await within(10_000, () => readiness(server), (r) => r.status === 200, 'ready once discovery answers');
    assert.ok(recovered < 5_000, `ready ${recovered} ms after the issuer came back (probes every 2 s while failing)`);
    const up = await readiness(server);
    assert.equal(up.body, 'ok\n');
    assert.deepEqual(up.up, { 'fine/signing-keys': 1, 'discovered/signing-keys': 1 });

    // and it goes away again: noticed at the next probe (10 s while healthy)
    await closeAll(issuer, sockets);
    await within(20_000, () => readiness(server), (r) => r.status === 503, 'not ready once the issuer is gone');
    assert.equal((await readiness(server)).up['discovered/signing-keys'], 0);
    assert.match(server.logs(), /"a dependency does not answer: not ready"/);
    assert.match(server.logs(), /"a dependency answers again"/);
  });
});

describe('fail fast: an unreachable cluster API server', { skip: requirePeer('kube-apiserver', kubeMissingReason), timeout: 120_000 }, () => {
  let dir: string;
  let kube: KubeControlPlane;
  let server: ServerProcess;
  let proxyPort: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fail-fast-kube-'));
    kube = await startKubeControlPlane();
    // the server reaches the API server through a port that forwards to it only while the test says so
    proxyPort = await freePort();
    const kubeconfig = parse(readFileSync(kube.kubeconfigPath, 'utf8')) as { clusters: { cluster: { server: string } }[] };
    for (const entry of kubeconfig.clusters) entry.cluster.server = `https://127.0.0.1:${proxyPort}`;
    writeFileSync(join(dir, 'kubeconfig'), stringify(kubeconfig));
    server = await startServerProcess({ config: { clusters: [{ name: 'kube', kubeconfig: join(dir, 'kubeconfig'), tokenReview: true }] }, untilAlive: true });
  });

  after(async () => {
    await server?.stop();
    await kube?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('/readyz names the API server while it is out of reach, and is ready once it answers', async () => {
    await within(10_000, () => readiness(server), (r) => r.status === 503, 'not ready');
    const down = await readiness(server);
    assert.match(down.body, new RegExp(`- cluster kube: api-server \\(https://127\\.0\\.0\\.1:${proxyPort}\\): .*ECONNREFUSED`));
    assert.deepEqual(down.up, { 'kube/api-server': 0 });

    const target = new URL(kube.url);
    const sockets = new Set<{ destroy(): void }>();
    const proxy = createTcpServer((client) => {
      const upstream = connect(Number(target.port), target.hostname);
      client.pipe(upstream).pipe(client);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => undefined);
      }
    });
    await listenOn(proxy, proxyPort);
    try {
      await within(10_000, () => readiness(server), (r) => r.status === 200, 'ready once the API server answers');
      assert.deepEqual((await readiness(server)).up, { 'kube/api-server': 1 });
    } finally {
      await closeAll(proxy, sockets);
    }
  });
});
