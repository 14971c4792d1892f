// One connection per kubeconfig in the server's primary process, shared by
// what reaches the same cluster there (the webhook's ServiceAccount reads,
// the CRD reconciler and its Lease, the readiness probe): one keep-alive
// pool and one credential lookup (an exec plugin runs once, not once per
// part). Closed once, when the server stops.
import { connectKube, type KubeApi } from '../../kube/connect.js';

export interface KubeConnections {
  /** the connection for this kubeconfig (a file, or in-cluster), made on first use */
  get(kubeconfig: string): KubeApi;
  close(): Promise<void>;
}

export function kubeConnections(): KubeConnections {
  const byKubeconfig = new Map<string, KubeApi>();
  return {
    get(kubeconfig) {
      let kube = byKubeconfig.get(kubeconfig);
      if (!kube) byKubeconfig.set(kubeconfig, (kube = connectKube(kubeconfig)));
      return kube;
    },
    async close() {
      const all = [...byKubeconfig.values()];
      byKubeconfig.clear();
      await Promise.all(all.map((kube) => kube.close()));
    },
  };
}
