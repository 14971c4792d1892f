// Several replicas on one PostgreSQL database, each serving a console: a
// decision made in one replica appears in every replica's live feed (within
// 2 s), service-account page and chart, once, named by the replica that made
// it; the pages say that the feed is merged. Real server processes, a real
// PostgreSQL, the feed read as a browser reads it (server-sent events).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreatePodIdentityAssociationCommand, EKSClient } from '@aws-sdk/client-eks';
import { request } from 'undici';
import { eventually } from '../helpers/eventually.js';
import type { ConsoleDecision } from '../../src/console/client/decision.js';
import { signRequest } from '../../src/lib/sigv4.js';
import { jwksOf, podClaims, TEST_ISSUER, testSigner, type TestSigner } from '../helpers/sa-tokens.js';
import { ADMIN, freePort, NODE, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { postgresSkip, startPostgres, type PostgresPeer } from '../peers/postgres.js';
import { consoleClient, type ConsoleClient, type SignedIn } from './console-client.js';

const ROLE = 'arn:aws:iam::111122223333:role/replicas';

interface Replica {
  server: ServerProcess;
  web: ConsoleClient;
  consoleUrl: string;
  admin: SignedIn;
}

/** AssumeRoleForPodIdentity on a replica, signed as a node: the request id and status. */
async function assumeRole(server: ServerProcess, token: string): Promise<{ status: number; requestId: string }> {
  const url = new URL(`${server.apiUrl}/clusters/demo/assume-role-for-pod-identity`);
  const body = JSON.stringify({ token });
  const headers = await signRequest({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body }, { credentials: { ...NODE }, region: 'us-east-1', service: 'eks-auth' });
  const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(5000) });
  await res.arrayBuffer();
  return { status: res.status, requestId: res.headers.get('x-amzn-requestid') ?? '' };
}

/** The live feed of a console, as its page's EventSource reads it. */
async function openFeed(replica: Replica) {
  const res = await request(`${replica.consoleUrl}/events`, { headers: { cookie: replica.admin.cookie } });
  assert.equal(res.statusCode, 200);
  const decisions: ConsoleDecision[] = [];
  let buffered = '';
  const reading = (async () => {
    for await (const chunk of res.body) {
      buffered += (chunk as Buffer).toString();
      let end;
      while ((end = buffered.indexOf('\n\n')) !== -1) {
        const event = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const data = /^data: (.*)$/m.exec(event)?.[1];
        if (/^event: decision$/m.test(event) && data) decisions.push(JSON.parse(data) as ConsoleDecision);
      }
    }
  })().catch(() => undefined);
  return {
    decisions,
    waitFor(requestId: string, timeoutMs = 2000): Promise<ConsoleDecision> {
      return eventually(`decision ${requestId} in ${replica.consoleUrl}'s feed`, () => decisions.find((d) => d.requestId === requestId), {
        timeoutMs,
        intervalMs: 20,
        context: () => `(${decisions.length} seen)`,
      });
    },
    async close() {
      res.body.destroy();
      await reading;
    },
  };
}

