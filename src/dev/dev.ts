// `pod-identity dev`: the whole system on loopback for a laptop. One process
// runs the server (SQLite in the state directory, the local issuer unless told
// otherwise) and the agent (on 127.0.0.1), and, when no cluster is given, a
// development token signer that plays the cluster's service-account issuer.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startAgent, type RunningAgent } from '../agent/server.js';
import type { Logger } from '../lib/logger.js';
import { parseServerConfig } from '../config/load.js';
import type { ServerConfig } from '../config/schema.js';
import { startServer, type RunningServer } from '../server/server.js';
import { DEV_ISSUER, openDevSigner } from './token-signer.js';

export const DEV_CLUSTER = 'dev';
export const DEFAULT_STATE_DIR = '.pod-identity';

interface DevKeys {
  admin: { accessKeyId: string; secretAccessKey: string };
  node: { accessKeyId: string; secretAccessKey: string };
}

/** What `dev` leaves in its state directory for `dev token`, `doctor` and a restart. */
export interface DevState {
  keys: DevKeys;
  /** set when dev runs against a real cluster */
  kubeconfig?: string;
  apiUrl?: string;
  /** the agent's credentials URL */
  agentUrl?: string;
  region?: string;
}

function newKey(prefix: string) {
  return { accessKeyId: `${prefix}${randomBytes(8).toString('hex').toUpperCase()}`, secretAccessKey: randomBytes(24).toString('base64url') };
}

export function readDevState(stateDir: string): DevState | undefined {
  const file = join(stateDir, 'dev-state.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as DevState) : undefined;
}

function writeDevState(stateDir: string, state: DevState): void {
  writeFileSync(join(stateDir, 'dev-state.json'), JSON.stringify(state, null, 2), { mode: 0o600 });
}

function isRunningDev(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // A pid can be reused after a crash: on Linux, the process must still be a dev.
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('dev');
  } catch {
    return true;
  }
}

/**
 * One dev per state directory: `dev.lock` names the process that holds it. A
 * lock whose process is gone (a crashed run) is taken over; a live one is
 * refused. Answers the release.
 */
