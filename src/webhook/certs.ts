// The webhook's TLS material, and the API listener's when it serves HTTPS.
// The API server only calls webhooks over TLS, so there is always a
// certificate: either the operator's files (reloaded when they change on disk,
// e.g. a cert-manager Secret rotation), or a CA and a serving certificate
// generated once and kept in the data directory, so the caBundle printed by
// `webhook-config` (or the CA bundle given to agents) stays valid across
// restarts. Each listener has its own CA and directory (CertificateSet).
// node:crypto cannot issue X.509 certificates; @peculiar/x509 builds them over
// WebCrypto, whose key generation and signing run on libuv's thread pool, so a
// renewal never blocks the event loop.
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the
// Reflect metadata API at import: the polyfill must be evaluated first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, KeyObject, randomBytes, X509Certificate, type webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { Logger } from '../lib/logger.js';

export interface KeyPair {
  cert: string;
  key: string;
}

/** Which listener a generated CA and serving certificate are for: where they live and what they are called. */
export interface CertificateSet {
  /** subdirectory of the data directory */
  dir: string;
  caName: string;
  /** for logs: "webhook", "API" */
  purpose: string;
  /** logged when a new CA was made: what the operator does with it */
  newCaHint: string;
}

export const WEBHOOK_CERTIFICATES: CertificateSet = {
  dir: 'webhook-tls',
  caName: 'pod-identity webhook CA',
  purpose: 'webhook',
  newCaHint: 'register it with `pod-identity webhook-config`',
};

export const API_CERTIFICATES: CertificateSet = {
  dir: 'api-tls',
  caName: 'pod-identity API CA',
  purpose: 'API',
  newCaHint: 'give agents its ca.crt with --ca-bundle',
};

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
const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

export function generatedPaths(dataDir: string, set: CertificateSet = WEBHOOK_CERTIFICATES): GeneratedPaths {
  const dir = join(dataDir, set.dir);
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

export function certificateCovers(cert: X509Certificate, host: string): boolean {
  return isIP(host) ? cert.checkIP(host) !== undefined : cert.checkHost(host, { wildcards: true }) !== undefined;
}

/** A pair read back: its key matches its certificate, which is not yet due for renewal. */
interface UsablePair extends KeyPair {
  parsed: X509Certificate;
}

function usable(pair: Partial<KeyPair>, now: number): UsablePair | undefined {
  const { cert, key } = pair;
  if (!cert || !key) return undefined;
  try {
    const parsed = new X509Certificate(cert);
    if (!parsed.checkPrivateKey(createPrivateKey(key))) return undefined;
    if (Date.parse(parsed.validTo) - now < RENEW_BEFORE_MS) return undefined;
    return { cert, key, parsed };
  } catch {
    return undefined;
  }
}

interface SigningCa extends UsablePair {
  signingKey: webcrypto.CryptoKey;
}

/** A CA we can keep signing with: usable, a CA, with a P-256 key (what we generate). */
function usableCa(pair: Partial<KeyPair>, now: number): SigningCa | undefined {
  const ca = usable(pair, now);
  if (!ca?.parsed.ca) return undefined;
  try {
    return { ...ca, signingKey: createPrivateKey(ca.key).toCryptoKey(KEY_ALGORITHM, false, ['sign']) };
  } catch {
    return undefined;
  }
}

/** Whether a serving certificate was signed by this CA and names every host. */
function issuedFor(serving: X509Certificate, ca: X509Certificate, hosts: readonly string[]): boolean {
  return serving.checkIssued(ca) && serving.verify(ca.publicKey) && hosts.every((h) => certificateCovers(serving, h));
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function readPair(certPath: string, keyPath: string): Promise<Partial<KeyPair>> {
  return { cert: await readIfExists(certPath), key: await readIfExists(keyPath) };
}

/** Written beside and renamed into place, so a reader sees the old file or the new one, never half of one. */
async function writeAtomically(path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text, { mode });
  await chmod(tmp, mode);
  await rename(tmp, path);
}

/** Key first, then certificate: a reader that sees the new certificate also sees its key. */
async function writePair(certPath: string, keyPath: string, pair: KeyPair): Promise<void> {
  await writeAtomically(keyPath, pair.key, 0o600);
  await writeAtomically(certPath, pair.cert, 0o644);
}

function commonName(value: string): x509.Name {
  // UTF8String, as openssl and most CAs write it
  return new x509.Name([{ CN: [{ utf8String: value }] }]);
}

async function newKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return crypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
}

