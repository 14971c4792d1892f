// Just enough kubeconfig to make authenticated requests to an API server:
// the current context's server, CA, client certificate or bearer token.
// (@kubernetes/client-node 2.x needs Node 22; this product runs on Node 20.)
// Exec and auth-provider plugins are not supported: use a certificate or token.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';

export interface KubeAccess {
  server: URL;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** read per request, so a rotated token file is picked up */
  token?: () => string;
  insecureSkipTlsVerify: boolean;
}

type Named<T> = { name: string } & T;
interface KubeconfigDocument {
  'current-context'?: string;
  contexts?: Named<{ context?: { cluster?: string; user?: string } }>[];
  clusters?: Named<{ cluster?: Record<string, unknown> }>[];
  users?: Named<{ user?: Record<string, unknown> }>[];
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** Where a pod finds its own service account's credentials. */
const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The API server as seen from inside a pod: KUBERNETES_SERVICE_HOST/PORT, the mounted token (re-read per request) and CA. */
function inClusterAccess(env: NodeJS.ProcessEnv = process.env): KubeAccess {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host) throw new Error('kubeconfig "in-cluster" needs KUBERNETES_SERVICE_HOST: it only works inside a pod');
  return {
    server: new URL(`https://${host.includes(':') ? `[${host}]` : host}:${port}`),
    ca: readFileSync(`${IN_CLUSTER_DIR}/ca.crt`),
    token: () => readFileSync(`${IN_CLUSTER_DIR}/token`, 'utf8').trim(),
    insecureSkipTlsVerify: false,
  };
}

/**
 * Loads the current context of a kubeconfig file (relative paths in it are
 * relative to the file), or the pod's own service account for "in-cluster".
 */
export function loadKubeAccess(path: string): KubeAccess {
  if (path === 'in-cluster') return inClusterAccess();
  const doc = parseYaml(readFileSync(path, 'utf8')) as KubeconfigDocument | null;
  if (!doc || typeof doc !== 'object') throw new Error(`${path}: not a kubeconfig`);
  const base = dirname(path);
  const file = (p: string) => readFileSync(isAbsolute(p) ? p : resolve(base, p));
  const contextName = doc['current-context'] ?? doc.contexts?.[0]?.name;
  const context = doc.contexts?.find((c) => c.name === contextName)?.context;
  const cluster = doc.clusters?.find((c) => c.name === context?.cluster)?.cluster ?? (doc.clusters?.length === 1 ? doc.clusters[0]!.cluster : undefined);
  const user = doc.users?.find((u) => u.name === context?.user)?.user ?? (doc.users?.length === 1 ? doc.users[0]!.user : undefined);
  const server = str(cluster?.server);
  if (!server) throw new Error(`${path}: the current context has no cluster server`);
  if (user && (user.exec || user['auth-provider'])) throw new Error(`${path}: exec and auth-provider users are not supported; use a client certificate or token`);

  const fromData = (data: string | undefined, pathValue: string | undefined) =>
    data ? Buffer.from(data, 'base64') : pathValue ? file(pathValue) : undefined;
  const tokenText = str(user?.token);
  const tokenFile = str(user?.tokenFile);
  return {
    server: new URL(server),
    ca: fromData(str(cluster?.['certificate-authority-data']), str(cluster?.['certificate-authority'])),
    cert: fromData(str(user?.['client-certificate-data']), str(user?.['client-certificate'])),
    key: fromData(str(user?.['client-key-data']), str(user?.['client-key'])),
    token: tokenText ? () => tokenText : tokenFile ? () => file(tokenFile).toString('utf8').trim() : undefined,
    insecureSkipTlsVerify: cluster?.['insecure-skip-tls-verify'] === true,
  };
}
