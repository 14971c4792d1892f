// A real Kubernetes control plane for tests: etcd and kube-apiserver (built by
// scripts/install-k8s.sh) on free loopback ports, with a fresh CA and serving
// certificate, an RSA service-account signing key, OIDC discovery open to
// anonymous clients, a static admin token and a kubeconfig. No controller
// manager and no scheduler: pods stay Pending, ServiceAccounts are created
// explicitly (TokenRequest needs no token controller). The tests' own calls
// go through @kubernetes/client-node (kubeApiClient).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiException,
  CoreV1Api,
  createConfiguration,
  Health,
  KubeConfig,
  RbacAuthorizationV1Api,
  ServerConfiguration,
  type Configuration,
  type RequestContext,
} from '@kubernetes/client-node';
import { Agent } from 'undici';
import { stringify } from 'yaml';
import { freePort } from '../helpers/server-process.js';
import { INSTALL_K8S, kubeBinDir } from './paths.js';
import { registerTempDir, spawnPeer, waitUntil, type PeerProcess } from './processes.js';
import { createCertificateAuthority, issueCertificate } from './tls.js';

/** What the API helpers (kube-api.ts) need to reach an API server. */
export interface KubeConnection {
  url: string;
  caPem: string;
  token: string;
  /** a kubeconfig file for kubectl and helm, when there is one */
  kubeconfigPath?: string;
}

export interface KubeControlPlane extends KubeConnection {
  kubeconfigPath: string;
  /** bearer token of a system:masters user (also `token`) */
  adminToken: string;
  /** --service-account-issuer: the API server's own URL, so OIDC discovery works */
  issuer: string;
  /** --service-account-jwks-uri */
  jwksUri: string;
  /** PEM of the service-account signing key's public half */
  serviceAccountPublicKeyPem: string;
  /** the CA's files (sign more certificates with tls.ts issueCertificate) */
  caCertPath: string;
  caKeyPath: string;
  /** temp dir holding certs, keys, etcd data and the kubeconfig; removed by stop() */
  dir: string;
  etcd: PeerProcess;
  apiserver: PeerProcess;
  /** milliseconds from start to /readyz */
  startMs: number;
  stop(): Promise<void>;
}

export interface KubeControlPlaneOptions {
  /** extra kube-apiserver flags (`--flag=value`), appended last so they win */
  apiserverArgs?: string[];
  /** --api-audiences besides the issuer; default ['pods.eks.amazonaws.com'] */
  audiences?: string[];
  readyTimeoutMs?: number;
}

export const EKS_AUDIENCE = 'pods.eks.amazonaws.com';

export function kubeBinary(name: 'etcd' | 'kube-apiserver' | 'kubectl' | 'helm'): string {
  return join(kubeBinDir(), name);
}

/** Why the control plane cannot start here, or undefined when it can. */
export function kubeMissingReason(): string | undefined {
  const missing = (['etcd', 'kube-apiserver', 'kubectl'] as const).filter((name) => !existsSync(kubeBinary(name)));
  if (missing.length > 0) return `${missing.join(', ')} not found in ${kubeBinDir()}; run ${INSTALL_K8S}`;
  return undefined;
}

export function helmMissingReason(): string | undefined {
  return existsSync(kubeBinary('helm')) ? undefined : `helm not found in ${kubeBinDir()}; run ${INSTALL_K8S}`;
}

/** The connection as a client-node KubeConfig (its own request path: a new connection per request). */
function kubeConfigOf(kube: KubeConnection): KubeConfig {
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: [{ name: 'test', server: kube.url, caData: Buffer.from(kube.caPem).toString('base64'), skipTLSVerify: false }],
    users: [{ name: 'admin', token: kube.token }],
    contexts: [{ name: 'test', cluster: 'test', user: 'admin' }],
    currentContext: 'test',
  });
  return config;
}

/** One kept-alive pool per API server for the tests' clients, closed with the control plane. */
const pools = new Map<string, Agent>();

/**
 * A typed client-node API client (CoreV1Api, …) for the tests' own calls:
 * client-node's own HTTP library, with the cluster's CA and bearer token, over
 * one kept-alive pool (client-node's KubeConfig would open a connection per
 * request, which a benchmark minting thousands of tokens cannot afford).
 */
