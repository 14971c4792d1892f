// `pod-identity agent` in front of a real `pod-identity server` (local issuer),
// both as child processes on loopback (--allow-loopback). Clients are ones we
// did not write: the AWS SDK for JavaScript's default chain in a child process,
// and plain HTTP for the malformed requests no SDK would send. Upstream calls
// are counted at the server (its /metrics).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pythonPeersMissingReason, runAwsCli, runPython } from '../peers/python.js';
import { requirePeer } from '../peers/require.js';
import { assumeRoleCalls, getCredentials, ROLE_ARN, startAgentProcess, startControlPlane, total, type AgentProcess, type ControlPlane } from './agent-harness.js';

/** The environment of a pod: only the two variables the webhook injects (and no other AWS configuration). */
function podEnv(agentUrl: string, tokenFile: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AWS_')) env[k] = v;
  return {
    ...env,
    HOME: tmpdir(),
    AWS_CONTAINER_CREDENTIALS_FULL_URI: agentUrl,
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_REGION: 'us-east-1',
    ...extra,
  };
}

const JS_SDK_CLIENT = `
import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import { STSClient, GetCallerIdentityCommand } from '@aws-sdk/client-sts';
const provider = fromNodeProviderChain();
const credentials = await provider();
const sts = new STSClient({ endpoint: process.env.STS_ENDPOINT, credentials: provider, maxAttempts: 1 });
const identity = await sts.send(new GetCallerIdentityCommand({}));
console.log(JSON.stringify({ accessKeyId: credentials.accessKeyId, accountId: credentials.accountId, expiration: credentials.expiration, arn: identity.Arn }));
`;

/** Runs the AWS SDK for JavaScript's default chain in a child process, as a pod would. */
export function runJsSdkClient(env: NodeJS.ProcessEnv): Promise<{ accessKeyId: string; accountId?: string; expiration: string; arn: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', JS_SDK_CLIENT], { env, cwd: process.cwd(), timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`JS SDK client failed: ${stderr || error.message}`));
      else resolve(JSON.parse(stdout.trim().split('\n').pop()!));
    });
  });
}

interface RawAnswer {
  status: number;
  text: string;
  error?: string;
}

/** Sends bytes as they are (no client-side header validation) and reads the answer. */
function rawRequest(port: number, payload: string | Buffer, timeoutMs = 5000): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let error: string | undefined;
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('data', (chunk) => (text += chunk.toString()));
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text, error });
    });
    socket.write(payload, () => socket.end());
  });
}

