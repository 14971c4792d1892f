// Kubernetes API calls the tests make, with @kubernetes/client-node's typed
// clients (kube.ts kubeApiClient: the cluster's CA and a bearer token). A
// refused call throws client-node's ApiException (its `code` is the HTTP
// status).
import { execFile } from 'node:child_process';
import {
  AdmissionregistrationV1Api,
  ApiException,
  AuthenticationV1Api,
  CoreV1Api,
  type V1MutatingWebhookConfiguration,
  type V1Namespace,
  type V1Node,
  type V1ObjectMeta,
  type V1Pod,
  type V1PodSpec,
  type V1ServiceAccount,
  type V1TokenReviewStatus,
} from '@kubernetes/client-node';
import { eventually } from '../helpers/eventually.js';
import { EKS_AUDIENCE, kubeApiClient, kubeBinary, type KubeConnection } from './kube.js';

const core = (kube: KubeConnection) => kubeApiClient(kube, CoreV1Api);

/**
 * A pod as plain JSON data, as the API server sent it (client-node answers
 * instances of its model classes, with Dates), so that tests compare parts of
 * it with object literals; its timestamps are RFC 3339 strings.
 */
function plain(pod: V1Pod): V1Pod {
  return JSON.parse(JSON.stringify(pod)) as V1Pod;
}

/**
 * Creates a namespace and its `default` service account: a bare API server has
 * no controller that makes it; on a real node the controller manager may get
 * there first (409).
 */
export async function createNamespace(kube: KubeConnection, name: string, labels: Record<string, string> = {}): Promise<V1Namespace> {
  const namespace = await core(kube).createNamespace({ body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } } });
  await createServiceAccount(kube, name, 'default').catch((error: unknown) => {
    if ((error as { code?: number }).code !== 409) throw error;
  });
  return namespace;
}

export async function createServiceAccount(
  kube: KubeConnection,
  namespace: string,
  name: string,
  metadata: Pick<V1ObjectMeta, 'labels' | 'annotations'> = {},
): Promise<V1ServiceAccount> {
  return core(kube).createNamespacedServiceAccount({ namespace, body: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { ...metadata, name, namespace } } });
}

/** A Node object (no kubelet behind it): pods bound to it get node claims in their tokens. */
export async function createNode(kube: KubeConnection, name: string): Promise<V1Node> {
  return core(kube).createNode({ body: { apiVersion: 'v1', kind: 'Node', metadata: { name } } });
}

export interface CreatePodOptions {
  namespace: string;
  name: string;
  serviceAccountName?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** merged over a one-container spec (image `registry.invalid/test:1`, never pulled here) */
  spec?: Partial<V1PodSpec>;
  /** ?dryRun=All: admission runs (webhooks included), nothing is stored */
  dryRun?: boolean;
}

/** Creates a pod and answers the object as stored, after every admission plugin and webhook. */
export async function createPod(kube: KubeConnection, options: CreatePodOptions): Promise<V1Pod> {
  const spec: V1PodSpec = {
    containers: [{ name: 'app', image: 'registry.invalid/test:1' }],
    ...(options.serviceAccountName !== undefined && { serviceAccountName: options.serviceAccountName }),
    ...options.spec,
  };
  const stored = await core(kube).createNamespacedPod({
    namespace: options.namespace,
    body: { apiVersion: 'v1', kind: 'Pod', metadata: { name: options.name, namespace: options.namespace, labels: options.labels, annotations: options.annotations }, spec },
    ...(options.dryRun && { dryRun: 'All' }),
  });
  return plain(stored);
}

export async function getPod(kube: KubeConnection, namespace: string, name: string): Promise<V1Pod> {
  return plain(await core(kube).readNamespacedPod({ namespace, name }));
}

/** Deletes a pod at once (grace period 0) and waits until it is gone. */
export async function deletePod(kube: KubeConnection, namespace: string, name: string, timeoutMs = 10_000): Promise<void> {
  await core(kube).deleteNamespacedPod({ namespace, name, gracePeriodSeconds: 0 });
  await eventually(
    `pod ${namespace}/${name} gone after deletion`,
    () =>
      getPod(kube, namespace, name).then(
        () => false,
        (error: unknown) => {
          if (error instanceof ApiException && error.code === 404) return true;
          throw error;
        },
      ),
    { timeoutMs, intervalMs: 50 },
  );
}

export interface PodTokenRequest {
  namespace: string;
  serviceAccount: string;
  podName: string;
  podUid: string;
  audience?: string;
  expirationSeconds?: number;
}

export interface PodToken {
  token: string;
  expirationTimestamp: Date;
}

/**
 * TokenRequest bound to a pod, as the kubelet makes for a projected
 * service-account token volume (audience pods.eks.amazonaws.com and 86400 s
 * unless told otherwise, as in the EKS webhook's volume).
 */
export async function requestPodToken(kube: KubeConnection, request: PodTokenRequest): Promise<PodToken> {
  const answer = await core(kube).createNamespacedServiceAccountToken({
    namespace: request.namespace,
    name: request.serviceAccount,
    body: {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {
        audiences: [request.audience ?? EKS_AUDIENCE],
        expirationSeconds: request.expirationSeconds ?? 86400,
        boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: request.podName, uid: request.podUid },
      },
    },
  });
  if (!answer.status?.token || !answer.status.expirationTimestamp) throw new Error('TokenRequest answered no token');
  return { token: answer.status.token, expirationTimestamp: answer.status.expirationTimestamp };
}

/** TokenReview of `token` for `audiences` (the API server's own audiences when omitted). */
export async function tokenReview(kube: KubeConnection, token: string, audiences?: string[]): Promise<V1TokenReviewStatus> {
  const answer = await kubeApiClient(kube, AuthenticationV1Api).createTokenReview({
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, ...(audiences && { audiences }) } },
  });
  return answer.status ?? {};
}

export async function createMutatingWebhookConfiguration(
  kube: KubeConnection,
  configuration: V1MutatingWebhookConfiguration,
): Promise<V1MutatingWebhookConfiguration> {
  return kubeApiClient(kube, AdmissionregistrationV1Api).createMutatingWebhookConfiguration({
    body: { ...configuration, apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration' },
  });
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a CLI (kubectl, helm) against the cluster's kubeconfig; throws on a non-zero exit. */
export function runKubeTool(
  tool: 'kubectl' | 'helm',
  kube: KubeConnection,
  args: string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<CommandResult> {
  if (!kube.kubeconfigPath) throw new Error(`${tool} needs a kubeconfig`);
  const env = { ...process.env, KUBECONFIG: kube.kubeconfigPath, HOME: process.env.HOME ?? '/tmp' };
  return new Promise((resolve, reject) => {
    const child = execFile(kubeBinary(tool), args, { env, timeout: options.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      if (error) reject(new Error(`${tool} ${args.join(' ')} failed (${error.code ?? error.signal}): ${stderr || error.message}`, { cause: error }));
      else resolve({ code, stdout, stderr });
    });
    child.stdin?.end(options.input ?? '');
  });
}

/** `kubectl apply -f -` with `yaml` as input. */
export async function applyYaml(kube: KubeConnection, yaml: string): Promise<string> {
  return (await runKubeTool('kubectl', kube, ['apply', '--server-side', '--force-conflicts', '-f', '-'], { input: yaml })).stdout;
}
