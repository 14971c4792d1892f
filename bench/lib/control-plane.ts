// The product processes the scenarios measure, started the same way in each:
// `pod-identity server` on loopback ports with the local issuer, and
// `pod-identity agent` pointed at it with the bench's node key.
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreatePodIdentityAssociationCommand, EKSClient } from '@aws-sdk/client-eks';
import { signRequest } from '../../src/lib/sigv4.js';
import { freePort } from '../../test/helpers/server-process.js';
import { CURRENT_BUILD, startProcess, type Build } from './processes.js';
import { BENCH_SERVICE_ACCOUNTS } from './tokens.js';

const BENCH_ADMIN = { accessKeyId: 'AKIABENCHADMIN', secretAccessKey: 'bench-admin-secret' };
export const BENCH_NODE = { accessKeyId: 'AKIABENCHNODE', secretAccessKey: 'bench-node-secret' };

/**
 * A fresh copy of a key: the AWS SDK marks the credentials object it is given
 * (`$source`), and the server's config refuses unknown keys.
 */
function keyPair(key: { accessKeyId: string; secretAccessKey: string }): { accessKeyId: string; secretAccessKey: string } {
  return { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey };
}

/** Node flags for a product process from an environment knob, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof". */
export function nodeArgsFrom(name: string): string[] {
  return (process.env[name] ?? '').split(' ').filter(Boolean);
}

export interface BenchServer {
  process: ChildProcess;
  apiUrl: string;
  metricsUrl: string;
}

/** How the server verifies the tokens of cluster `bench` (the server's cluster keys). */
export interface BenchCluster {
  issuer?: string;
  jwksFile?: string;
  kubeconfig?: string;
  tokenReview?: boolean;
}

/**
 * `pod-identity server` with SQLite under `dir`, the local issuer and one
 * cluster `bench`, logging at info: one audit record per
 * AssumeRoleForPodIdentity, as in production (startProcess keeps reading it);
 * `workers` API worker processes (the server's `workers` key); `build` says
 * which CLI on which node (default: this checkout's, BENCH_CLI/BENCH_NODE).
 */
export async function startBenchServer(
  dir: string,
  cluster: BenchCluster,
  nodeArgs: string[] = [],
  workers: number | 'auto' = 1,
  build: Build = CURRENT_BUILD,
  /** more server configuration keys (e.g. tls, admission) */
  extraConfig: Record<string, unknown> = {},
): Promise<BenchServer> {
  const [api, webhook, metrics] = await Promise.all([freePort(), freePort(), freePort()]);
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    JSON.stringify({
      listen: `127.0.0.1:${api}`,
      webhookListen: `127.0.0.1:${webhook}`,
      metricsListen: `127.0.0.1:${metrics}`,
      dataDir: join(dir, 'data'),
      logLevel: 'info',
      workers,
      admins: [keyPair(BENCH_ADMIN)],
      nodes: [keyPair(BENCH_NODE)],
      clusters: [{ name: 'bench', ...cluster }],
      issuer: { type: 'local', durationSeconds: 3600 },
      ...extraConfig,
    }),
  );
  const child = await startProcess([...nodeArgs, build.cli, 'server', '--config', config], {}, 'server started', undefined, build.node);
  return { process: child, apiUrl: `${extraConfig.tls ? 'https' : 'http'}://127.0.0.1:${api}`, metricsUrl: `http://127.0.0.1:${metrics}` };
}

/** The role the benchmarks associate with a service account of namespace `bench`. */
function benchRoleArn(serviceAccount: string): string {
  return `arn:aws:iam::111122223333:role/bench-${serviceAccount}`;
}

/** Each service account of namespace `bench` (`bench/sa-<i>`) with its benchRoleArn. */
export function benchRoles(): Record<string, string> {
  return Object.fromEntries(Array.from({ length: BENCH_SERVICE_ACCOUNTS }, (_, i) => [`bench/sa-${i}`, benchRoleArn(`sa-${i}`)]));
}

/** An AssumeRoleForPodIdentity request for `token` to `url`, SigV4-signed with the bench's node key. */
export async function signedAssumeRole(url: URL, token: string): Promise<{ headers: Record<string, string>; body: string }> {
  const body = JSON.stringify({ token });
  const headers = await signRequest({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body }, { credentials: BENCH_NODE, region: 'us-east-1', service: 'eks-auth' });
  return { headers, body };
}

/** Associates each service account of namespace `bench` with its benchRoleArn, through the EKS API. */
export async function createAssociations(apiUrl: string, serviceAccounts: string[]): Promise<void> {
  const eks = new EKSClient({ endpoint: apiUrl, region: 'us-east-1', credentials: keyPair(BENCH_ADMIN), maxAttempts: 1 });
  try {
    for (const serviceAccount of serviceAccounts) {
      await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'bench', namespace: 'bench', serviceAccount, roleArn: benchRoleArn(serviceAccount) }));
    }
  } finally {
    eks.destroy();
  }
}

export interface BenchAgent {
  process: ChildProcess;
  /** http://127.0.0.1:<port>/v1/credentials */
  credentialsUrl: string;
  metricsUrl: string;
}

/** The V8 flags the chart's DaemonSet gives the agent (NODE_OPTIONS in deploy/helm/pod-identity/templates/agent.yaml). */
export const AGENT_NODE_OPTIONS = ['--max-semi-space-size=1'];

/**
 * `pod-identity agent` on loopback for the server at `apiUrl`, signing with
 * the bench node key, with the DaemonSet's V8 flags unless `nodeArgs` are
 * given; `flags` are added to the CLI's.
 */
export async function startBenchAgent(apiUrl: string, flags: string[] = [], nodeArgs: string[] = AGENT_NODE_OPTIONS): Promise<BenchAgent> {
  const [port, probePort, metricsPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const args = [...nodeArgs, CURRENT_BUILD.cli, 'agent', '--cluster-name', 'bench', '--endpoint', apiUrl, '--allow-insecure-http-endpoint', '--allow-loopback', '--bind-hosts', '127.0.0.1', '--port', String(port)];
  args.push('--probe-port', String(probePort), '--metrics-port', String(metricsPort), '--metrics-address', '127.0.0.1', '--log-level', 'info', ...flags);
  const env = { AWS_ACCESS_KEY_ID: BENCH_NODE.accessKeyId, AWS_SECRET_ACCESS_KEY: BENCH_NODE.secretAccessKey, AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true' };
  const child = await startProcess(args, env, 'agent started', undefined, CURRENT_BUILD.node);
  return { process: child, credentialsUrl: `http://127.0.0.1:${port}/v1/credentials`, metricsUrl: `http://127.0.0.1:${metricsPort}` };
}