function lockStateDir(stateDir: string): () => void {
  const file = join(stateDir, 'dev.lock');
  for (;;) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return () => {
        try {
          if (readFileSync(file, 'utf8').trim() === String(process.pid)) unlinkSync(file);
        } catch {
          // already gone
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number(readFileSync(file, 'utf8').trim());
    if (isRunningDev(holder)) throw new Error(`another pod-identity dev (pid ${holder}) is running on ${stateDir}: stop it, or give this one another --state-dir`);
    unlinkSync(file);
  }
}

export interface DevOptions {
  stateDir: string;
  listen: string;
  webhookListen: string;
  metricsListen: string;
  /** the admin console; port 0 picks a free one */
  consoleListen: string;
  agentPort: number;
  region: string;
  accountId: string;
  issuer: 'local' | 'aws-sts';
  stsEndpoint?: string;
  kubeconfig?: string;
  logLevel: string;
}

export interface RunningDev {
  server: RunningServer;
  agent: RunningAgent;
  state: DevState;
  stateDir: string;
  credentialsUrl: string;
  close(): Promise<void>;
}

/** The server configuration dev mode runs with (pure apart from the signer's JWKS path). */
function devServerConfig(options: DevOptions, keys: DevKeys, jwksFile: string | undefined): ServerConfig {
  const cluster = options.kubeconfig
    ? { name: DEV_CLUSTER, kubeconfig: resolve(options.kubeconfig) }
    : { name: DEV_CLUSTER, issuer: DEV_ISSUER, jwksFile };
  return parseServerConfig({
    listen: options.listen,
    webhookListen: options.webhookListen,
    metricsListen: options.metricsListen,
    consoleListen: options.consoleListen,
    region: options.region,
    accountId: options.accountId,
    dataDir: options.stateDir,
    logLevel: options.logLevel,
    admins: [keys.admin],
    nodes: [keys.node],
    clusters: [cluster],
    issuer: { type: options.issuer, ...(options.stsEndpoint && { stsEndpoint: options.stsEndpoint }) },
  });
}

export async function startDev(options: DevOptions, logger: Logger): Promise<RunningDev> {
  const stateDir = resolve(options.stateDir);
  mkdirSync(stateDir, { recursive: true });
  const unlock = lockStateDir(stateDir);
  try {
    return await startLocked({ ...options, stateDir }, logger, unlock);
  } catch (error) {
    unlock();
    throw error;
  }
}

async function startLocked(options: DevOptions, logger: Logger, unlock: () => void): Promise<RunningDev> {
  const { stateDir } = options;
  const previous = readDevState(stateDir);
  const keys = previous?.keys ?? { admin: newKey('AKIADEVADMIN'), node: newKey('AKIADEVNODE') };
  const signer = options.kubeconfig ? undefined : await openDevSigner(stateDir);
  const config = devServerConfig(options, keys, signer?.jwksFile);

  const server = await startServer(config, { logger: logger.child({ component: 'server' }) });
  let agent: RunningAgent;
  try {
    agent = await startAgent(
      {
        clusterName: DEV_CLUSTER,
        endpoint: server.apiUrl,
        // both ends on loopback, in this one process
        allowInsecureHttpEndpoint: true,
        region: options.region,
        bindHosts: ['127.0.0.1'],
        allowLoopback: true,
        port: options.agentPort,
        probePort: 0,
        metricsPort: 0,
        metricsAddress: '127.0.0.1',
      },
      { logger: logger.child({ component: 'agent' }), credentials: async () => keys.node },
    );
  } catch (error) {
    await server.close();
    throw error;
  }
  const state: DevState = { keys, ...(options.kubeconfig && { kubeconfig: resolve(options.kubeconfig) }), apiUrl: server.apiUrl, agentUrl: agent.credentialUrls[0]!, region: options.region };
  writeDevState(stateDir, state);
  return {
    server,
    agent,
    state,
    stateDir,
    credentialsUrl: agent.credentialUrls[0]!,
    async close() {
      await agent.close();
      await server.close();
      unlock();
    },
  };
}

/** The steps `dev` prints: everything a new user types to get credentials. */
export function devInstructions(dev: RunningDev, cliPath: string, region: string): string {
  const { admin } = dev.state.keys;
  const tokenFile = join(dev.stateDir, 'tokens', 'default.demo.token');
  const tokenStep = dev.state.kubeconfig
    ? `$PI dev token --state-dir ${dev.stateDir} --namespace default --service-account demo --pod <a pod of that service account>`
    : `$PI dev token --state-dir ${dev.stateDir} --namespace default --service-account demo`;
  return [
    '',
    'pod-identity dev is running:',
    `  EKS API, EKS Auth and STS  ${dev.server.apiUrl}`,
    `  agent                      ${dev.credentialsUrl}`,
    `  agent metrics and probes   ${dev.agent.metricsUrl}/metrics, ${dev.agent.probeUrl}/readyz`,
    `  admission webhook          ${dev.server.webhookUrl}/mutate`,
    `  metrics                    ${dev.server.metricsUrl}/metrics`,
    ...(dev.server.consoleUrl ? [`  admin console              ${dev.server.consoleUrl}  (sign in with access key ID ${admin.accessKeyId} and secret ${admin.secretAccessKey})`] : []),
    `  state                      ${dev.stateDir}`,
    '',
    'In another shell:',
    '',
    `PI="${process.execPath} ${cliPath}"`,
    '# 1. map a service account to a role',
    `$PI associations create --endpoint ${dev.server.apiUrl} --cluster-name ${DEV_CLUSTER} --namespace default --service-account demo --role-arn arn:aws:iam::111122223333:role/demo --access-key-id ${admin.accessKeyId} --secret-access-key ${admin.secretAccessKey}`,
    '# 2. a pod-bound token for that service account (what the kubelet projects into a pod)',
    tokenStep,
    '# 3. the environment the webhook gives a pod; no profile of yours takes precedence',
    `export AWS_CONTAINER_CREDENTIALS_FULL_URI=${dev.credentialsUrl}`,
    `export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=${tokenFile}`,
    `export AWS_REGION=${region} AWS_DEFAULT_REGION=${region} AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null`,
    'unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE',
    '# 4. any AWS SDK or the AWS CLI now gets the role',
    `aws sts get-caller-identity --endpoint-url ${dev.server.apiUrl}`,
    '',
  ].join('\n');
}

/** `dev token`: mints (dev signer) or requests (real cluster, TokenRequest) a pod-bound token and writes it. */
export async function writeDevToken(
  stateDir: string,
  subject: { namespace: string; serviceAccount: string; pod?: string; expirationSeconds: number },
  requestFromCluster: (kubeconfig: string) => Promise<string>,
): Promise<string> {
  const dir = resolve(stateDir);
  const state = readDevState(dir);
  // Without dev's state the token would be signed by a new key the running server does not know.
  if (!state) throw new Error(`${dir} holds no dev state: start \`pod-identity dev --state-dir ${dir}\` first, or pass the --state-dir that dev printed`);
  let token: string;
  if (state.kubeconfig) {
    if (!subject.pod) throw new Error('dev runs against a cluster: name a running pod of that service account with --pod');
    token = await requestFromCluster(state.kubeconfig);
  } else {
    const signer = await openDevSigner(dir);
    token = await signer.mint({ namespace: subject.namespace, serviceAccount: subject.serviceAccount, podName: subject.pod, expirationSeconds: subject.expirationSeconds });
  }
  mkdirSync(join(dir, 'tokens'), { recursive: true });
  const file = join(dir, 'tokens', `${subject.namespace}.${subject.serviceAccount}.token`);
  // No trailing newline: the SDKs refuse a token file containing \r or \n.
  writeFileSync(file, token, { mode: 0o600 });
  return file;
}
