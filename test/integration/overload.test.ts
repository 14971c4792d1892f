// EKS Auth past its bounds, on a real server process (the aws-sts issuer on
// moto, so that each AssumeRoleForPodIdentity waits on STS and requests pile
// up in progress): beyond admission.maxInFlight the server answers at once
// 429 ThrottlingException with Retry-After in the EKS Auth wire shape and
// counts it in pod_identity_api_requests_shed_total; the requests it took on
// get credentials. A real agent in front of it waits the Retry-After and
// tries again, so that every pod still gets credentials.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { signRequest } from '../../src/lib/sigv4.js';
import { NODE } from '../helpers/server-process.js';
import { createRole, motoMissingReason, startMoto, trustPolicyFor, type MotoServer } from '../peers/moto.js';
import { requirePeer } from '../peers/require.js';
import { assumeRoleCalls, CLUSTER, getCredentials, startAgentProcess, startControlPlane, type AgentProcess, type ControlPlane } from './agent-harness.js';

const skip = requirePeer('moto', motoMissingReason);
const MAX_IN_FLIGHT = 3;

async function metricValue(metricsUrl: string, prefix: string): Promise<number> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(prefix))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

describe('EKS Auth sheds load past admission.maxInFlight', { skip, timeout: 180_000 }, () => {
  let moto: MotoServer;
  let plane: ControlPlane;
  let agent: AgentProcess;
  let url: URL;

  before(async () => {
    moto = await startMoto();
    await createRole(moto, { roleName: 'agent-test-role', trustPolicy: trustPolicyFor() });
    plane = await startControlPlane(
      {
        admission: { maxInFlight: MAX_IN_FLIGHT, maxQueueMs: 60_000 },
        accountId: moto.accountId,
        issuer: { type: 'aws-sts', stsEndpoint: moto.endpoint, region: moto.region, durationSeconds: 3600 },
      },
      { AWS_ACCESS_KEY_ID: moto.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: moto.credentials.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' },
    );
    await plane.associate('shop', 'cart');
    url = new URL(`${plane.server.apiUrl}/clusters/${CLUSTER}/assume-role-for-pod-identity`);
    agent = await startAgentProcess({ endpoint: plane.server.apiUrl });
  });

  after(async () => {
    await agent?.stop();
    await plane?.stop();
    await moto?.stop();
  });

  /** One signed AssumeRoleForPodIdentity call per token, all at once. */
  async function burst(count: number, podPrefix: string) {
    const tokens = await Promise.all(Array.from({ length: count }, (_, i) => plane.token({ namespace: 'shop', serviceAccount: 'cart', podName: `${podPrefix}-${i}` })));
    const requests = await Promise.all(
      tokens.map(async (token) => {
        const body = JSON.stringify({ token });
        return { body, headers: await signRequest({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body }, { credentials: NODE, region: 'us-east-1', service: 'eks-auth' }) };
      }),
    );
    return Promise.all(
      requests.map(async ({ headers, body }) => {
        const res = await fetch(url, { method: 'POST', headers, body });
        return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
      }),
    );
  }

  test('a burst beyond the bound: the admitted requests get credentials, the rest 429 ThrottlingException with Retry-After, each counted as shed', async () => {
    const shedBefore = await metricValue(plane.server.metricsUrl, 'pod_identity_api_requests_shed_total{reason="in-flight"}');
    const answers = await burst(40, 'burst');
    const admitted = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status === 429);
    assert.equal(admitted.length + refused.length, answers.length, `only 200 and 429: ${answers.map((a) => a.status).join(',')}`);
    assert.ok(admitted.length >= MAX_IN_FLIGHT, `at least ${MAX_IN_FLIGHT} taken on, got ${admitted.length}`);
    assert.ok(refused.length >= 1, 'some refused');
    for (const a of admitted) assert.match(String((a.body.credentials as Record<string, unknown>).accessKeyId), /^ASIA/);
    for (const r of refused) {
      assert.equal(r.body.__type, 'ThrottlingException');
      assert.equal(typeof r.body.message, 'string');
      assert.equal(r.headers.get('x-amzn-errortype'), 'ThrottlingException');
      assert.equal(r.headers.get('retry-after'), '1');
      assert.ok(r.headers.get('x-amzn-requestid'));
    }
    const shed = (await metricValue(plane.server.metricsUrl, 'pod_identity_api_requests_shed_total{reason="in-flight"}')) - shedBefore;
    assert.equal(shed, refused.length);
  });

  test('once the burst is over, a request is taken on again', async () => {
    const [answer] = await burst(1, 'after');
    assert.equal(answer!.status, 200);
  });

  test('the agent waits out Retry-After and tries again: every pod of a burst through it gets credentials', async () => {
    const callsBefore = await assumeRoleCalls(plane.server.metricsUrl);
    const throttledBefore = await metricValue(agent.metricsUrl, 'pod_identity_agent_upstream_errors_total{code="ThrottlingException"}');
    const tokens = await Promise.all(Array.from({ length: 8 }, (_, i) => plane.token({ namespace: 'shop', serviceAccount: 'cart', podName: `agent-${i}` })));
    const timed = await Promise.all(
      tokens.map(async (token) => {
        const started = performance.now();
        const answer = await getCredentials(agent.url, token);
        return { ...answer, ms: performance.now() - started };
      }),
    );
    for (const t of timed) assert.equal(t.status, 200, JSON.stringify(t.body));
    const throttled = (await metricValue(agent.metricsUrl, 'pod_identity_agent_upstream_errors_total{code="ThrottlingException"}')) - throttledBefore;
    const callsAfter = await assumeRoleCalls(plane.server.metricsUrl);
    const refusedByServer = (callsAfter['429'] ?? 0) - (callsBefore['429'] ?? 0);
    assert.ok(throttled >= 1, 'the server refused some of the agent\'s calls');
    assert.equal(throttled, refusedByServer, 'every 429 the server sent, the agent counted');
    // a refused call was tried again only after the server's Retry-After (1 s)
    assert.ok(Math.max(...timed.map((t) => t.ms)) >= 1000, `the slowest pod waited out Retry-After: ${timed.map((t) => Math.round(t.ms)).join(', ')} ms`);
  });
});
