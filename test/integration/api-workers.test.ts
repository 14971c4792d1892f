// `workers: 2`: the server forks two API worker processes behind one API
// listener (node:cluster, one connection to each in turn). Each request below
// goes out on a new connection, so consecutive requests reach both workers.
// What must hold across processes: a delete made through one worker is
// obeyed by the other at once (the SQLite change relay, or PostgreSQL's
// notifications; the resolver's own cache lives 10 s), throttles are shared, credentials minted by one worker
// are recognised by the other, /metrics adds up every worker, a killed worker
// is replaced, and SIGTERM stops them all.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CreatePodIdentityAssociationCommand, DeletePodIdentityAssociationCommand, EKSClient } from '@aws-sdk/client-eks';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { eventually } from '../helpers/eventually.js';
import { signRequest } from '../../src/lib/sigv4.js';
import { jwksOf, podClaims, TEST_ISSUER, testSigner, type TestSigner } from '../helpers/sa-tokens.js';
import { ADMIN, freePort, NODE, startServerProcess, waitForHttp, type ServerProcess } from '../helpers/server-process.js';
import { postgresSkip, startPostgres, type PostgresPeer } from '../peers/postgres.js';

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** One request on a connection of its own (closed after the answer). */
function onNewConnection(url: URL, method: string, headers: Record<string, string>, body: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { ...headers, connection: 'close' }, agent: false, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown> }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

async function assumeRole(server: ServerProcess, token: string): Promise<Answer> {
  const url = new URL('/clusters/demo/assume-role-for-pod-identity', server.apiUrl);
  const body = JSON.stringify({ token });
  const headers = await signRequest({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body }, { credentials: NODE, region: 'us-east-1', service: 'eks-auth' });
  return onNewConnection(url, 'POST', headers, body);
}

function workerPids(server: ServerProcess): number[] {
  const pid = server.child.pid!;
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
}

/** The worker ids in the audit records of the log (written every 100 ms), for one service account. */
function auditingWorkers(server: ServerProcess, serviceAccount: string): Set<number> {
  const workers = new Set<number>();
  for (const line of server.logs().split('\n')) {
    if (!line.includes('"eks-auth decision"')) continue;
    const record = JSON.parse(line) as { worker?: number; audit: { serviceAccount?: string } };
    if (record.audit.serviceAccount === serviceAccount && record.worker !== undefined) workers.add(record.worker);
  }
  return workers;
}

/** The sum of a counter's samples whose labels contain `labels`, from the server's /metrics. */
async function counterSum(server: ServerProcess, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${server.metricsUrl}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) && line.includes(labels))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

/**
 * Warms both workers' association caches for a new service account, deletes
 * its association through the EKS API (one worker) and, `settleMs` later,
 * expects ResourceNotFoundException from every worker.
 */
async function deleteReachesEveryWorker(server: ServerProcess, eks: EKSClient, signer: TestSigner, settleMs: number): Promise<void> {
  const serviceAccount = `moving-${randomUUID().slice(0, 8)}`;
  const created = await eks.send(
    new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'default', serviceAccount, roleArn: 'arn:aws:iam::111122223333:role/moving' }),
  );
  const token = await signer.sign(podClaims({ serviceAccount, issuer: TEST_ISSUER }));
  for (let i = 0; i < 4; i++) assert.equal((await assumeRole(server, token)).status, 200);
  await eventually('both workers audited a request', () => auditingWorkers(server, serviceAccount).size === 2, { timeoutMs: 2000, intervalMs: 50 });

  await eks.send(new DeletePodIdentityAssociationCommand({ clusterName: 'demo', associationId: created.association!.associationId! }));
  await new Promise((r) => setTimeout(r, settleMs));
  for (let i = 0; i < 4; i++) {
    const answer = await assumeRole(server, token);
    assert.equal(answer.status, 404, JSON.stringify(answer.body));
    assert.equal(answer.body.__type, 'ResourceNotFoundException');
  }
}

