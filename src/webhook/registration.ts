// The MutatingWebhookConfiguration that registers the webhook, as a plain
// object (pure). Its choices are what keep pods safe: failurePolicy Ignore so
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

export function buildWebhookConfiguration(options: RegistrationOptions): Record<string, unknown> {
  const caBundle = Buffer.from(options.caBundlePem.trim() + '\n').toString('base64');
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
