// The agent's warm-up on a real server and agent process: before it says it
// has started, the agent has opened its connections to EKS Auth (the server
// saw them) without asking it for any credentials, has counted none of its
// loopback warm-up requests as responses, and serves the first pod at once.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assumeRoleCalls, getCredentials, startAgentProcess, startControlPlane, total, type AgentProcess, type ControlPlane } from './agent-harness.js';

async function samples(metricsUrl: string, prefix: string): Promise<number> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(prefix))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

describe('agent warm-up', { timeout: 120_000 }, () => {
  let plane: ControlPlane;
  let agent: AgentProcess;

  before(async () => {
    plane = await startControlPlane();
    await plane.associate('shop', 'cart');
    agent = await startAgentProcess({ endpoint: plane.server.apiUrl });
  });

  after(async () => {
    await agent?.stop();
    await plane?.stop();
  });

  test('connections to EKS Auth are open before the first pod, and no credentials were asked for', async () => {
    // each warm connection made one GET /healthz, answered 200, and none of them is an unknown operation
    assert.ok((await samples(plane.server.metricsUrl, 'pod_identity_api_requests_total{operation="Health",status="200"}')) >= 1);
    assert.equal(await samples(plane.server.metricsUrl, 'pod_identity_api_requests_total{operation="Unknown"'), 0);
    assert.equal(total(await assumeRoleCalls(plane.server.metricsUrl)), 0);
    // (the readiness probe's own GET / to the listener is a 404 that counts)
    assert.equal(await samples(agent.metricsUrl, 'pod_identity_agent_responses_total{code="200"}'), 0, 'warm-up requests are not counted');
    assert.equal(await samples(agent.metricsUrl, 'pod_identity_agent_cache_entries'), 0, 'nothing of the warm-up is cached');
  });

  test('the first pod gets credentials from the real server', async () => {
    const answer = await getCredentials(agent.url, await plane.token({ namespace: 'shop', serviceAccount: 'cart', podName: 'first' }));
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(total(await assumeRoleCalls(plane.server.metricsUrl)), 1);
  });

  test('--no-warm-up opens no connection before the first pod', async () => {
    const before = await samples(plane.server.metricsUrl, 'pod_identity_api_requests_total{operation="Health"');
    const cold = await startAgentProcess({ endpoint: plane.server.apiUrl, args: ['--no-warm-up'] });
    try {
      assert.equal(await samples(plane.server.metricsUrl, 'pod_identity_api_requests_total{operation="Health"'), before);
    } finally {
      await cold.stop();
    }
  });
});
