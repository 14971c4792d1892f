// The cache flood of issue 25, item 1, reproduced with real processes: a real
// `pod-identity agent` holds pod A's credentials from a real server; the
// server is stopped and a listener that accepts connections and never answers
// takes its port (an outage that times out rather than refusing); another pod
// sends 3,000 distinct JWT-shaped junk tokens at about 830 a second, under
// the agent's rate limit. Pod A must keep getting its cached credentials, and
// nothing may be evicted to make room for tokens nobody verified.
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { listen } from '../../src/lib/http.js';
import { getCredentials, startAgentProcess, startControlPlane, type AgentProcess, type ControlPlane } from './agent-harness.js';

const JUNK_TOKENS = 3000;
const JUNK_PER_SECOND = 830;

/** A token shaped like a projected one (three base64url parts, exp in the future) that no cluster signed. */
function junkToken(i: number): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const exp = Math.floor(Date.now() / 1000) + 3600;
  return `${part({ alg: 'RS256', kid: 'junk' })}.${part({ sub: `system:serviceaccount:attacker:junk-${i}`, exp })}.${Buffer.from(`sig-${i}`).toString('base64url')}`;
}

function get(url: string, token: string, agent: Agent): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { headers: { authorization: token }, agent, timeout: 30_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** Reads one metric's samples from the agent's /metrics, by their label text. */
async function samples(metricsUrl: string, name: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const [series, value] = line.split(' ');
    out[series!.slice(name.length)] = Number(value);
  }
  return out;
}

describe('agent cache flood during an outage that times out', { timeout: 120_000 }, () => {
  let cp: ControlPlane;
  let agent: AgentProcess;
  let blackHole: Server | undefined;
  const held = new Set<Socket>();

  before(async () => {
    cp = await startControlPlane();
    await cp.associate('default', 'pod-a');
    agent = await startAgentProcess({ endpoint: cp.server.apiUrl });
  });

  after(async () => {
    for (const socket of held) socket.destroy();
    await new Promise<void>((resolve) => (blackHole ? blackHole.close(() => resolve()) : resolve()));
    await agent?.stop();
    await cp?.stop();
  });

  test('pod A keeps its cached credentials while 3,000 junk tokens wait on a hung EKS Auth', async (t) => {
    const tokenA = await cp.token({ serviceAccount: 'pod-a' });
    const first = await getCredentials(agent.url, tokenA);
    assert.equal(first.status, 200, JSON.stringify(first.body));

    // The outage: the server goes, a listener that never answers takes its port.
    const port = Number(new URL(cp.server.apiUrl).port);
    await cp.server.stop();
    blackHole = createServer((socket) => {
      held.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => held.delete(socket));
    });
    await listen(blackHole as unknown as Parameters<typeof listen>[0], { host: '127.0.0.1', port });

    const keepAlive = new Agent({ keepAlive: true, maxSockets: Infinity });
    const junk: Promise<number>[] = [];
    const podA: { status: number; accessKeyId?: string; ms: number }[] = [];
    const started = performance.now();
    let flooding = true;
    // Pod A asks every 100 ms, through the flood and until every junk request has its answer.
    const probing = (async () => {
      while (flooding) {
        const t0 = performance.now();
        const answer = await getCredentials(agent.url, tokenA).catch(() => ({ status: 0, body: {} as Record<string, string> }));
        podA.push({ status: answer.status, accessKeyId: answer.body.AccessKeyId, ms: performance.now() - t0 });
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    // 830 a second: ten every 12 ms, paced against the clock.
    for (let sent = 0; sent < JUNK_TOKENS; ) {
      const due = Math.min(JUNK_TOKENS, Math.floor(((performance.now() - started) / 1000) * JUNK_PER_SECOND));
      for (; sent < due; sent++) junk.push(get(agent.url, junkToken(sent), keepAlive));
      await new Promise((r) => setTimeout(r, 12));
    }
    const floodSeconds = (performance.now() - started) / 1000;
    const statuses = await Promise.all(junk);
    flooding = false;
    await probing;
    keepAlive.destroy();

    const byStatus: Record<number, number> = {};
    for (const s of statuses) byStatus[s] = (byStatus[s] ?? 0) + 1;
    const evictions = await samples(agent.metricsUrl, 'pod_identity_agent_cache_evictions_total');
    const entries = await samples(agent.metricsUrl, 'pod_identity_agent_cache_entries');
    const worst = Math.max(...podA.map((a) => a.ms));
    t.diagnostic(
      `${JUNK_TOKENS} junk tokens in ${floodSeconds.toFixed(1)} s (${Math.round(JUNK_TOKENS / floodSeconds)}/s): answers ${JSON.stringify(byStatus)}; ` +
        `pod A asked ${podA.length} times, all ${podA.every((a) => a.status === 200) ? '200' : 'NOT 200'}, slowest ${worst.toFixed(1)} ms; ` +
        `evictions ${JSON.stringify(evictions)}, cache entries ${JSON.stringify(entries)}`,
    );

    assert.ok(floodSeconds < JUNK_TOKENS / JUNK_PER_SECOND + 1.5, `the flood kept its pace (${floodSeconds.toFixed(1)} s)`);
    assert.ok(podA.length >= 30, `pod A asked throughout (${podA.length} times)`);
    for (const answer of podA) {
      assert.equal(answer.status, 200, 'pod A is answered from the cache');
      assert.equal(answer.accessKeyId, first.body.AccessKeyId, 'with the credentials it was issued');
    }
    assert.ok(worst < 1000, `pod A never waits for the hung upstream (slowest ${worst.toFixed(1)} ms)`);
    assert.equal(byStatus[200], undefined, 'no junk token got credentials');
    assert.ok((byStatus[503] ?? 0) + (byStatus[429] ?? 0) === JUNK_TOKENS, `junk answered 503 (upstream timed out) or 429 (waiting room full): ${JSON.stringify(byStatus)}`);
    assert.ok((byStatus[429] ?? 0) > 0, 'the waiting room filled and refused the rest');
    assert.equal(evictions['{reason="capacity"}'], undefined, 'no capacity evictions');
    assert.equal(entries[''], 1, "only pod A's credentials are cached");
  });
});