describe('consoles of several replicas on PostgreSQL', { skip: postgresSkip() }, () => {
  let pg: PostgresPeer;
  let databaseUrl: string;
  let dir: string;
  let signer: TestSigner;
  const replicas: Replica[] = [];

  before(async () => {
    pg = await startPostgres();
    databaseUrl = await pg.createDatabase();
    signer = await testSigner();
    dir = mkdtempSync(join(tmpdir(), 'console-replicas-'));
    const jwksFile = join(dir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify(jwksOf(signer)));
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const server = await startServerProcess({ config: { databaseUrl, consoleListen: `127.0.0.1:${port}`, clusters: [{ name: 'demo', issuer: TEST_ISSUER, jwksFile }], issuer: { type: 'local' } } });
      const consoleUrl = `http://127.0.0.1:${port}`;
      const web = consoleClient(consoleUrl);
      replicas.push({ server, web, consoleUrl, admin: await web.signIn(ADMIN.accessKeyId, ADMIN.secretAccessKey) });
    }
    const eks = new EKSClient({ endpoint: replicas[0]!.server.apiUrl, region: 'us-east-1', credentials: { ...ADMIN }, maxAttempts: 1 });
    await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'shop', serviceAccount: 'checkout', roleArn: ROLE }));
    eks.destroy();
  });
  after(async () => {
    for (const r of replicas) {
      await r.web.close();
      await r.server.stop();
    }
    await pg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a decision made in either replica appears once in both replicas’ live feeds within 2 s, named by its replica', async () => {
    const [a, b] = replicas as [Replica, Replica];
    const feeds = [await openFeed(a), await openFeed(b)];
    try {
      const token = await signer.sign(podClaims({ namespace: 'shop', serviceAccount: 'checkout' }));
      const refusedToken = await signer.sign(podClaims({ namespace: 'shop', serviceAccount: 'unknown' }));
      const made = [
        { in: b, ...(await assumeRole(b.server, token)) },
        { in: b, ...(await assumeRole(b.server, refusedToken)) },
        { in: a, ...(await assumeRole(a.server, token)) },
      ];
      assert.deepEqual(made.map((m) => m.status), [200, 404, 200]);
      const started = Date.now();
      for (const feed of feeds) {
        for (const m of made) {
          const shown = await feed.waitFor(m.requestId);
          assert.equal(shown.replica, hostname());
          assert.equal(shown.serviceAccount, m.status === 200 ? 'checkout' : 'unknown');
          assert.equal(shown.outcome, m.status === 200 ? 'allowed' : 'denied');
          if (m.status === 404) assert.equal(shown.reason, 'no_association');
        }
      }
      console.log(`# three decisions in both feeds ${Date.now() - started} ms after the last was answered`);
      await new Promise((r) => setTimeout(r, 600));
      for (const feed of feeds) {
        for (const m of made) assert.equal(feed.decisions.filter((d) => d.requestId === m.requestId).length, 1, 'each once: a replica does not take its own decisions back');
      }
    } finally {
      for (const feed of feeds) await feed.close();
    }
  });

  test('each replica’s pages say the feed is merged, and count the other replica’s decisions', async () => {
    for (const r of replicas) {
      const page = await r.web.get('/decisions', r.admin.cookie);
      assert.match(page.text, /of every replica that serves a console \(merged through PostgreSQL; this page comes from <code>/);
      assert.match(page.text, /<desc id="chart-desc">From \d\d:\d\d to \d\d:\d\d UTC: 2 issued, 1 refused\.<\/desc>/);
      const accounts = await r.web.get('/service-accounts', r.admin.cookie);
      assert.match(accounts.text, /<td>shop<\/td><td>checkout<\/td><td><time/);
      assert.match(accounts.text, /<td>shop<\/td><td>unknown<\/td><td>—<\/td><td>—<\/td><td><time [^>]+>[^<]+<\/time><\/td><td><code>no_association<\/code> \(ResourceNotFoundException\)<\/td>/);
    }
  });

  test('a replica whose feed connection is cut reconnects and hears the others again', { timeout: 30_000 }, async () => {
    const [a, b] = replicas as [Replica, Replica];
    const cut = await pg.query<{ cut: boolean }>("SELECT pg_terminate_backend(pid) AS cut FROM pg_stat_activity WHERE application_name = 'pod-identity-console'", [], new URL(databaseUrl).pathname.slice(1));
    assert.equal(cut.length, 2, 'one feed connection a replica');
    const feed = await openFeed(a);
    try {
      const token = await signer.sign(podClaims({ namespace: 'shop', serviceAccount: 'checkout' }));
      // what is decided while a connection is down is not replayed: decide until one crosses
      await eventually(
        "a decision of b's in a's feed",
        async () => {
          const { requestId } = await assumeRole(b.server, token);
          return feed.waitFor(requestId, 500);
        },
        { timeoutMs: 15_000, intervalMs: 0 },
      );
      assert.match(a.server.logs() + b.server.logs(), /the replicas’ feed connection was lost; reconnecting/);
      assert.doesNotMatch(a.server.logs() + b.server.logs(), new RegExp(new URL(databaseUrl).password), 'the database password is never logged');
    } finally {
      await feed.close();
    }
  });
});