function privateKeyPem(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** PEM ending in a newline (the library's does not), so bundles can be concatenated. */
function certificatePem(cert: x509.X509Certificate): string {
  return `${cert.toString('pem')}\n`;
}

/** Random and 128 bits long; the library encodes it as a positive INTEGER. */
function randomSerial(): string {
  return randomBytes(16).toString('hex');
}

function validity(now: number, days: number): { notBefore: Date; notAfter: Date } {
  return { notBefore: new Date(now), notAfter: new Date(now + days * DAY_MS) };
}

async function issueCa(now: number, caName: string): Promise<SigningCa> {
  const keys = await newKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: commonName(caName),
    ...validity(now, CA_DAYS),
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pem = certificatePem(cert);
  return { cert: pem, key: privateKeyPem(keys.privateKey), parsed: new X509Certificate(pem), signingKey: keys.privateKey };
}

async function issueServing(ca: SigningCa, hosts: readonly string[], now: number, purpose: string): Promise<KeyPair> {
  const keys = await newKeyPair();
  const issuer = new x509.X509Certificate(ca.cert);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: commonName(hosts.find((h) => !isIP(h)) ?? `pod-identity ${purpose}`),
    // the CA's own encoded name, so the chain matches byte for byte
    issuer: issuer.subjectName,
    ...validity(now, SERVING_DAYS),
    publicKey: keys.publicKey,
    signingKey: ca.signingKey,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      // keyid only: the SHA-1 of the CA's key, which is what its subjectKeyIdentifier holds
      await x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey),
      new x509.SubjectAlternativeNameExtension(hosts.map((h) => ({ type: isIP(h) ? 'ip' : 'dns', value: h }))),
    ],
  });
  return { cert: certificatePem(cert), key: privateKeyPem(keys.privateKey) };
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
export async function ensureGeneratedCertificates(dataDir: string, hosts: readonly string[], now = Date.now(), set: CertificateSet = WEBHOOK_CERTIFICATES): Promise<EnsureResult> {
  hosts.forEach(validateHost);
  const paths = generatedPaths(dataDir, set);
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  const issued = { ca: false, serving: false };
  let ca = usableCa(await readPair(paths.caCert, paths.caKey), now);
  if (!ca) {
    ca = await issueCa(now, set.caName);
    await writePair(paths.caCert, paths.caKey, ca);
    issued.ca = true;
  }
  const stored = usable(await readPair(paths.cert, paths.key), now);
  let serving: KeyPair;
  if (stored && !issued.ca && issuedFor(stored.parsed, ca.parsed, hosts)) {
    serving = stored;
  } else {
    serving = await issueServing(ca, hosts, now, set.purpose);
    await writePair(paths.cert, paths.key, serving);
    issued.serving = true;
  }
  return { caCert: ca.cert, cert: serving.cert, key: serving.key, issued };
}

export interface TlsSourceOptions {
  logger: Logger;
  /** called with the new pair after a change on disk (or a renewal) */
  onChange: (pair: KeyPair) => void;
  /** how often configured files are checked (default 10 s) */
  pollMs?: number;
  /** how often a generated certificate is checked for renewal (default 12 h) */
  renewCheckMs?: number;
  /** the clock generated certificates are issued and checked by (default Date.now) */
  now?: () => number;
  /** which listener's certificates (default the webhook's) */
  set?: CertificateSet;
}

export interface TlsSource {
  current(): KeyPair;
  /** the CA that signed the serving certificate, when it was generated here */
  caCert?: string;
  /** check now (the timers call this); settles when the check is done, never rejects */
  refresh(): Promise<void>;
  close(): void;
}

function sameKeyPair(a: KeyPair, b: KeyPair): boolean {
  return a.cert === b.cert && a.key === b.key;
}