function httpGet(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const pythonSkip = requirePeer('python venv (boto3, AWS CLI)', pythonPeersMissingReason);

export const BOTO3_CLIENT = `
import json, boto3
credentials = boto3.Session().get_credentials().get_frozen_credentials()
print(json.dumps({"accessKeyId": credentials.access_key, "hasSecret": bool(credentials.secret_key), "hasToken": bool(credentials.token)}))
`;

describe('agent with a real server on loopback', () => {
  let cp: ControlPlane;
  let agent: AgentProcess;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'agent-test-'));
    cp = await startControlPlane();
    await cp.associate('default', 'app');
    agent = await startAgentProcess({ endpoint: cp.server.apiUrl, env: { NODE_NAME: 'node-1' } });
  });
  after(async () => {
    await agent?.stop();
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the AWS SDK for JavaScript default chain gets credentials and STS sees the role session', async () => {
    const tokenFile = join(dir, 'js-token');
    writeFileSync(tokenFile, await cp.token({ podName: 'js-client' }));
    const result = await runJsSdkClient(podEnv(agent.url, tokenFile, { STS_ENDPOINT: cp.server.apiUrl }));
    assert.match(result.accessKeyId, /^ASIA/);
    assert.ok(new Date(result.expiration).getTime() > Date.now() + 50 * 60_000);
    assert.match(result.arn, /^arn:aws:sts::111122223333:assumed-role\/agent-test-role\/eks-demo-js-client/);
  });

  test('boto3 (default session) gets credentials through the agent', { skip: pythonSkip }, async () => {
    const tokenFile = join(dir, 'boto3-token');
    writeFileSync(tokenFile, await cp.token({ podName: 'boto3-client' }));
    const result = await runPython(BOTO3_CLIENT, [], { env: { AWS_CONTAINER_CREDENTIALS_FULL_URI: agent.url, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile } });
    const parsed = JSON.parse(result.stdout.trim()) as { accessKeyId: string; hasSecret: boolean; hasToken: boolean };
    assert.match(parsed.accessKeyId, /^ASIA/);
    assert.equal(parsed.hasSecret && parsed.hasToken, true);
  });

  test('the AWS CLI: aws sts get-caller-identity against the server sees the role session', { skip: pythonSkip }, async () => {
    const tokenFile = join(dir, 'cli-token');
    writeFileSync(tokenFile, await cp.token({ podName: 'cli-client' }));
    const result = await runAwsCli(['sts', 'get-caller-identity', '--endpoint-url', cp.server.apiUrl, '--output', 'json'], {
      env: { AWS_CONTAINER_CREDENTIALS_FULL_URI: agent.url, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile },
    });
    const identity = JSON.parse(result.stdout) as { Arn: string; Account: string };
    assert.match(identity.Arn, /^arn:aws:sts::111122223333:assumed-role\/agent-test-role\/eks-demo-cli-client/);
    assert.equal(identity.Account, '111122223333');
  });

  test('the answer has exactly the SDK fields, Expiration in UTC with Z; a second request is served from the cache', async () => {
    const token = await cp.token();
    const before = total(await cp.assumeRoleCalls());
    const first = await getCredentials(agent.url, token);
    assert.equal(first.status, 200);
    assert.deepEqual(Object.keys(first.body).sort(), ['AccessKeyId', 'AccountId', 'Expiration', 'SecretAccessKey', 'Token']);
    assert.match(first.body.Expiration!, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    assert.equal(first.body.AccountId, ROLE_ARN.split(':')[4]);
    const second = await getCredentials(agent.url, token);
    assert.deepEqual(second.body, first.body);
    assert.equal(total(await cp.assumeRoleCalls()) - before, 1);
  });

  test('a wrong Host is 403 with a JSON {Code, Message}', async () => {
    const res = await httpGet(agent.url, { host: 'evil.example', authorization: await cp.token() });
    assert.equal(res.status, 403);
    const body = JSON.parse(res.body) as { Code: string; Message: string };
    assert.equal(body.Code, 'AccessDeniedException');
    assert.match(body.Message, /127\.0\.0\.1/);
    const other = await httpGet(agent.url, { host: '169.254.170.23', authorization: await cp.token() });
    assert.equal(other.status, 403, 'an address this agent does not serve');
  });

  test('localhost names the served loopback address', async () => {
    const res = await httpGet(agent.url, { host: `localhost:${agent.port}`, authorization: await cp.token() });
    assert.equal(res.status, 200);
  });

  test('empty, unparseable and expired tokens are 400 without an upstream call', async () => {
    const before = total(await cp.assumeRoleCalls());
    const expired = await cp.signer.sign({ sub: 'system:serviceaccount:default:app', exp: Math.floor(Date.now() / 1000) - 10 });
    for (const [token, code] of [
      ['', 'InvalidParameterException'],
      ['not-a-jwt', 'InvalidTokenException'],
      [expired, 'ExpiredTokenException'],
    ]) {
      const res = await httpGet(agent.url, { authorization: token! });
      assert.equal(res.status, 400, token);
      assert.equal((JSON.parse(res.body) as { Code: string }).Code, code);
    }
    const missing = await httpGet(agent.url, {});
    assert.equal(missing.status, 400);
    assert.equal(total(await cp.assumeRoleCalls()), before);
  });

  test('a token containing a newline is 400', async () => {
    const token = await cp.token();
    for (const broken of [`${token}\nX-Injected: 1`, `${token.slice(0, 20)}\n${token.slice(20)}`, `${token}\r\n continued`]) {
      const res = await rawRequest(agent.port, `GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1:${agent.port}\r\nAuthorization: ${broken}\r\n\r\n`);
      assert.equal(res.status, 400, JSON.stringify(res));
      assert.match(res.text, /"Code":/);
    }
  });

  test('a 10 MB header is refused and the agent lives', async () => {
    const huge = `GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1:${agent.port}\r\nAuthorization: ${'a'.repeat(10 * 1024 * 1024)}\r\n\r\n`;
    const res = await rawRequest(agent.port, huge);
    assert.ok(res.status === 431 || res.error === 'ECONNRESET' || res.error === 'EPIPE', JSON.stringify({ status: res.status, error: res.error }));
    assert.notEqual(res.status, 200);
    assert.equal(agent.child.exitCode, null);
    assert.equal((await getCredentials(agent.url, await cp.token())).status, 200);
  });

  test('a request body is refused (413); other paths are 404, other methods 405', async () => {
    const token = await cp.token();
    const withBody = await rawRequest(agent.port, `GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1:${agent.port}\r\nAuthorization: ${token}\r\nContent-Length: 5000\r\n\r\n${'x'.repeat(5000)}`);
    assert.equal(withBody.status, 413);
    assert.equal((await httpGet(agent.url.replace('/v1/credentials', '/latest/meta-data'), { authorization: token })).status, 404);
    const post = await rawRequest(agent.port, `POST /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1:${agent.port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    assert.equal(post.status, 405);
  });

  test('no association keeps the upstream 404 and its JSON message; nothing is cached', async () => {
    const token = await cp.token({ serviceAccount: 'unassociated' });
    const before = total(await cp.assumeRoleCalls());
    for (let i = 0; i < 2; i++) {
      const res = await getCredentials(agent.url, token);
      assert.equal(res.status, 404);
      assert.equal(res.body.Code, 'ResourceNotFoundException');
      assert.match(res.body.Message!, /unassociated/);
    }
    assert.equal(total(await cp.assumeRoleCalls()) - before, 2, 'not cached: asked again');
  });

  test('probes answer and metrics count responses, hits and misses', async () => {
    assert.equal((await fetch(`${agent.probeUrl}/healthz`)).status, 200);
    assert.equal((await fetch(`${agent.probeUrl}/readyz`)).status, 200);
    const text = await (await fetch(`${agent.metricsUrl}/metrics`)).text();
    assert.match(text, /pod_identity_agent_responses_total\{code="200"\} [1-9]/);
    assert.match(text, /pod_identity_agent_responses_total\{code="403"\} [1-9]/);
    assert.match(text, /pod_identity_agent_cache_hits_total [1-9]/);
    assert.match(text, /pod_identity_agent_cache_misses_total [1-9]/);
    assert.match(text, /pod_identity_agent_upstream_request_duration_seconds_count\{outcome="ok"\} [1-9]/);
    assert.match(text, /pod_identity_agent_upstream_errors_total\{code="ResourceNotFoundException"\} [1-9]/);
    assert.match(text, /pod_identity_agent_cache_entries [1-9]/);
    assert.doesNotMatch(text, /eyJ/, 'no token in metrics');
  });

  test('logs carry no token, secret or session token', () => {
    const logs = agent.logs();
    assert.doesNotMatch(logs, /eyJ[A-Za-z0-9_-]{20,}/);
    assert.doesNotMatch(logs, /PILOCAL/);
  });
});

describe('agent faults, counted at the real server', () => {
  test('1,000 concurrent requests with one new token make exactly one upstream call', async () => {
    const cp = await startControlPlane();
    const agent = await startAgentProcess({ endpoint: cp.server.apiUrl });
    try {
      await cp.associate('default', 'app');
      const token = await cp.token({ podName: 'storm' });
      const before = total(await cp.assumeRoleCalls());
      const answers = await Promise.all(Array.from({ length: 1000 }, () => httpGet(agent.url, { authorization: token })));
      const statuses = new Set(answers.map((a) => a.status));
      assert.deepEqual([...statuses], [200]);
      assert.equal(new Set(answers.map((a) => a.body)).size, 1, 'every request got the same credentials');
      assert.equal(total(await cp.assumeRoleCalls()) - before, 1);
    } finally {
      await agent.stop();
      await cp.stop();
    }
  });

  test('server killed: cached credentials are still served; new tokens get 503', async () => {
    const cp = await startControlPlane();
    const agent = await startAgentProcess({ endpoint: cp.server.apiUrl, args: ['--upstream-timeout', '300'] });
    try {
      await cp.associate('default', 'app');
      const token = await cp.token({ podName: 'survivor' });
      const cached = await getCredentials(agent.url, token);
      assert.equal(cached.status, 200);
      await cp.server.kill();
      for (let i = 0; i < 3; i++) assert.deepEqual(await getCredentials(agent.url, token), cached);
      const fresh = await getCredentials(agent.url, await cp.token({ podName: 'newcomer' }));
      assert.equal(fresh.status, 503);
      assert.equal(fresh.body.Code, 'ServiceUnavailableException');
      assert.equal((await fetch(`${agent.probeUrl}/readyz`)).status, 200, 'the agent itself stays ready');
    } finally {
      await agent.stop();
      await cp.stop();
    }
  });

  test('server throttling: the agent retries, then answers 429', async () => {
    const cp = await startControlPlane({ throttle: { perServiceAccount: { rate: 0.001, burst: 1 } } });
    const agent = await startAgentProcess({ endpoint: cp.server.apiUrl });
    try {
      await cp.associate('default', 'app');
      assert.equal((await getCredentials(agent.url, await cp.token({ podName: 'first' }))).status, 200);
      const before = await assumeRoleCalls(cp.server.metricsUrl);
      const throttled = await getCredentials(agent.url, await cp.token({ podName: 'second' }));
      assert.equal(throttled.status, 429);
      assert.equal(throttled.body.Code, 'ThrottlingException');
      const afterCalls = await assumeRoleCalls(cp.server.metricsUrl);
      assert.equal((afterCalls['429'] ?? 0) - (before['429'] ?? 0), 3, 'three attempts reached the server');
    } finally {
      await agent.stop();
      await cp.stop();
    }
  });
});
