// The MutatingWebhookConfiguration that registers the webhook, as a plain
// object, and its caBundle set to a CA (pure). Its choices are what keep pods safe: failurePolicy Ignore so
// a webhook outage never blocks a pod, CREATE only, and the skip label
// filtered by the API server before we are ever called.
import { LABEL_SKIP } from './mutate.js';

export type WebhookTarget =
  | { service: { namespace: string; name: string; port: number; path: string } }
  | { url: string };

export interface RegistrationOptions {
  name: string;
  webhookName: string;
  target: WebhookTarget;
  /** PEM certificates the API server trusts for the webhook */
  caBundlePem: string;
  timeoutSeconds: number;
}

/** A caBundle field: the base64 of the PEM, ending in one newline. */
function caBundleOf(pem: string): string {
  return Buffer.from(pem.trim() + '\n').toString('base64');
}

export function buildWebhookConfiguration(options: RegistrationOptions): Record<string, unknown> {
  const caBundle = caBundleOf(options.caBundlePem);
  const clientConfig = 'url' in options.target ? { url: options.target.url, caBundle } : { service: options.target.service, caBundle };
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: options.name, labels: { 'app.kubernetes.io/name': 'pod-identity' } },
    webhooks: [
      {
        name: options.webhookName,
        admissionReviewVersions: ['v1'],
        clientConfig,
        failurePolicy: 'Ignore',
        sideEffects: 'None',
        reinvocationPolicy: 'IfNeeded',
        matchPolicy: 'Equivalent',
        timeoutSeconds: options.timeoutSeconds,
        objectSelector: { matchExpressions: [{ key: LABEL_SKIP, operator: 'DoesNotExist' }] },
        rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
      },
    ],
  };
}

interface WithWebhooks {
  webhooks?: { clientConfig: { caBundle?: string } }[];
}

/** The configuration with every webhook's caBundle set to this CA (base64 of the PEM, as the API server wants it), or undefined when each already is. */
export function withCaBundle<T extends WithWebhooks>(configuration: T, caPem: string): T | undefined {
  const caBundle = caBundleOf(caPem);
  const webhooks = configuration.webhooks ?? [];
  if (webhooks.every((w) => w.clientConfig.caBundle === caBundle)) return undefined;
  return { ...configuration, webhooks: webhooks.map((w) => ({ ...w, clientConfig: { ...w.clientConfig, caBundle } })) };
}
