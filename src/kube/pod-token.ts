// A service-account token bound to a pod, as the kubelet requests one for a
// projected volume (TokenRequest with a boundObjectRef): what
// `pod-identity dev token --pod` writes for a real cluster.
import { CoreV1Api } from '@kubernetes/client-node';
import { describeKubeError, type KubeApi } from './connect.js';

export interface PodTokenRequest {
  namespace: string;
  serviceAccount: string;
  podName: string;
  audience: string;
  expirationSeconds: number;
}

export async function requestPodBoundToken(kube: KubeApi, request: PodTokenRequest): Promise<string> {
  const core = kube.client(CoreV1Api, { timeoutMs: 10_000 });
  const { namespace, serviceAccount, podName } = request;
  let uid: string | undefined;
  try {
    uid = (await core.readNamespacedPod({ namespace, name: podName })).metadata?.uid;
  } catch (error) {
    throw new Error(`pod ${namespace}/${podName}: ${describeKubeError(error)}`, { cause: error });
  }
  let token: string | undefined;
  try {
    const answer = await core.createNamespacedServiceAccountToken({
      namespace,
      name: serviceAccount,
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: { audiences: [request.audience], expirationSeconds: request.expirationSeconds, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: podName, uid } },
      },
    });
    token = answer.status?.token;
  } catch (error) {
    throw new Error(`TokenRequest for ${namespace}/${serviceAccount}: ${describeKubeError(error)}`, { cause: error });
  }
  if (!token) throw new Error(`TokenRequest for ${namespace}/${serviceAccount}: the API server answered no token`);
  return token;
}
