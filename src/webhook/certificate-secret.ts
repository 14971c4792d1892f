// The webhook's generated CA and serving certificate kept in a Kubernetes
// Secret, so that every replica and every restart serves the same ones and
// the chart renders the same objects each time (no CA made by `helm
// template`). The Secret is the truth; the data directory holds a copy for
// the listeners (the API listener serves it too). Each check:
//   1. copies the Secret into the directory (an empty Secret empties it, so
//      emptying the Secret is how an operator forces a new CA);
//   2. loads or makes the CA and serving certificate there (ensureGeneratedCertificates);
//   3. writes back what changed, with the Secret's resourceVersion: when two
//      replicas race, one write fails with 409 and that replica adopts the other's;
//   4. publishes the CA in the ConfigMap the agents mount, and as the caBundle
//      of the MutatingWebhookConfiguration that calls this webhook.
// Only get and update on those three named objects are needed.
import { AdmissionregistrationV1Api, CoreV1Api, type V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import { describeKubeError, refusedStatus, type KubeApi } from '../kube/connect.js';
import { ensureGeneratedCertificates, readGeneratedFiles, writeGeneratedFiles, type EnsureResult, type GeneratedFiles } from './certs.js';
import { withCaBundle } from './registration.js';

/** Where the certificate and its CA live in the cluster (the chart makes all three objects). */
export interface CertificateSecretTarget {
  namespace: string;
  /** Secret holding ca.crt, ca.key, tls.crt, tls.key (empty at first) */
  secretName: string;
  /** ConfigMap whose ca.crt the agents trust the API listener with */
  caConfigMap: string;
  /** MutatingWebhookConfiguration whose caBundle is this CA */
  webhookConfiguration: string;
}

const KEYS = ['ca.crt', 'ca.key', 'tls.crt', 'tls.key'] as const;
/** a lost race is retried by reading again: a few times, not forever */
const MAX_ATTEMPTS = 3;

function decode(data: Record<string, string> | undefined): GeneratedFiles {
  const files: GeneratedFiles = {};
  for (const key of KEYS) {
    const value = data?.[key];
    if (value) files[key] = Buffer.from(value, 'base64').toString('utf8');
  }
  return files;
}

function encode(files: GeneratedFiles): Record<string, string> {
  const data: Record<string, string> = {};
  for (const key of KEYS) if (files[key] !== undefined) data[key] = Buffer.from(files[key]).toString('base64');
  return data;
}

function sameFiles(a: GeneratedFiles, b: GeneratedFiles): boolean {
  return KEYS.every((key) => a[key] === b[key]);
}

/** One check of the Secret, the data directory, the ConfigMap and the caBundle, as described above: answers what the listeners serve afterwards. */
export function certificateSecretSync(kube: KubeApi, target: CertificateSecretTarget, dataDir: string, hosts: readonly string[]): (now: number) => Promise<EnsureResult> {
  const core = kube.client(CoreV1Api, { timeoutMs: 5_000 });
  const admission = kube.client(AdmissionregistrationV1Api, { timeoutMs: 5_000 });
  const { namespace } = target;

  /** Read, change, write with the resourceVersion read (a compare-and-swap); a write that lost a race (409) reads again. */
  async function update<T>(what: string, read: () => Promise<T>, change: (current: T) => Promise<T | undefined>, write: (body: T) => Promise<unknown>): Promise<void> {
    const failed = (verb: string, error: unknown) => new Error(`cannot ${verb} ${what} (the webhook's certificate): ${describeKubeError(error)}`, { cause: error });
    for (let attempt = 1; ; attempt++) {
      const current = await read().catch((error: unknown) => {
        throw failed('read', error);
      });
      const body = await change(current);
      if (body === undefined) return;
      try {
        await write(body);
        return;
      } catch (error) {
        if (refusedStatus(error) !== 409 || attempt >= MAX_ATTEMPTS) throw failed('update', error);
      }
    }
  }

  return async function checkCertificateSecret(now) {
    let result: EnsureResult | undefined;
    const { secretName, caConfigMap, webhookConfiguration } = target;
    await update(
      `Secret ${namespace}/${secretName}`,
      () => core.readNamespacedSecret({ namespace, name: secretName }),
      async (secret) => {
        const held = decode(secret.data);
        if (!sameFiles(held, await readGeneratedFiles(dataDir))) await writeGeneratedFiles(dataDir, held);
        result = await ensureGeneratedCertificates(dataDir, hosts, now);
        const local = await readGeneratedFiles(dataDir);
        // a lost race: the next read brings the winner's certificate into the directory
        return sameFiles(held, local) ? undefined : { ...secret, data: { ...secret.data, ...encode(local) } };
      },
      (body) => core.replaceNamespacedSecret({ namespace, name: secretName, body }),
    );
    const caPem = result!.caCert;
    await update(
      `ConfigMap ${namespace}/${caConfigMap}`,
      () => core.readNamespacedConfigMap({ namespace, name: caConfigMap }),
      async (map) => (map.data?.['ca.crt'] === caPem ? undefined : { ...map, data: { ...map.data, 'ca.crt': caPem } }),
      (body) => core.replaceNamespacedConfigMap({ namespace, name: caConfigMap, body }),
    );
    await update(
      `MutatingWebhookConfiguration ${webhookConfiguration}`,
      () => admission.readMutatingWebhookConfiguration({ name: webhookConfiguration }),
      async (configuration: V1MutatingWebhookConfiguration) => withCaBundle(configuration, caPem),
      (body) => admission.replaceMutatingWebhookConfiguration({ name: webhookConfiguration, body }),
    );
    return result!;
  };
}
