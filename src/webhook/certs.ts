// The webhook's TLS material. The API server only calls webhooks over TLS, so
// there is always a certificate: either the operator's files (reloaded when
// they change on disk, e.g. a cert-manager Secret rotation), or a CA and a
// serving certificate generated once and kept in the data directory, so the
// caBundle printed by `webhook-config` stays valid across restarts.
// node:crypto cannot issue X.509 certificates; the `openssl` CLI does.
import { execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { Logger } from '../lib/logger.js';

export interface KeyPair {
  cert: string;
  key: string;
}

export interface GeneratedPaths {
  dir: string;
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
}

const DAY_MS = 86_400_000;
const CA_DAYS = 3650;
const SERVING_DAYS = 365;
/** regenerate before the API server starts refusing the certificate */
const RENEW_BEFORE_MS = 30 * DAY_MS;

export function generatedPaths(dataDir: string): GeneratedPaths {
  const dir = join(dataDir, 'webhook-tls');
  return { dir, caCert: join(dir, 'ca.crt'), caKey: join(dir, 'ca.key'), cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') };
}

/** Names a generated serving certificate always covers, plus the listener's own address and the configured extras. */
export function servingHosts(listenHost: string, extra: readonly string[]): string[] {
  const hosts = ['localhost', '127.0.0.1', '::1'];
  if (listenHost && listenHost !== '0.0.0.0' && listenHost !== '::') hosts.push(listenHost);
  hosts.push(...extra);
  return [...new Set(hosts.map((h) => h.replace(/^\[|\]$/g, '')))];
}

function validateHost(host: string): void {
  if (isIP(host)) return;
  if (!/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(host)) {
    throw new Error(`"${host}" is not a DNS name or IP address usable in a certificate`);
  }
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') {
      throw new Error(
        'the admission webhook needs a TLS certificate and the `openssl` command was not found to generate one: ' +
          'install openssl, or configure webhook.certFile and webhook.keyFile',
        { cause: error },
      );
    }
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.toString().trim() || e.message}`, { cause: error });
  }
}

function newKeyPem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

function usable(certPem: string, keyPem: string, now: number): X509Certificate | undefined {
  try {
    const cert = new X509Certificate(certPem);
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return undefined;
    if (Date.parse(cert.validTo) - now < RENEW_BEFORE_MS) return undefined;
    return cert;
  } catch {
    return undefined;
  }
}

export function certificateCovers(cert: X509Certificate, host: string): boolean {
  return isIP(host) ? cert.checkIP(host) !== undefined : cert.checkHost(host, { wildcards: true }) !== undefined;
}

function readIfExists(path: string): string | undefined {
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
}

function writePrivate(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

function issueCa(work: string, paths: GeneratedPaths): void {
  const key = newKeyPem();
  const keyFile = join(work, 'ca.key');
  writeFileSync(keyFile, key, { mode: 0o600 });
  const cnf = join(work, 'ca.cnf');
  writeFileSync(
    cnf,
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      'x509_extensions = ext',
      '[dn]',
      'CN = pod-identity webhook CA',
      '[ext]',
      'basicConstraints = critical,CA:TRUE',
      'keyUsage = critical,keyCertSign,cRLSign',
      'subjectKeyIdentifier = hash',
      '',
    ].join('\n'),
  );
  const out = join(work, 'ca.crt');
  openssl(['req', '-x509', '-new', '-key', keyFile, '-config', cnf, '-days', String(CA_DAYS), '-sha256', '-out', out]);
  writePrivate(paths.caKey, key);
  renameSync(out, paths.caCert);
}

function issueServing(work: string, paths: GeneratedPaths, hosts: string[]): void {
  const key = newKeyPem();
  const keyFile = join(work, 'tls.key');
  writeFileSync(keyFile, key, { mode: 0o600 });
  const alt = hosts.map((h, i) => (isIP(h) ? `IP.${i + 1} = ${h}` : `DNS.${i + 1} = ${h}`));
  const cnf = join(work, 'tls.cnf');
  writeFileSync(
    cnf,
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      '[dn]',
      `CN = ${hosts.find((h) => !isIP(h)) ?? 'pod-identity webhook'}`,
      '[ext]',
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage = serverAuth',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid',
      'subjectAltName = @alt',
      '[alt]',
      ...alt,
      '',
    ].join('\n'),
  );
  const csr = join(work, 'tls.csr');
  openssl(['req', '-new', '-key', keyFile, '-config', cnf, '-out', csr]);
  const out = join(work, 'tls.crt');
  const serial = `0x${randomBytes(16).toString('hex').replace(/^[89a-f]/, '1')}`;
  openssl(['x509', '-req', '-in', csr, '-CA', paths.caCert, '-CAkey', paths.caKey, '-set_serial', serial, '-days', String(SERVING_DAYS), '-sha256', '-extfile', cnf, '-extensions', 'ext', '-out', out]);
  // Key first, then certificate: a reader that sees the new certificate also sees its key.
  writePrivate(paths.key, key);
  renameSync(out, paths.cert);
}

export interface EnsureResult extends KeyPair {
  caCert: string;
  /** what was (re)made this time */
  issued: { ca: boolean; serving: boolean };
}

/**
 * Loads the generated CA and serving certificate from `dataDir`, making or
 * renewing whatever is missing, unusable, close to expiry, or (for the serving
 * certificate) not covering every host. The CA is kept whenever it is still
 * good, so the registered caBundle keeps working.
 */
export function ensureGeneratedCertificates(dataDir: string, hosts: readonly string[], now = Date.now()): EnsureResult {
  hosts.forEach(validateHost);
  const paths = generatedPaths(dataDir);
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  const issued = { ca: false, serving: false };
  const work = mkdtempSync(join(paths.dir, '.work-'));
  try {
    let caCertPem = readIfExists(paths.caCert);
    let caKeyPem = readIfExists(paths.caKey);
    let ca = caCertPem && caKeyPem ? usable(caCertPem, caKeyPem, now) : undefined;
    if (!ca) {
      issueCa(work, paths);
      issued.ca = true;
      caCertPem = readFileSync(paths.caCert, 'utf8');
      caKeyPem = readFileSync(paths.caKey, 'utf8');
      ca = new X509Certificate(caCertPem);
    }
    const certPem = readIfExists(paths.cert);
    const keyPem = readIfExists(paths.key);
    const serving = certPem && keyPem ? usable(certPem, keyPem, now) : undefined;
    const good = serving && !issued.ca && serving.checkIssued(ca) && serving.verify(ca.publicKey) && hosts.every((h) => certificateCovers(serving, h));
    if (!good) {
      issueServing(work, paths, [...hosts]);
      issued.serving = true;
    }
    return { caCert: caCertPem!, cert: readFileSync(paths.cert, 'utf8'), key: readFileSync(paths.key, 'utf8'), issued };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export interface TlsSourceOptions {
  logger: Logger;
  /** called with the new pair after a change on disk (or a renewal) */
  onChange: (pair: KeyPair) => void;
  /** how often configured files are checked (default 10 s) */
  pollMs?: number;
  /** how often a generated certificate is checked for renewal (default 12 h) */
  renewCheckMs?: number;
}

export interface TlsSource {
  current(): KeyPair;
  /** the CA that signed the serving certificate, when it was generated here */
  caCert?: string;
  /** check now (the timers call this) */
  refresh(): void;
  close(): void;
}

function sameKeyPair(a: KeyPair, b: KeyPair): boolean {
  return a.cert === b.cert && a.key === b.key;
}

/** Configured files: read now (failing loudly), then polled; a half-written pair is ignored until it matches. */
export function watchedCertificateFiles(certFile: string, keyFile: string, options: TlsSourceOptions): TlsSource {
  const read = (): KeyPair => ({ cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') });
  let pair: KeyPair;
  try {
    pair = read();
    createSecureContext(pair);
  } catch (error) {
    throw new Error(`webhook certificate ${certFile} / key ${keyFile} cannot be used: ${(error as Error).message}`, { cause: error });
  }
  let lastProblem = '';
  const refresh = () => {
    let next: KeyPair;
    try {
      next = read();
      if (sameKeyPair(next, pair)) return;
      createSecureContext(next);
    } catch (error) {
      const problem = (error as Error).message;
      if (problem !== lastProblem) options.logger.warn({ certFile, keyFile, err: problem }, 'webhook certificate changed but cannot be used yet; serving the previous one');
      lastProblem = problem;
      return;
    }
    lastProblem = '';
    pair = next;
    options.logger.info({ certFile }, 'webhook certificate reloaded');
    options.onChange(pair);
  };
  const timer = setInterval(refresh, options.pollMs ?? 10_000);
  timer.unref();
  return {
    current: () => pair,
    refresh,
    close: () => clearInterval(timer),
  };
}

/** Generated certificates: made or loaded now, renewed in place before they expire. */
export function generatedCertificates(dataDir: string, hosts: readonly string[], options: TlsSourceOptions): TlsSource {
  const first = ensureGeneratedCertificates(dataDir, hosts);
  if (first.issued.ca) options.logger.info({ dir: generatedPaths(dataDir).dir }, 'generated a CA for the admission webhook; register it with `pod-identity webhook-config`');
  if (first.issued.serving) options.logger.info({ hosts }, 'generated the webhook serving certificate');
  let pair: KeyPair = { cert: first.cert, key: first.key };
  const source: TlsSource = {
    current: () => pair,
    caCert: first.caCert,
    refresh() {
      try {
        const next = ensureGeneratedCertificates(dataDir, hosts);
        if (next.issued.ca) options.logger.warn('the webhook CA was renewed: run `pod-identity webhook-config` again to update caBundle');
        source.caCert = next.caCert;
        if (!sameKeyPair(next, pair)) {
          pair = { cert: next.cert, key: next.key };
          options.onChange(pair);
        }
      } catch (error) {
        options.logger.error({ err: (error as Error).message }, 'cannot renew the webhook certificate');
      }
    },
    close: () => clearInterval(timer),
  };
  const timer = setInterval(() => source.refresh(), options.renewCheckMs ?? 12 * 3_600_000);
  timer.unref();
  return source;
}