export function kubeApiClient<T>(kube: KubeConnection, type: new (configuration: Configuration) => T): T {
  let pool = pools.get(kube.url);
  if (!pool) pools.set(kube.url, (pool = new Agent({ connect: { ca: kube.caPem }, connections: 32 })));
  const dispatcher = pool;
  const auth = {
    getName: () => 'test bearer token',
    applySecurityAuthentication(context: RequestContext) {
      context.setHeaderParam('Authorization', `Bearer ${kube.token}`);
      context.setDispatcher(dispatcher);
    },
  };
  return new type(createConfiguration({ baseServer: new ServerConfiguration(kube.url, {}), authMethods: { default: auth } }));
}

export interface ExecKubeconfigOptions {
  /** what the plugin prints on stderr before it exits 1; unset: it prints an ExecCredential with the admin token */
  failWith?: string;
}

export interface ExecKubeconfig {
  path: string;
  /** the plugin's path */
  command: string;
  /** a file the plugin appends a line to on each run */
  runLog: string;
}

/**
 * A kubeconfig whose user is an `exec` credential plugin (a shell script in
 * the control plane's temp dir) that prints a client.authentication.k8s.io/v1
 * ExecCredential with the static admin token, as cloud CLIs do
 * (`aws eks get-token`, `gke-gcloud-auth-plugin`), or fails.
 */
export function writeExecKubeconfig(kube: KubeControlPlane, name: string, options: ExecKubeconfigOptions = {}): ExecKubeconfig {
  const command = join(kube.dir, `${name}-credential-plugin.sh`);
  const runLog = `${command}.runs`;
  const credential = JSON.stringify({
    apiVersion: 'client.authentication.k8s.io/v1',
    kind: 'ExecCredential',
    status: { token: kube.adminToken, expirationTimestamp: new Date(Date.now() + 3_600_000).toISOString() },
  });
  const body = options.failWith !== undefined ? `echo ${JSON.stringify(options.failWith)} >&2\nexit 1` : `cat <<'CREDENTIAL'\n${credential}\nCREDENTIAL`;
  writeFileSync(command, `#!/bin/sh\necho run >> ${runLog}\n${body}\n`);
  chmodSync(command, 0o755);
  const path = join(kube.dir, `${name}.kubeconfig`);
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server: kube.url, 'certificate-authority-data': Buffer.from(kube.caPem).toString('base64') } }],
      users: [{ name: 'exec', user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command, interactiveMode: 'Never' } } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'exec' } }],
      'current-context': 'test',
    }),
    { mode: 0o600 },
  );
  return { path, command, runLog };
}

export async function startKubeControlPlane(options: KubeControlPlaneOptions = {}): Promise<KubeControlPlane> {
  const missing = kubeMissingReason();
  if (missing) throw new Error(missing);
  // a free port can be taken by someone else between probing and binding it
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (error) {
      if (attempt >= 3 || !/address already in use/.test((error as Error).message)) throw error;
    }
  }
}

