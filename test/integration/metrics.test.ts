// The metric names operators build dashboards and alerts on, scraped from a
// running server (two API workers, the aws-sts issuer against moto) and a
// running agent in front of it, after real traffic: an association made with
// @aws-sdk/client-eks, a pod's credentials through the agent (EKS Auth, then
// STS AssumeRole), a forged token, and an STS that went away. Every
// pod_identity_* name scraped is documented in the README's metrics table,
// and every name there exists in the code.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreatePodIdentityAssociationCommand, EKSClient } from '@aws-sdk/client-eks';
import { decodeJwt } from 'jose';
import { VERSION } from '../../src/lib/version.js';
import { ADMIN } from '../helpers/server-process.js';
import { tamperPayload } from '../helpers/sa-tokens.js';
import { motoMissingReason, startMoto, trustPolicyFor, createRole, type MotoServer } from '../peers/moto.js';
import { requirePeer } from '../peers/require.js';
import { CLUSTER, getCredentials, startAgentProcess, startControlPlane, type AgentProcess, type ControlPlane } from './agent-harness.js';

const skip = requirePeer('moto', motoMissingReason);

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text format: the metric families (# TYPE) and the samples. */
function parse(text: string): { families: Map<string, string>; samples: Sample[] } {
  const families = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) families.set(type[1]!, type[2]!);
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { families, samples };
}

async function scrape(metricsUrl: string) {
  const res = await fetch(`${metricsUrl}/metrics`);
  assert.equal(res.status, 200);
  return parse(await res.text());
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return found.length === 0 ? undefined : found.reduce((sum, s) => sum + s.value, 0);
}

/** The names of the README's metrics table. */
function documentedMetrics(): Set<string> {
  const readme = readFileSync('README.md', 'utf8');
  return new Set([...readme.matchAll(/^\| `(pod_identity_[a-z_]+)` \|/gm)].map((m) => m[1]!));
}

function sourceText(dir: string): string {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => readFileSync(join(entry.parentPath, entry.name), 'utf8'))
    .join('\n');
}

/** default metrics of prom-client every process must serve, unprefixed */
const STANDARD = ['process_cpu_user_seconds_total', 'process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_version_info'];

