// The agent process's life: graceful shutdown with a request in flight, the
// per-listener rate limit, serving IPv4 when the IPv6 address is missing,
// caching off. Upstream is a stand-in EKS Auth peer (node:http speaking the
// wire format of DESIGN §3.2) so that its latency can be chosen.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { listen, readBody } from '../../src/lib/http.js';
import { getCredentials, startAgentProcess } from './agent-harness.js';

function token(pod: string): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${part({ alg: 'RS256' })}.${part({ sub: 'system:serviceaccount:default:app', exp: Math.floor(Date.now() / 1000) + 3600, pod })}.c2ln`;
}

describe('agent lifecycle against a stand-in EKS Auth peer', () => {
  let peer: Server;
  let endpoint: string;
  let delayMs = 0;
  let calls = 0;

  before(async () => {
    peer = createServer(async (req, res) => {
      await readBody(req);
      calls++;
      await new Promise((r) => setTimeout(r, delayMs));
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          subject: { namespace: 'default', serviceAccount: 'app' },
          audience: 'pods.eks.amazonaws.com',
          podIdentityAssociation: { associationArn: 'arn:aws:eks:us-east-1:111122223333:podidentityassociation/demo/a-1', associationId: 'a-1' },
          assumedRoleUser: { arn: 'arn:aws:sts::111122223333:assumed-role/app/eks-demo-pod', assumeRoleId: 'AROAEXAMPLE:eks-demo-pod' },
          credentials: { accessKeyId: `ASIA${calls}`, secretAccessKey: 's', sessionToken: 't', expiration: Math.floor(Date.now() / 1000) + 3600 },
        }),
      );
    });
    endpoint = `http://127.0.0.1:${(await listen(peer, { host: '127.0.0.1', port: 0 })).port}`;
  });
  after(() => new Promise<void>((resolve) => peer.close(() => resolve())));

  test('SIGTERM: the request in flight is answered, then the agent exits 0 and stops accepting', async () => {
    const agent = await startAgentProcess({ endpoint });
    delayMs = 800;
    try {
      const inFlight = getCredentials(agent.url, token('graceful'));
      await new Promise((r) => setTimeout(r, 200));
      agent.child.kill('SIGTERM');
      const answer = await inFlight;
      assert.equal(answer.status, 200);
      const code = await new Promise<number | null>((resolve) => (agent.child.exitCode !== null ? resolve(agent.child.exitCode) : agent.child.once('exit', resolve)));
      assert.equal(code, 0);
      await assert.rejects(fetch(agent.url, { headers: { authorization: token('late') } }));
      assert.match(agent.logs(), /shutting down/);
    } finally {
      delayMs = 0;
      await agent.stop();
    }
  });

  test('past the per-listener rate limit the agent answers 429', async () => {
    const agent = await startAgentProcess({ endpoint, args: ['--rate-limit', '1', '--rate-limit-burst', '3'] });
    try {
      const t = token('limited');
      const statuses = [];
      for (let i = 0; i < 5; i++) statuses.push((await getCredentials(agent.url, t)).status);
      assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
      const res = await getCredentials(agent.url, t);
      assert.equal(res.body.Code, 'ThrottlingException');
    } finally {
      await agent.stop();
    }
  });

  test('an IPv6 bind host that is not on this node is a warning; IPv4 is served', async () => {
    const agent = await startAgentProcess({ endpoint, args: ['--bind-hosts', '[fd00:ec2::23]'] });
    try {
      assert.match(agent.logs(), /IPv6 address not available/);
      assert.equal((await getCredentials(agent.url, token('v4'))).status, 200);
      assert.equal((await fetch(`${agent.probeUrl}/readyz`)).status, 200);
    } finally {
      await agent.stop();
    }
  });

  test('loopback without --allow-loopback and wildcard bind hosts are refused at start', async () => {
    const { spawnSync } = await import('node:child_process');
    const { CLI } = await import('../helpers/server-process.js');
    for (const [hosts, message] of [
      ['127.0.0.1', /--allow-loopback/],
      ['0.0.0.0', /every interface/],
    ] as const) {
      const run = spawnSync(process.execPath, [CLI, 'agent', '--cluster-name', 'demo', '--bind-hosts', hosts, '--port', '0', '--probe-port', '0', '--metrics-port', '0'], { encoding: 'utf8', timeout: 15_000 });
      assert.equal(run.status, 1);
      assert.match(run.stderr, message);
    }
  });

  test('--max-cache-size 0: every request goes upstream', async () => {
    const agent = await startAgentProcess({ endpoint, args: ['--max-cache-size', '0'] });
    try {
      const before = calls;
      const t = token('uncached');
      const a = await getCredentials(agent.url, t);
      const b = await getCredentials(agent.url, t);
      assert.equal(a.status, 200);
      assert.notEqual(a.body.AccessKeyId, b.body.AccessKeyId);
      assert.equal(calls - before, 2);
    } finally {
      await agent.stop();
    }
  });
});
