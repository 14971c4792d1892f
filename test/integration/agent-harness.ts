// Shared by the agent's integration tests: a real `pod-identity server`
// (local issuer, JWKS of a test signer, one association), a real
// `pod-identity agent` process in front of it, tokens in the projected format,
// and the server's own count of EKS Auth calls.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreatePodIdentityAssociationCommand, EKSClient } from '@aws-sdk/client-eks';
import { podClaims, testSigner, TEST_ISSUER, type PodClaimsInput, type TestSigner } from '../helpers/sa-tokens.js';
import { ADMIN, CLI, freePort, NODE, spawnTestProcess, startServerProcess, waitForHttp, type ServerProcess, type TestProcess } from '../helpers/server-process.js';

export const CLUSTER = 'demo';
export const ROLE_ARN = 'arn:aws:iam::111122223333:role/agent-test-role';

export interface ControlPlane {
  server: ServerProcess;
  signer: TestSigner;
  /** a pod-bound token for the given subject, signed by the cluster's key */
  token(input?: PodClaimsInput): Promise<string>;
  /** associate (namespace, serviceAccount) with ROLE_ARN */
  associate(namespace: string, serviceAccount: string): Promise<void>;
  /** AssumeRoleForPodIdentity requests the server answered, by HTTP status, from its /metrics */
  assumeRoleCalls(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

/** `env`: the server's environment besides the test's own (e.g. the AWS keys of an aws-sts issuer). */
export async function startControlPlane(config: Record<string, unknown> = {}, env: Record<string, string> = {}): Promise<ControlPlane> {
  const signer = await testSigner();
  const dir = mkdtempSync(join(tmpdir(), 'agent-test-jwks-'));
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [signer.publicJwk] }));
  const server = await startServerProcess({
    config: { clusters: [{ name: CLUSTER, issuer: TEST_ISSUER, jwksFile }], issuer: { type: 'local', durationSeconds: 3600 }, ...config },
    env,
  });
  const eks = new EKSClient({ endpoint: server.apiUrl, region: 'us-east-1', credentials: { ...ADMIN }, maxAttempts: 1 });
  return {
    server,
    signer,
    token: (input = {}) => signer.sign(podClaims(input)),
    async associate(namespace, serviceAccount) {
      await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: CLUSTER, namespace, serviceAccount, roleArn: ROLE_ARN }));
    },
    assumeRoleCalls: () => assumeRoleCalls(server.metricsUrl),
    async stop() {
      eks.destroy();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Reads pod_identity_api_requests_total{operation="AssumeRoleForPodIdentity"} by status. */
export async function assumeRoleCalls(metricsUrl: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('pod_identity_api_requests_total{') || !line.includes('operation="AssumeRoleForPodIdentity"')) continue;
    const status = /status="(\d+)"/.exec(line)?.[1] ?? '?';
    counts[status] = (counts[status] ?? 0) + Number(line.split(' ').pop());
  }
  return counts;
}

export function total(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

export interface AgentProcess {
  /** http://127.0.0.1:port/v1/credentials */
  url: string;
  port: number;
  probeUrl: string;
  metricsUrl: string;
  child: ChildProcess;
  logs(): string;
  /** SIGTERM and wait; returns the exit code */
  stop(): Promise<number | null>;
}

export interface AgentProcessOptions {
  endpoint: string;
  args?: string[];
  env?: Record<string, string>;
  /** run inside this network namespace (ip netns exec) */
  netns?: string;
  /** default 127.0.0.1 with --allow-loopback */
  bindHost?: string;
  port?: number;
}

/** Starts `pod-identity agent` as a child process signing with the test node key; waits for /readyz. */
export async function startAgentProcess(options: AgentProcessOptions): Promise<AgentProcess> {
  const bindHost = options.bindHost ?? '127.0.0.1';
  const port = options.port ?? (await freePort());
  const probePort = await freePort();
  const metricsPort = await freePort();
  const args = [
    CLI,
    'agent',
    '--cluster-name',
    CLUSTER,
    '--endpoint',
    options.endpoint,
    '--bind-hosts',
    bindHost,
    '--port',
    String(port),
    '--probe-port',
    String(probePort),
    '--metrics-port',
    String(metricsPort),
    '--metrics-address',
    '127.0.0.1',
    ...(bindHost.startsWith('127.') ? ['--allow-loopback'] : []),
    // the test control plane serves plain http on loopback, unless a test gives the agent an https endpoint
    ...(options.endpoint.startsWith('http:') ? ['--allow-insecure-http-endpoint'] : []),
    ...(options.args ?? []),
  ];
  const command = options.netns ? 'ip' : process.execPath;
  const argv = options.netns ? ['netns', 'exec', options.netns, process.execPath, ...args] : args;
  const agentProcess = spawnTestProcess(command, argv, {
    AWS_ACCESS_KEY_ID: NODE.accessKeyId,
    AWS_SECRET_ACCESS_KEY: NODE.secretAccessKey,
    AWS_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    LOG_LEVEL: 'info',
    ...options.env,
  });
  const probeUrl = `http://127.0.0.1:${probePort}`;
  // In a network namespace the probe listener is out of reach: wait for the log line instead.
  await agentProcess.untilReady(options.netns ? logLine(agentProcess, '"agent started"', 15_000) : waitForHttp(`${probeUrl}/readyz`), 'agent');
  return {
    url: `http://${bindHost.includes(':') ? `[${bindHost}]` : bindHost}:${port}/v1/credentials`,
    port,
    probeUrl,
    metricsUrl: `http://127.0.0.1:${metricsPort}`,
    child: agentProcess.child,
    logs: agentProcess.logs,
    stop: agentProcess.stop,
  };
}

/** Resolves once the process has logged `text`. */
async function logLine(agent: TestProcess, text: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!agent.logs().includes(text)) {
    if (Date.now() > deadline) throw new Error(`no ${text} within ${timeoutMs} ms:\n${agent.logs()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** GET /v1/credentials with the token as the raw Authorization header. */
export async function getCredentials(url: string, token: string, host?: string): Promise<{ status: number; body: Record<string, string> }> {
  const res = await fetch(url, { headers: { authorization: token, ...(host && { host }) }, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: (await res.json()) as Record<string, string> };
}
