// A real Kubernetes control plane for tests: etcd and kube-apiserver (built by
// scripts/install-k8s.sh) on free loopback ports, with a fresh CA and serving
// certificate, an RSA service-account signing key, OIDC discovery open to
// anonymous clients, a static admin token and a kubeconfig. No controller
// manager and no scheduler: pods stay Pending, ServiceAccounts are created
// explicitly (TokenRequest needs no token controller).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from '../helpers/server-process.js';
import { httpsJson } from './https.js';
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
  const teardown = async () => {
    // throwaway state: no graceful shutdown needed
    await Promise.all([apiserver?.stop(0), etcd?.stop(0)]);
    removeDir();
  };

  try {
    const [etcdClientPort, etcdPeerPort, securePort] = [await freePort(), await freePort(), await freePort()];
    const url = `https://127.0.0.1:${securePort}`;
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
    await waitUntil(apiserverProcess, 'kube-apiserver /readyz', options.readyTimeoutMs ?? 90_000, async () => {
      const res = await httpsJson(`${url}/readyz`, { ca: ca.certPem, token: adminToken, timeoutMs: 2_000 });
      return res.status === 200;
    });

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
  const post = async (path: string, body: unknown) => {
    const res = await httpsJson(`${kube.url}${path}`, { method: 'POST', ca: kube.caPem, token: kube.token, body });
    if (res.status !== 201 && res.status !== 409) throw new Error(`POST ${path}: ${res.status} ${res.text}`);
  };
  // OIDC discovery for anyone, as clusters that serve their issuer publicly do
  // (the default binding admits only service accounts).
  await post('/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'service-account-issuer-discovery-unauthenticated' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:service-account-issuer-discovery' },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:unauthenticated' }],
  });
  // the ServiceAccount admission plugin wants each pod's account to exist;
  // there is no controller to make `default`
  await post('/api/v1/namespaces/default/serviceaccounts', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } });
}
