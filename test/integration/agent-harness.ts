// Shared by the agent's integration tests: a real `pod-identity server`
// (local issuer, JWKS of a test signer, one association), a real
// `pod-identity agent` process in front of it, tokens in the projected format,
// and the server's own count of EKS Auth calls.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreatePodIdentityAssociationCommand, EKSClient } from '@aws-sdk/client-eks';
import { podClaims, testSigner, TEST_ISSUER, type PodClaimsInput, type TestSigner } from '../helpers/sa-tokens.js';
import { ADMIN, CLI, freePort, NODE, startServerProcess, waitForHttp, type ServerProcess } from '../helpers/server-process.js';

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

export async function startControlPlane(config: Record<string, unknown> = {}): Promise<ControlPlane> {
  const signer = await testSigner();
  const dir = mkdtempSync(join(tmpdir(), 'agent-test-jwks-'));
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [signer.publicJwk] }));
  const server = await startServerProcess({
    config: { clusters: [{ name: CLUSTER, issuer: TEST_ISSUER, jwksFile }], issuer: { type: 'local', durationSeconds: 3600 }, ...config },
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
    ...(options.args ?? []),
  ];
  const command = options.netns ? 'ip' : process.execPath;
  const argv = options.netns ? ['netns', 'exec', options.netns, process.execPath, ...args] : args;
  const child = spawn(command, argv, {
    env: {
      ...process.env,
      AWS_ACCESS_KEY_ID: NODE.accessKeyId,
      AWS_SECRET_ACCESS_KEY: NODE.secretAccessKey,
      AWS_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
      LOG_LEVEL: 'info',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const probeUrl = `http://127.0.0.1:${probePort}`;
  const agent: AgentProcess = {
    url: `http://${bindHost.includes(':') ? `[${bindHost}]` : bindHost}:${port}/v1/credentials`,
    port,
    probeUrl,
    metricsUrl: `http://127.0.0.1:${metricsPort}`,
    child,
    logs: () => output,
    async stop() {
      let code = child.exitCode;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        code = await exited;
      }
      process.off('exit', killOnExit);
      return code;
    },
  };
  if (options.netns) {
    // the probe listener is inside the namespace too: wait for the log line instead
    await Promise.race([
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`agent did not start in 15 s:\n${output}`)), 15_000);
        const check = () => {
          if (output.includes('"agent started"')) {
            clearTimeout(timer);
            child.stderr!.off('data', check);
            resolve();
          }
        };
        child.stderr!.on('data', check);
        check();
      }),
      exited.then((code) => {
        throw new Error(`agent exited with ${code}:\n${output}`);
      }),
    ]);
    return agent;
  }
  try {
    await Promise.race([
      waitForHttp(`${probeUrl}/readyz`),
      exited.then((code) => {
        throw new Error(`agent exited with ${code} before it was ready:\n${output}`);
      }),
    ]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return agent;
}

/** GET /v1/credentials with the token as the raw Authorization header. */
export async function getCredentials(url: string, token: string, host?: string): Promise<{ status: number; body: Record<string, string> }> {
  const res = await fetch(url, { headers: { authorization: token, ...(host && { host }) }, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: (await res.json()) as Record<string, string> };
}
