// Outbound fetches stop at their limit while the answer streams (issue 25,
// item 3). The real server process fetches a cluster's JWKS (jwksUri) and its
// OIDC discovery document from a peer on loopback that answers 256 MB; the
// server's resident memory, sampled from /proc while it reads, must grow by
// less than 16 MB. The aws-sts issuer's STS client gets the same bound, and a
// deadline, against a peer that answers an endless body or never finishes.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { StsIssuer } from '../../src/auth/issuers/sts.js';
import type { Association } from '../../src/api/eks.js';
import { WireError } from '../../src/lib/errors.js';
import { listen } from '../../src/lib/http.js';
import { createLogger } from '../../src/lib/logger.js';
import { signRequest } from '../../src/lib/sigv4.js';
import { jwksOf, podClaims, TEST_ISSUER, testSigner, type TestSigner } from '../helpers/sa-tokens.js';
import { NODE, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const HUGE_BYTES = 256 * 1024 * 1024;
const MAX_GROWTH_BYTES = 16 * 1024 * 1024;

/** Writes `total` bytes of JSON-ish filler, 1 MiB at a time, as fast as the reader takes them; answers how many got out. */
function sendHuge(res: ServerResponse, total: number): Promise<number> {
  const chunk = Buffer.alloc(1024 * 1024, 0x20);
  let sent = 0;
  return new Promise((resolve) => {
    res.on('close', () => resolve(sent));
    res.writeHead(200, { 'content-type': 'application/json' }); // no content-length: only streaming reveals the size
    res.write('{"keys":[');
    const pump = () => {
      while (sent < total) {
        sent += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
      res.end(']}');
    };
    pump();
  });
}

/** VmRSS and VmHWM of a process, in bytes. */
function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

async function assumeRole(apiUrl: string, cluster: string, token: string) {
  const url = new URL(`/clusters/${cluster}/assume-role-for-pod-identity`, apiUrl);
  const body = JSON.stringify({ token });
  const headers = await signRequest({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body }, { credentials: NODE, region: 'us-east-1', service: 'eks-auth' });
  const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(20_000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('bounded outbound fetches', { timeout: 120_000 }, () => {
  let peer: Server;
  let peerUrl: string;
  let signer: TestSigner;
  let huge = false;
  /** bytes the peer got out before the reader hung up, per path */
  const delivered: Record<string, Promise<number>> = {};
  let server: ServerProcess;

  before(async () => {
    signer = await testSigner();
    peer = createServer((req, res) => {
      const path = req.url ?? '/';
      if (huge) {
        delivered[path] = sendHuge(res, HUGE_BYTES);
        return;
      }
      if (path === '/discovery/.well-known/openid-configuration') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer: `${peerUrl}/discovery`, jwks_uri: `${peerUrl}/jwks` }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwksOf(signer)));
    });
    const bound = await listen(peer, { host: '127.0.0.1', port: 0 });
    peerUrl = `http://127.0.0.1:${bound.port}`;
    server = await startServerProcess({
      config: {
        clusters: [
          { name: 'by-uri', issuer: TEST_ISSUER, jwksUri: `${peerUrl}/jwks` },
          { name: 'by-discovery', issuer: `${peerUrl}/discovery` },
        ],
      },
    });
  });
  after(async () => {
    await server?.stop();
    peer?.closeAllConnections();
    await new Promise<void>((resolve) => peer.close(() => resolve()));
  });

  test('a 256 MB JWKS or discovery document grows the server by less than 16 MB', async (t) => {
    // Let start-up settle and the keys' fetch cooldown (5 s) pass.
    await new Promise((r) => setTimeout(r, 5500));
    const pid = server.child.pid!;
    const before = memoryOf(pid);
    huge = true;
    let peak = before.rss;
    const sampler = setInterval(() => {
      peak = Math.max(peak, memoryOf(pid).rss);
    }, 5);
    // A kid the keys do not have makes the server fetch them again: now 256 MB.
    const rotated = (cluster: string, issuer: string) => signer.sign(podClaims({ issuer }), { kid: `rotated-${cluster}` });
    const [byUri, byDiscovery] = await Promise.all([
      assumeRole(server.apiUrl, 'by-uri', await rotated('uri', TEST_ISSUER)),
      assumeRole(server.apiUrl, 'by-discovery', await rotated('discovery', `${peerUrl}/discovery`)),
    ]);
    const sentJwks = await delivered['/jwks'];
    const sentDiscovery = await delivered['/discovery/.well-known/openid-configuration'];
    clearInterval(sampler);
    const after = memoryOf(pid);
    const growth = peak - before.rss;
    t.diagnostic(
      `server RSS ${(before.rss / 2 ** 20).toFixed(1)} MB before, peak ${(peak / 2 ** 20).toFixed(1)} MB while reading (growth ${(growth / 2 ** 20).toFixed(1)} MB), ` +
        `VmHWM ${(before.hwm / 2 ** 20).toFixed(1)} → ${(after.hwm / 2 ** 20).toFixed(1)} MB; the peer got out ${(sentJwks / 2 ** 20).toFixed(0)} MB of the JWKS and ${(sentDiscovery / 2 ** 20).toFixed(0)} MB of the discovery document before the server hung up`,
    );
    for (const answer of [byUri, byDiscovery]) {
      assert.equal(answer.status, 400, JSON.stringify(answer.body));
      assert.match(answer.body.message as string, /no signing key of the cluster has the token's kid/);
    }
    assert.ok(sentJwks < HUGE_BYTES && sentDiscovery < HUGE_BYTES, 'the server stopped reading before the end');
    assert.ok(growth < MAX_GROWTH_BYTES, `resident memory grew by ${(growth / 2 ** 20).toFixed(1)} MB`);
    assert.ok(after.hwm - before.hwm < MAX_GROWTH_BYTES, `peak resident memory grew by ${((after.hwm - before.hwm) / 2 ** 20).toFixed(1)} MB`);
    // the keys still load once the peer behaves again (after the cooldown)
    huge = false;
    await new Promise((r) => setTimeout(r, 5500));
    const good = await assumeRole(server.apiUrl, 'by-uri', await signer.sign(podClaims({ issuer: TEST_ISSUER })));
    assert.notEqual(good.body.__type, 'ServiceUnavailableException', JSON.stringify(good.body));
  });
});

describe('the aws-sts issuer bounds what STS answers', { timeout: 60_000 }, () => {
  let peer: Server;
  let endpoint: string;
  let behaviour: (res: ServerResponse) => void = () => undefined;
  const association: Association = {
    clusterName: 'demo',
    namespace: 'default',
    serviceAccount: 'app',
    roleArn: 'arn:aws:iam::111122223333:role/app',
    associationId: 'a-00000000000000000',
    associationArn: 'arn:aws:eks:us-east-1:000000000000:podidentityassociation/demo/a-00000000000000000',
    tags: {},
    createdAt: 0,
    modifiedAt: 0,
    disableSessionTags: true,
  };

  before(async () => {
    peer = createServer((req, res) => {
      req.resume();
      behaviour(res);
    });
    endpoint = `http://127.0.0.1:${(await listen(peer, { host: '127.0.0.1', port: 0 })).port}`;
  });
  after(async () => {
    peer.closeAllConnections();
    await new Promise<void>((resolve) => peer.close(() => resolve()));
  });

  const issuer = () =>
    new StsIssuer({ region: 'us-east-1', endpoint, durationSeconds: 3600, credentials: { accessKeyId: 'AKIASERVER', secretAccessKey: 'server-secret' }, logger: createLogger({ level: 'silent' }) });

  test('an endless STS answer is cut off at its limit: ServiceUnavailableException, the socket closed early', async () => {
    let sent: Promise<number> | undefined;
    behaviour = (res) => (sent = sendHuge(res, HUGE_BYTES));
    const sts = issuer();
    const started = performance.now();
    await assert.rejects(sts.issue({ association, sessionName: 'eks-demo-app' }), (e: unknown) => e instanceof WireError && e.code === 'ServiceUnavailableException');
    sts.close();
    const bytes = await sent!;
    assert.ok(bytes < 16 * 1024 * 1024, `the client hung up after ${(bytes / 2 ** 20).toFixed(1)} MB`);
    assert.ok(performance.now() - started < 5_000);
  });

  test('an STS answer that never ends ends at the call deadline', async () => {
    // headers and then a byte a second: each read is within the socket timeout, the call is not
    behaviour = (res) => {
      res.writeHead(200, { 'content-type': 'text/xml' });
      const drip = setInterval(() => res.write(' '), 1000);
      res.on('close', () => clearInterval(drip));
    };
    const sts = issuer();
    const started = performance.now();
    await assert.rejects(sts.issue({ association, sessionName: 'eks-demo-app' }), (e: unknown) => e instanceof WireError && e.code === 'ServiceUnavailableException');
    sts.close();
    const seconds = (performance.now() - started) / 1000;
    assert.ok(seconds >= 4.5 && seconds < 7, `gave up after ${seconds.toFixed(1)} s`);
  });
});
