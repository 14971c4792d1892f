// `pod-identity webhook-config`: prints the MutatingWebhookConfiguration that
// registers the server's admission webhook with a cluster (`| kubectl apply -f -`).
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { parseListen } from '../lib/http.js';
import { ConfigError, loadServerConfig } from '../config/load.js';
import { certificateCovers, ensureGeneratedCertificates, servingHosts } from '../webhook/certs.js';
import { buildWebhookConfiguration, type WebhookTarget } from '../webhook/registration.js';
import { CliError } from './fail.js';
import { defaultNote, existingFile, integer, withExamples } from './options.js';

interface Flags {
  config?: string;
  caFile?: string;
  service?: string;
  servicePort: number;
  url?: string;
  path: string;
  name: string;
  webhookName: string;
  timeoutSeconds?: number;
}

function parseTarget(flags: Flags): WebhookTarget {
  if (flags.url && flags.service) throw new Error('give --service or --url, not both');
  if (flags.url) {
    const url = new URL(flags.url);
    if (url.protocol !== 'https:') throw new Error('--url must be https:// (the API server only calls webhooks over TLS)');
    if (url.pathname === '/' || url.pathname === '') url.pathname = flags.path;
    return { url: url.toString() };
  }
  if (flags.service) {
    const [namespace, name, extra] = flags.service.split('/');
    if (!namespace || !name || extra !== undefined) throw new Error('--service expects <namespace>/<name>');
    return { service: { namespace, name, port: flags.servicePort, path: flags.path } };
  }
  throw new Error('give --service <namespace>/<name> (in-cluster) or --url https://host:port (outside the cluster)');
}

function targetHost(target: WebhookTarget): string {
  if ('url' in target) return new URL(target.url).hostname.replace(/^\[|\]$/g, '');
  return `${target.service.name}.${target.service.namespace}.svc`;
}

export function registerWebhookConfigCommand(program: Command): void {
  withExamples(
    program
      .command('webhook-config')
      .description('print the MutatingWebhookConfiguration for the server’s admission webhook (pipe it to kubectl apply -f -)')
      .option('--config <file>', 'the server’s YAML configuration (for dataDir, webhook certificates and timeoutSeconds)')
      .option('--service <namespace/name>', 'the Kubernetes Service in front of the server’s webhook listener')
      .option('--service-port <port>', 'port of that Service', integer(1, 65535), 443)
      .option('--url <https-url>', 'call the webhook at this URL instead of a Service (server outside the cluster)')
      .option('--path <path>', 'request path of the webhook', '/mutate')
      .option('--ca-file <file>', `PEM bundle the API server trusts for the webhook ${defaultNote('the CA generated in dataDir, or webhook.certFile')}`, existingFile)
      .option('--name <name>', 'name of the MutatingWebhookConfiguration object', 'pod-identity-webhook')
      .option('--webhook-name <name>', 'name of the webhook inside it (a DNS name with three or more labels)', 'pod-identity-webhook.podidentity.dev')
      .option('--timeout-seconds <n>', `how long the API server waits for the webhook, 1-30 ${defaultNote('webhook.timeoutSeconds, 10')}`, integer(1, 30))
      .addHelpText(
        'after',
        '\nThe configuration uses failurePolicy Ignore (a webhook outage never blocks pods), sideEffects None,\n' +
          'reinvocationPolicy IfNeeded, CREATE on pods, admissionReviewVersions [v1], and an objectSelector that\n' +
          'leaves out pods labelled eks.amazonaws.com/skip-pod-identity-webhook.\n' +
          'With a generated certificate, list the Service name (<name>.<namespace>.svc) in webhook.certHosts.',
      ),
    'pod-identity webhook-config --config config.yaml --service pod-identity/pod-identity-server | kubectl apply -f -',
    'pod-identity webhook-config --config config.yaml --url https://10.0.0.5:9443 --ca-file ca.pem > webhook.yaml',
  )
    .action(async (flags: Flags) => {
      let config;
      try {
        config = loadServerConfig({ file: flags.config, env: process.env });
      } catch (error) {
        if (error instanceof ConfigError) throw new CliError(error.message, 2);
        throw error;
      }
      if (config.webhook.certificateSecret && !flags.caFile) {
        const kept = config.webhook.certificateSecret;
        throw new CliError(`webhook.certificateSecret is set: the server writes the caBundle of ${kept.webhookConfiguration} itself (its CA is in ConfigMap ${kept.namespace}/${kept.caConfigMap}); pass --ca-file to print a configuration anyway`, 2);
      }
      const target = parseTarget(flags);
      const timeoutSeconds = flags.timeoutSeconds ?? config.webhook.timeoutSeconds;

      let caBundle: string;
      let servingCert: string | undefined;
      if (flags.caFile) {
        caBundle = readFileSync(flags.caFile, 'utf8');
      } else if (config.webhook.certFile) {
        // The operator's own certificate: trust it directly (right when self-signed; otherwise pass --ca-file).
        caBundle = readFileSync(config.webhook.certFile, 'utf8');
        console.error('pod-identity webhook-config: caBundle is webhook.certFile; if it was issued by a CA, pass that CA with --ca-file');
      } else {
        // Same CA the server uses (made now if the server has not run yet).
        const generated = await ensureGeneratedCertificates(config.dataDir, servingHosts(parseListen(config.webhookListen).host, config.webhook.certHosts));
        caBundle = generated.caCert;
        servingCert = generated.cert;
      }
      const host = targetHost(target);
      if (servingCert && !certificateCovers(new X509Certificate(servingCert), host)) {
        console.error(`pod-identity webhook-config: warning: the generated serving certificate does not cover "${host}"; add it to webhook.certHosts and restart the server`);
      }
      const document = buildWebhookConfiguration({ name: flags.name, webhookName: flags.webhookName, target, caBundlePem: caBundle, timeoutSeconds });
      process.stdout.write(stringify(document));
    });
}