async function startOnce(options: KubeControlPlaneOptions): Promise<KubeControlPlane> {
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'pod-identity-kube-'));
  const removeDir = registerTempDir(dir);
  let etcd: PeerProcess | undefined;
  let apiserver: PeerProcess | undefined;
  let url: string | undefined;
  const teardown = async () => {
    const pool = url === undefined ? undefined : pools.get(url);
    if (url !== undefined) pools.delete(url);
    // throwaway state: no graceful shutdown needed
    await Promise.all([apiserver?.stop(0), etcd?.stop(0), pool?.destroy()]);
    removeDir();
  };

  try {
    const [etcdClientPort, etcdPeerPort, securePort] = [await freePort(), await freePort(), await freePort()];
    url = `https://127.0.0.1:${securePort}`;
    const issuer = url;
    const jwksUri = `${url}/openid/v1/jwks`;

    const ca = await createCertificateAuthority(dir, 'kube');
    const serving = await issueCertificate(ca, {
      name: 'apiserver',
      commonName: 'kube-apiserver',
      ips: ['127.0.0.1'],
      dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'],
    });
    const saKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const saPrivateKeyPath = join(dir, 'sa.key');
    const saPublicKeyPath = join(dir, 'sa.pub');
    const serviceAccountPublicKeyPem = saKeys.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    writeFileSync(saPrivateKeyPath, saKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(saPublicKeyPath, serviceAccountPublicKeyPem);
    const adminToken = randomBytes(24).toString('hex');
    const tokenFile = join(dir, 'tokens.csv');
    writeFileSync(tokenFile, `${adminToken},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });

    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const etcdPeerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    const etcdDir = join(dir, 'etcd');
    mkdirSync(etcdDir, { mode: 0o700 });
    etcd = spawnPeer('etcd', kubeBinary('etcd'), [
      '--name=test',
      `--data-dir=${etcdDir}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${etcdPeerUrl}`,
      `--initial-advertise-peer-urls=${etcdPeerUrl}`,
      `--initial-cluster=test=${etcdPeerUrl}`,
      '--initial-cluster-state=new',
      // throwaway data: durability only costs time
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    const etcdProcess = etcd;
    await waitUntil(etcdProcess, 'etcd /health', 30_000, async () => {
      const res = await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(1_000) });
      const body = (await res.json()) as { health?: string };
      return res.ok && body.health === 'true';
    });

    const audiences = [issuer, ...(options.audiences ?? [EKS_AUDIENCE])];
    apiserver = spawnPeer('kube-apiserver', kubeBinary('kube-apiserver'), [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${securePort}`,
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${serving.certPath}`,
      `--tls-private-key-file=${serving.keyPath}`,
      `--client-ca-file=${ca.certPath}`,
      `--token-auth-file=${tokenFile}`,
      '--anonymous-auth=true',
      '--authorization-mode=RBAC',
      `--service-account-issuer=${issuer}`,
      `--service-account-jwks-uri=${jwksUri}`,
      `--service-account-key-file=${saPublicKeyPath}`,
      `--service-account-signing-key-file=${saPrivateKeyPath}`,
      `--api-audiences=${audiences.join(',')}`,
      '--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,MutatingAdmissionWebhook,ValidatingAdmissionWebhook',
      '--service-cluster-ip-range=10.96.0.0/16',
      '--endpoint-reconciler-type=none',
      '--allow-privileged=true',
      '--profiling=false',
      '--enable-priority-and-fairness=false',
      ...(options.apiserverArgs ?? []),
    ]);
    const apiserverProcess = apiserver;
    const health = new Health(kubeConfigOf({ url, caPem: ca.certPem, token: adminToken }));
    await waitUntil(apiserverProcess, 'kube-apiserver /readyz', options.readyTimeoutMs ?? 90_000, () => health.readyz({ signal: AbortSignal.timeout(2_000) }));

    const kubeconfigPath = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfigPath,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'test', cluster: { server: url, 'certificate-authority-data': Buffer.from(ca.certPem).toString('base64') } }],
        users: [{ name: 'admin', user: { token: adminToken } }],
        contexts: [{ name: 'test', context: { cluster: 'test', user: 'admin', namespace: 'default' } }],
        'current-context': 'test',
      }),
      { mode: 0o600 },
    );

    const connection: KubeConnection = { url, caPem: ca.certPem, token: adminToken };
    await setUpCluster(connection);

    return {
      ...connection,
      kubeconfigPath,
      adminToken,
      issuer,
      jwksUri,
      serviceAccountPublicKeyPem,
      caCertPath: ca.certPath,
      caKeyPath: ca.keyPath,
      dir,
      etcd: etcdProcess,
      apiserver: apiserverProcess,
      startMs: Date.now() - started,
      stop: teardown,
    };
  } catch (error) {
    await teardown();
    throw error;
  }
}

/** What a cluster made by an installer has and a bare API server lacks. */
async function setUpCluster(kube: KubeConnection): Promise<void> {
  const alreadyThere = (error: unknown) => {
    if (!(error instanceof ApiException && error.code === 409)) throw error;
  };
  // OIDC discovery for anyone, as clusters that serve their issuer publicly do
  // (the default binding admits only service accounts).
  await kubeApiClient(kube, RbacAuthorizationV1Api)
    .createClusterRoleBinding({
      body: {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'service-account-issuer-discovery-unauthenticated' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:service-account-issuer-discovery' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:unauthenticated' }],
      },
    })
    .catch(alreadyThere);
  // the ServiceAccount admission plugin wants each pod's account to exist;
  // there is no controller to make `default`
  await kubeApiClient(kube, CoreV1Api)
    .createNamespacedServiceAccount({ namespace: 'default', body: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } } })
    .catch(alreadyThere);
}
