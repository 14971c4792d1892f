// pod_identity_certificate_expiry_timestamp_seconds: when each certificate a
// listener serves expires (notAfter), and its CA when the server made it.
// One gauge per registry, fed by every TLS source registered on it (the
// webhook's, the API's); with API workers each serves the API's, and the
// aggregate keeps the earliest.
import { X509Certificate } from 'node:crypto';
import { Gauge, type Registry } from 'prom-client';
import type { TlsSource } from '../webhook/certs.js';

const sourcesByRegistry = new WeakMap<Registry, Map<string, TlsSource>>();

/** The first certificate of a PEM bundle's notAfter, in epoch seconds; remembered for the last PEM text. */
function expiryReader(): (pem: string) => number {
  let last: { pem: string; seconds: number } | undefined;
  return (pem) => {
    if (last?.pem !== pem) last = { pem, seconds: Date.parse(new X509Certificate(pem).validTo) / 1000 };
    return last.seconds;
  };
}

/** Reports `name`'s serving certificate (and `name`-ca, when the source made its CA) at every scrape. */
export function watchCertificates(registry: Registry, name: 'webhook' | 'api', tls: TlsSource): void {
  let sources = sourcesByRegistry.get(registry);
  if (!sources) {
    const all = (sources = new Map());
    sourcesByRegistry.set(registry, all);
    const readers = new Map<string, (pem: string) => number>();
    const expiry = (label: string, pem: string) => {
      let read = readers.get(label);
      if (!read) readers.set(label, (read = expiryReader()));
      return read(pem);
    };
    new Gauge({
      name: 'pod_identity_certificate_expiry_timestamp_seconds',
      help: 'When a certificate the server serves expires (notAfter, epoch seconds): the webhook and API serving certificates, and their CA when the server generated it',
      labelNames: ['certificate'],
      aggregator: 'min',
      registers: [registry],
      collect() {
        for (const [label, source] of all) {
          this.set({ certificate: label }, expiry(label, source.current().cert));
          if (source.caCert) this.set({ certificate: `${label}-ca` }, expiry(`${label}-ca`, source.caCert));
        }
      },
    });
  }
  sources.set(name, tls);
}