/** Configured files: read now (failing loudly), then polled; a half-written pair is ignored until it matches. */
export function watchedCertificateFiles(certFile: string, keyFile: string, options: TlsSourceOptions): TlsSource {
  const purpose = (options.set ?? WEBHOOK_CERTIFICATES).purpose;
  const read = (): KeyPair => ({ cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') });
  let pair: KeyPair;
  try {
    pair = read();
    createSecureContext(pair);
  } catch (error) {
    throw new Error(`${purpose} certificate ${certFile} / key ${keyFile} cannot be used: ${(error as Error).message}`, { cause: error });
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
      if (problem !== lastProblem) options.logger.warn({ certFile, keyFile, err: problem }, `${purpose} certificate changed but cannot be used yet; serving the previous one`);
      lastProblem = problem;
      return;
    }
    lastProblem = '';
    pair = next;
    options.logger.info({ certFile }, `${purpose} certificate reloaded`);
    options.onChange(pair);
  };
  const timer = setInterval(refresh, options.pollMs ?? 10_000);
  timer.unref();
  return {
    current: () => pair,
    refresh: () => {
      refresh();
      return Promise.resolve();
    },
    close: () => clearInterval(timer),
  };
}

/** The four PEM texts of a generated set, named as in its directory and in a Kubernetes Secret. */
export interface GeneratedFiles {
  'ca.crt'?: string;
  'ca.key'?: string;
  'tls.crt'?: string;
  'tls.key'?: string;
}

const GENERATED_FILE_NAMES = ['ca.crt', 'ca.key', 'tls.crt', 'tls.key'] as const;

/** What the directory of a generated set holds now (absent files left out). */
export async function readGeneratedFiles(dataDir: string, set: CertificateSet = WEBHOOK_CERTIFICATES): Promise<GeneratedFiles> {
  const { dir } = generatedPaths(dataDir, set);
  const files: GeneratedFiles = {};
  for (const name of GENERATED_FILE_NAMES) {
    const text = await readIfExists(join(dir, name));
    if (text !== undefined) files[name] = text;
  }
  return files;
}

/** Makes the directory hold exactly `files` (from another copy of the set, e.g. a Secret): written atomically, keys private, absent ones removed. */
export async function writeGeneratedFiles(dataDir: string, files: GeneratedFiles, set: CertificateSet = WEBHOOK_CERTIFICATES): Promise<void> {
  const { dir } = generatedPaths(dataDir, set);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // keys first: a reader that sees a new certificate also sees its key
  for (const name of ['ca.key', 'tls.key', 'ca.crt', 'tls.crt'] as const) {
    const text = files[name];
    if (text === undefined) await rm(join(dir, name), { force: true });
    else await writeAtomically(join(dir, name), text, name.endsWith('.key') ? 0o600 : 0o644);
  }
}

/** One check of a generated set: the pair and CA to serve now, and whether it made either. */
type EnsureCertificates = () => Promise<EnsureResult>;

/**
 * Generated certificates: made or loaded now, renewed in place before they
 * expire. One renewal runs at a time; a refresh during one waits for it.
 */
export async function generatedCertificates(dataDir: string, hosts: readonly string[], options: TlsSourceOptions): Promise<TlsSource> {
  const now = options.now ?? Date.now;
  const set = options.set ?? WEBHOOK_CERTIFICATES;
  return renewingCertificates(() => ensureGeneratedCertificates(dataDir, hosts, now(), set), hosts, generatedPaths(dataDir, set).dir, options);
}

/**
 * A TLS source over `ensure`, which loads or makes the CA and serving
 * certificate: called now (failing loudly), then on every check, with changes
 * handed to `onChange`. One check runs at a time; a refresh during one waits for it.
 */
export async function renewingCertificates(ensure: EnsureCertificates, hosts: readonly string[], where: string, options: TlsSourceOptions): Promise<TlsSource> {
  const set = options.set ?? WEBHOOK_CERTIFICATES;
  const first = await ensure();
  if (first.issued.ca) options.logger.info({ where }, `generated a CA for the ${set.purpose} listener; ${set.newCaHint}`);
  if (first.issued.serving) options.logger.info({ hosts }, `generated the ${set.purpose} serving certificate`);
  let pair: KeyPair = { cert: first.cert, key: first.key };
  const renew = async () => {
    try {
      const next = await ensure();
      if (next.issued.ca) options.logger.warn(`the ${set.purpose} CA was renewed: ${set.newCaHint} again`);
      else if (next.issued.serving) options.logger.info({ hosts }, `renewed the ${set.purpose} serving certificate`);
      source.caCert = next.caCert;
      if (!sameKeyPair(next, pair)) {
        pair = { cert: next.cert, key: next.key };
        options.onChange(pair);
      }
    } catch (error) {
      options.logger.error({ err: (error as Error).message }, `cannot renew the ${set.purpose} certificate`);
    }
  };
  let renewing: Promise<void> | undefined;
  const source: TlsSource = {
    current: () => pair,
    caCert: first.caCert,
    refresh() {
      renewing ??= renew().finally(() => {
        renewing = undefined;
      });
      return renewing;
    },
    close: () => clearInterval(timer),
  };
  const timer = setInterval(() => void source.refresh(), options.renewCheckMs ?? 12 * 3_600_000);
  timer.unref();
  return source;
}
