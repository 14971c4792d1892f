// The agent where pods really call it: 169.254.170.23 and [fd00:ec2::23] on
// port 80, set up by `pod-identity initialize`, inside a network namespace the
// test creates (root only) and always deletes. Everything runs in that
// namespace: the server on its loopback, the agent on the link-local
// addresses, and the SDK clients (AWS SDK for JavaScript, boto3, AWS CLI).
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isolatedAwsEnv, pythonPeersMissingReason, venvBinary } from '../peers/python.js';
import { requirePeer } from '../peers/require.js';
import { podClaims, testSigner, TEST_ISSUER, type TestSigner } from '../helpers/sa-tokens.js';
import { ADMIN, CLI, NODE } from '../helpers/server-process.js';
import { CLUSTER, ROLE_ARN, startAgentProcess, type AgentProcess } from './agent-harness.js';

function netnsMissingReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
  } catch {
    return 'the ip command (iproute2) with netns support is not available';
  }
  return undefined;
}

const skip = requirePeer('network namespaces (root, iproute2)', netnsMissingReason);
const pythonSkip = skip || requirePeer('python venv (boto3, AWS CLI)', pythonPeersMissingReason);

const NS = `pi-agent-${process.pid}-${randomBytes(3).toString('hex')}`;
const API = 'http://127.0.0.1:8080';
const V4_URI = 'http://169.254.170.23/v1/credentials';
const V6_URI = 'http://[fd00:ec2::23]/v1/credentials';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command inside the namespace. */
function inNs(command: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 60_000): Promise<Result> {
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', NS, command, ...args], { env, timeout: timeoutMs, cwd: process.cwd(), maxBuffer: 8 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

function pod(tokenFile: string, uri: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return isolatedAwsEnv({ AWS_CONTAINER_CREDENTIALS_FULL_URI: uri, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile, ...extra });
}

const JS_SDK_CLIENT = `
import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import { STSClient, GetCallerIdentityCommand } from '@aws-sdk/client-sts';
const provider = fromNodeProviderChain();
const credentials = await provider();
const sts = new STSClient({ endpoint: process.env.STS_ENDPOINT, credentials: provider, maxAttempts: 1 });
const identity = await sts.send(new GetCallerIdentityCommand({}));
console.log(JSON.stringify({ accessKeyId: credentials.accessKeyId, arn: identity.Arn }));
`;

const BOTO3_CLIENT = `
import json, boto3
c = boto3.Session().get_credentials().get_frozen_credentials()
print(json.dumps({"accessKeyId": c.access_key}))
`;

describe('agent on 169.254.170.23 in a network namespace, after pod-identity initialize', { skip }, () => {
  let dir: string;
  let signer: TestSigner;
  let server: ChildProcess | undefined;
  let agent: AgentProcess | undefined;
  let serverLog = '';

  before(async () => {
    execFileSync('ip', ['netns', 'add', NS]);
    execFileSync('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up']);
    dir = mkdtempSync(join(tmpdir(), 'agent-netns-'));
    signer = await testSigner();
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [signer.publicJwk] }));
    writeFileSync(
      join(dir, 'config.yaml'),
      JSON.stringify({
        listen: '127.0.0.1:8080',
        webhookListen: '127.0.0.1:9443',
        metricsListen: '127.0.0.1:9090',
        dataDir: join(dir, 'data'),
        admins: [ADMIN],
        nodes: [NODE],
        clusters: [{ name: CLUSTER, issuer: TEST_ISSUER, jwksFile: join(dir, 'jwks.json') }],
        issuer: { type: 'local' },
      }),
    );
  });

  after(async () => {
    await agent?.stop();
    if (server && server.exitCode === null) {
      server.kill('SIGTERM');
      await new Promise((r) => server!.once('exit', r));
    }
    try {
      execFileSync('ip', ['netns', 'del', NS]);
    } catch {
      // already gone
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('initialize configures pod-id-link0 with both addresses and routes, and is idempotent', async () => {
    const first = await inNs(process.execPath, [CLI, 'initialize']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /configured pod-id-link0/);
    const second = await inNs(process.execPath, [CLI, 'initialize']);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /already configured/);

    const [link] = JSON.parse((await inNs('ip', ['-j', 'addr', 'show', 'dev', 'pod-id-link0'])).stdout) as { flags: string[]; addr_info: { local: string; prefixlen: number }[] }[];
    assert.ok(link!.flags.includes('UP'));
    const addresses = link!.addr_info.map((a) => `${a.local}/${a.prefixlen}`);
    assert.ok(addresses.includes('169.254.170.23/32'), addresses.join(' '));
    assert.ok(addresses.includes('fd00:ec2::23/128'), addresses.join(' '));
    const routes = JSON.parse((await inNs('ip', ['-j', '-4', 'route', 'show', 'table', 'main', 'exact', '169.254.170.23/32'])).stdout) as { dev: string }[];
    assert.deepEqual(
      routes.map((r) => r.dev),
      ['pod-id-link0'],
    );
  });

  test('initialize without NET_ADMIN fails with a clear error', async () => {
    const denied = await inNs('setpriv', ['--bounding-set', '-net_admin', process.execPath, CLI, 'initialize']);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /needs the NET_ADMIN capability/);
  });

  test('server on the namespace loopback, agent on 169.254.170.23:80 and [fd00:ec2::23]:80', async () => {
    server = spawn('ip', ['netns', 'exec', NS, process.execPath, CLI, 'server', '--config', join(dir, 'config.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
    process.once('exit', () => server?.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start:\n${serverLog}`)), 20_000);
      const onData = (chunk: Buffer) => {
        serverLog += chunk.toString();
        if (serverLog.includes('server started')) {
          clearTimeout(timer);
          resolve();
        }
      };
      server!.stdout!.on('data', onData);
      server!.stderr!.on('data', onData);
      server!.once('exit', (code) => reject(new Error(`server exited with ${code}:\n${serverLog}`)));
    });
    const created = await inNs(process.execPath, [
      CLI, 'associations', 'create', '--endpoint', API, '--cluster-name', CLUSTER, '--namespace', 'default', '--service-account', 'app', '--role-arn', ROLE_ARN,
      '--access-key-id', ADMIN.accessKeyId, '--secret-access-key', ADMIN.secretAccessKey,
    ]); // prettier-ignore
    assert.equal(created.code, 0, created.stderr);

    agent = await startAgentProcess({ endpoint: API, netns: NS, bindHost: '169.254.170.23', port: 80, args: ['--bind-hosts', '[fd00:ec2::23]'] });
    assert.match(agent.logs(), /169\.254\.170\.23/);
    assert.doesNotMatch(agent.logs(), /IPv6 address not available/);
  });

  test('the AWS SDK for JavaScript default chain, over IPv4 and IPv6', async () => {
    assert.ok(agent, 'agent started');
    const tokenFile = join(dir, 'js-token');
    writeFileSync(tokenFile, await signer.sign(podClaims({ podName: 'js-pod' })));
    for (const uri of [V4_URI, V6_URI]) {
      const result = await inNs(process.execPath, ['--input-type=module', '-e', JS_SDK_CLIENT], { ...pod(tokenFile, uri, { STS_ENDPOINT: API }), NODE_PATH: '' });
      assert.equal(result.code, 0, result.stderr);
      const parsed = JSON.parse(result.stdout.trim()) as { accessKeyId: string; arn: string };
      assert.match(parsed.accessKeyId, /^ASIA/);
      assert.match(parsed.arn, /assumed-role\/agent-test-role\/eks-demo-js-pod/);
    }
  });

  test('boto3 and the AWS CLI', { skip: pythonSkip }, async () => {
    assert.ok(agent, 'agent started');
    const tokenFile = join(dir, 'py-token');
    writeFileSync(tokenFile, await signer.sign(podClaims({ podName: 'py-pod' })));
    const boto3 = await inNs(venvBinary('python'), ['-c', BOTO3_CLIENT], pod(tokenFile, V4_URI));
    assert.equal(boto3.code, 0, boto3.stderr);
    assert.match((JSON.parse(boto3.stdout.trim()) as { accessKeyId: string }).accessKeyId, /^ASIA/);
    const cli = await inNs(venvBinary('aws'), ['sts', 'get-caller-identity', '--endpoint-url', API, '--output', 'json'], pod(tokenFile, V4_URI));
    assert.equal(cli.code, 0, cli.stderr);
    assert.match((JSON.parse(cli.stdout) as { Arn: string }).Arn, /assumed-role\/agent-test-role\/eks-demo-py-pod/);
  });

  test('inside the namespace a wrong Host is still 403', async () => {
    assert.ok(agent, 'agent started');
    const token = await signer.sign(podClaims());
    const result = await inNs('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', `Authorization: ${token}`, '-H', 'Host: 127.0.0.1', V4_URI]);
    assert.equal(result.stdout, '403');
  });
});