describe('API workers (workers: 2, SQLite)', { timeout: 120_000 }, () => {
  let dir: string;
  let signer: TestSigner;
  let server: ServerProcess;
  let eks: EKSClient;
  const associate = (serviceAccount: string) =>
    eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'default', serviceAccount, roleArn: `arn:aws:iam::111122223333:role/${serviceAccount}` }));
  const tokenFor = (serviceAccount: string) => signer.sign(podClaims({ serviceAccount, issuer: TEST_ISSUER }));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'api-workers-'));
    signer = await testSigner('RS256');
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwksOf(signer)));
    server = await startServerProcess({
      config: {
        workers: 2,
        clusters: [{ name: 'demo', issuer: TEST_ISSUER, jwksFile: join(dir, 'jwks.json') }],
        throttle: { perServiceAccount: { rate: 0.001, burst: 20 } },
      },
    });
    eks = new EKSClient({ endpoint: server.apiUrl, region: 'us-east-1', credentials: { ...ADMIN }, maxAttempts: 1 });
  });

  after(async () => {
    eks?.destroy();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers on one listener from two worker processes, and /metrics adds up both', async () => {
    assert.equal(workerPids(server).length, 2);
    await associate('app');
    const token = await tokenFor('app');
    const before = await counterSum(server, 'pod_identity_eks_auth_decisions_total', 'outcome="allowed"');
    for (let i = 0; i < 6; i++) assert.equal((await assumeRole(server, token)).status, 200);
    await eventually('both workers audited a request', () => auditingWorkers(server, 'app').size === 2, { timeoutMs: 2000, intervalMs: 50 });
    assert.equal((await counterSum(server, 'pod_identity_eks_auth_decisions_total', 'outcome="allowed"')) - before, 6);
  });

  it('obeys a delete made through one worker in the other at once, though both had the association cached', () => deleteReachesEveryWorker(server, eks, signer, 100));

  it('shares a throttle among the workers: each enforces its part of the burst', async () => {
    await associate('limited');
    const token = await tokenFor('limited');
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await assumeRole(server, token)).status);
    assert.equal(statuses.filter((s) => s === 200).length, 20, statuses.join(' '));
    assert.equal(statuses.filter((s) => s === 429).length, 10, statuses.join(' '));
  });

  it('recognises credentials minted by one worker in the other (STS GetCallerIdentity with the AWS SDK)', async () => {
    await associate('caller');
    const answer = await assumeRole(server, await tokenFor('caller'));
    assert.equal(answer.status, 200);
    const { accessKeyId, secretAccessKey, sessionToken } = answer.body.credentials as Record<string, string>;
    const sts = new STSClient({
      endpoint: server.apiUrl,
      region: 'us-east-1',
      credentials: { accessKeyId: accessKeyId!, secretAccessKey: secretAccessKey!, sessionToken: sessionToken! },
      maxAttempts: 1,
      // a connection per call, so the calls reach both workers
      requestHandler: { httpAgent: new Agent({ keepAlive: false }) },
    });
    try {
      for (let i = 0; i < 4; i++) {
        const identity = await sts.send(new GetCallerIdentityCommand({}));
        assert.match(identity.Arn!, /^arn:aws:sts::111122223333:assumed-role\/caller\/eks-demo-/);
      }
    } finally {
      sts.destroy();
    }
  });

  it('replaces a worker that dies, and keeps answering meanwhile', async () => {
    const [victim, survivor] = workerPids(server) as [number, number];
    process.kill(victim, 'SIGKILL');
    const token = await tokenFor('app');
    await eventually('the killed worker gone', () => !workerPids(server).includes(victim), { timeoutMs: 2000, intervalMs: 50 });
    assert.equal((await assumeRole(server, token)).status, 200);
    await eventually('two workers again', () => workerPids(server).length === 2, { timeoutMs: 15_000, intervalMs: 50 });
    const now = workerPids(server);
    assert.ok(now.includes(survivor) && !now.includes(victim));
    await waitForHttp(`${server.metricsUrl}/readyz`);
    await eventually('the death logged', () => /API worker died; starting a new one/.test(server.logs()), { timeoutMs: 2000, intervalMs: 50 });
    for (let i = 0; i < 4; i++) assert.equal((await assumeRole(server, token)).status, 200);
  });

  it('stops every worker on SIGTERM and exits 0', async () => {
    const pids = workerPids(server);
    assert.equal(await server.stop(), 0);
    for (const pid of pids) assert.equal(existsSync(`/proc/${pid}`), false, `worker ${pid} still running`);
  });
});

describe('API workers on PostgreSQL (workers: 2; the database notifies every worker)', { skip: postgresSkip(), timeout: 120_000 }, () => {
  let pg: PostgresPeer;
  let dir: string;
  let server: ServerProcess;
  let eks: EKSClient;
  let signer: TestSigner;

  before(async () => {
    pg = await startPostgres();
    dir = mkdtempSync(join(tmpdir(), 'api-workers-pg-'));
    signer = await testSigner('RS256');
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwksOf(signer)));
    server = await startServerProcess({ config: { workers: 2, databaseUrl: await pg.createDatabase(), clusters: [{ name: 'demo', issuer: TEST_ISSUER, jwksFile: join(dir, 'jwks.json') }] } });
    eks = new EKSClient({ endpoint: server.apiUrl, region: 'us-east-1', credentials: { ...ADMIN }, maxAttempts: 1 });
  });

  after(async () => {
    eks?.destroy();
    await server?.stop();
    await pg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('obeys a delete made through one worker in the other within a second', () => deleteReachesEveryWorker(server, eks, signer, 1000));
});

describe('API workers: start-up failure', { timeout: 60_000 }, () => {
  let blocker: Server;
  after(() => blocker?.close());

  it('exits 1 naming the API listener when its port is taken', async () => {
    const port = await freePort();
    blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    await assert.rejects(startServerProcess({ config: { workers: 2, listen: `127.0.0.1:${port}` } }), (error: Error) => {
      assert.match(error.message, /server exited with 1 before it was ready/);
      assert.match(error.message, new RegExp(`API listener 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
      return true;
    });
  });
});