describe('metric names of a running server and agent', { skip, timeout: 180_000 }, () => {
  let moto: MotoServer;
  let plane: ControlPlane;
  let agent: AgentProcess;
  let server: Awaited<ReturnType<typeof scrape>>;
  let agentMetrics: Awaited<ReturnType<typeof scrape>>;
  let serverAfterSts: Awaited<ReturnType<typeof scrape>>;

  before(async () => {
    moto = await startMoto();
    const role = await createRole(moto, { roleName: 'metrics-reader', trustPolicy: trustPolicyFor() });
    plane = await startControlPlane(
      {
        workers: 2,
        region: 'us-east-1',
        accountId: moto.accountId,
        issuer: { type: 'aws-sts', stsEndpoint: moto.endpoint, region: moto.region, durationSeconds: 3600 },
      },
      { AWS_ACCESS_KEY_ID: moto.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: moto.credentials.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' },
    );
    const eks = new EKSClient({ endpoint: plane.server.apiUrl, region: 'us-east-1', credentials: { ...ADMIN }, maxAttempts: 1 });
    await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: CLUSTER, namespace: 'shop', serviceAccount: 'cart', roleArn: role.arn }));
    eks.destroy();
    agent = await startAgentProcess({ endpoint: plane.server.apiUrl });

    const token = await plane.token({ namespace: 'shop', serviceAccount: 'cart', podName: 'cart-1' });
    const first = await getCredentials(agent.url, token);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal((await getCredentials(agent.url, token)).status, 200, 'a cache hit');
    const forged = tamperPayload(token, { ...decodeJwt(token), sub: 'system:serviceaccount:shop:admin' });
    assert.equal((await getCredentials(agent.url, forged)).status, 400);

    server = await scrape(plane.server.metricsUrl);
    agentMetrics = await scrape(agent.metricsUrl);

    // STS goes away: the next pod's AssumeRole fails, and says so
    await moto.stop();
    const other = await plane.token({ namespace: 'shop', serviceAccount: 'cart', podName: 'cart-2' });
    assert.equal((await getCredentials(agent.url, other)).status, 503);
    serverAfterSts = await scrape(plane.server.metricsUrl);
  });

  after(async () => {
    await agent?.stop();
    await plane?.stop();
    await moto?.stop();
  });

  test('both processes serve the standard process_* and nodejs_* metrics, and none under our prefix', () => {
    for (const [what, scraped] of [['server', server], ['agent', agentMetrics]] as const) {
      for (const name of STANDARD) assert.ok(scraped.families.has(name), `${what} serves ${name}`);
      const prefixed = [...scraped.families.keys()].filter((n) => /^pod_identity_(agent_)?(process|nodejs)_/.test(n));
      assert.deepEqual(prefixed, [], `${what}: default metrics without our prefix`);
    }
    // two workers and the primary: three processes' CPU, counted once each
    assert.ok(value(server.samples, 'process_cpu_seconds_total')! > 0);
  });

  test('pod_identity_build_info names the version and the component, once per process kind', () => {
    assert.deepEqual(
      server.samples.filter((s) => s.name === 'pod_identity_build_info'),
      [{ name: 'pod_identity_build_info', labels: { version: VERSION, component: 'server' }, value: 1 }],
    );
    assert.deepEqual(
      agentMetrics.samples.filter((s) => s.name === 'pod_identity_build_info'),
      [{ name: 'pod_identity_build_info', labels: { version: VERSION, component: 'agent' }, value: 1 }],
    );
  });

  test('the server measures what was asked of it: decisions, verification failures by reason, STS, associations, readiness, certificates', () => {
    const s = server.samples;
    assert.equal(value(s, 'pod_identity_eks_auth_decisions_total', { cluster: CLUSTER, outcome: 'allowed' }), 1);
    assert.equal(value(s, 'pod_identity_token_verification_failures_total', { cluster: CLUSTER, reason: 'bad_signature' }), 1);
    assert.equal(value(s, 'pod_identity_sts_assume_role_duration_seconds_count', { outcome: 'ok' }), 1);
    assert.equal(server.families.get('pod_identity_sts_assume_role_duration_seconds'), 'histogram');
    assert.equal(value(s, 'pod_identity_associations', { cluster: CLUSTER }), 1);
    assert.equal(value(s, 'pod_identity_ready'), 1);
    assert.equal(value(s, 'pod_identity_dependency_up', { cluster: CLUSTER, dependency: 'signing-keys' }), 1);
    const expiry = value(s, 'pod_identity_certificate_expiry_timestamp_seconds', { certificate: 'webhook' })!;
    assert.ok(expiry > Date.now() / 1000 + 300 * 86400, 'a generated serving certificate lasts a year');
    assert.ok(value(s, 'pod_identity_certificate_expiry_timestamp_seconds', { certificate: 'webhook-ca' })! > expiry);
    assert.ok(value(s, 'pod_identity_api_requests_total', { operation: 'AssumeRoleForPodIdentity', status: '200' })! >= 1);

    // one failed AssumeRole per attempt of the agent (it retries a 503)
    const failed = value(serverAfterSts.samples, 'pod_identity_sts_assume_role_errors_total', { error: 'ServiceUnavailableException' })!;
    assert.ok(failed >= 1);
    assert.equal(value(serverAfterSts.samples, 'pod_identity_sts_assume_role_duration_seconds_count', { outcome: 'ServiceUnavailableException' }), failed);
  });

  test('the agent has a latency histogram of pods\' requests, by status', () => {
    const a = agentMetrics.samples;
    assert.equal(agentMetrics.families.get('pod_identity_agent_request_duration_seconds'), 'histogram');
    assert.equal(value(a, 'pod_identity_agent_request_duration_seconds_count', { code: '200' }), 2);
    assert.equal(value(a, 'pod_identity_agent_request_duration_seconds_count', { code: '400' }), 1);
    assert.equal(value(a, 'pod_identity_agent_request_duration_seconds_bucket', { code: '200', le: '+Inf' }), 2);
    assert.equal(value(a, 'pod_identity_agent_cache_hits_total'), 1);
    assert.equal(value(a, 'pod_identity_agent_responses_total', { code: '200' }), 2);
  });

  test('labels stay bounded: no series names a namespace, service account, pod or token', () => {
    for (const scraped of [server, agentMetrics, serverAfterSts]) {
      for (const sample of scraped.samples) {
        for (const labelValue of Object.values(sample.labels)) {
          assert.doesNotMatch(labelValue, /shop|cart|eyJ|AKIA|ASIA/, `${sample.name}${JSON.stringify(sample.labels)}`);
        }
      }
    }
  });

  test('every pod_identity_* metric served is in the README, and every one there exists in the code', () => {
    const documented = documentedMetrics();
    const served = [...server.families.keys(), ...serverAfterSts.families.keys(), ...agentMetrics.families.keys()].filter((n) => n.startsWith('pod_identity_'));
    for (const name of served) assert.ok(documented.has(name), `${name} is documented in README.md (Metrics)`);
    const source = sourceText('src');
    for (const name of documented) assert.ok(source.includes(`'${name}'`), `${name} (README) is a metric of the code`);
  });
});
