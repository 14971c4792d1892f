// Test PKI with @peculiar/x509 (the library the webhook's own certificates
// come from): a throwaway CA and certificates it signs (P-256 keys: fast to
// make, accepted by Go and Node), written as PEM files for the peers that
// read them from disk.
// @peculiar/x509 needs the Reflect metadata polyfill evaluated before it.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, KeyObject, randomBytes, type webcrypto } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface CertificateAuthority {
  certPath: string;
  keyPath: string;
  certPem: string;
  keyPem: string;
  dir: string;
}

export interface IssuedCertificate {
  certPath: string;
  keyPath: string;
  certPem: string;
  keyPem: string;
}

export interface CertificateRequest {
  /** file name stem inside the CA's directory */
  name: string;
  commonName: string;
  ips?: string[];
  dnsNames?: string[];
  /** extendedKeyUsage; default serverAuth */
  usage?: Array<'serverAuth' | 'clientAuth'>;
  /** subject O= entries (Kubernetes reads them as groups of a client certificate) */
  organizations?: string[];
  days?: number;
}

const DAY_MS = 86_400_000;
const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

function newKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return crypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return { notBefore: new Date(now), notAfter: new Date(now + days * DAY_MS) };
}

async function writePem(certPath: string, keyPath: string, cert: x509.X509Certificate, key: webcrypto.CryptoKey): Promise<{ certPem: string; keyPem: string }> {
  const certPem = `${cert.toString('pem')}\n`;
  const keyPem = KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }).toString();
  await writeFile(keyPath, keyPem, { mode: 0o600 });
  await writeFile(certPath, certPem);
  return { certPem, keyPem };
}

/** Creates `<dir>/<name>-ca.crt` and its key. */
export async function createCertificateAuthority(dir: string, name = 'test', days = 2): Promise<CertificateAuthority> {
  const certPath = join(dir, `${name}-ca.crt`);
  const keyPath = join(dir, `${name}-ca.key`);
  const keys = await newKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(16).toString('hex'),
    name: [{ CN: [`pod-identity test CA (${name})`] }],
    ...validity(days),
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPath, keyPath, dir, ...(await writePem(certPath, keyPath, cert, keys.privateKey)) };
}

/** Issues a leaf certificate signed by `ca`, written beside it. */
export async function issueCertificate(ca: CertificateAuthority, request: CertificateRequest): Promise<IssuedCertificate> {
  const certPath = join(ca.dir, `${request.name}.crt`);
  const keyPath = join(ca.dir, `${request.name}.key`);
  const issuer = new x509.X509Certificate(ca.certPem);
  const keys = await newKeyPair();
  const altNames = [...(request.ips ?? []).map((value) => ({ type: 'ip' as const, value })), ...(request.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value }))];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(16).toString('hex'),
    subject: [{ CN: [request.commonName] }, ...(request.organizations ?? []).map((o) => ({ O: [o] }))],
    issuer: issuer.subjectName,
    ...validity(request.days ?? 2),
    publicKey: keys.publicKey,
    signingKey: createPrivateKey(ca.keyPem).toCryptoKey(KEY_ALGORITHM, false, ['sign']),
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension((request.usage ?? ['serverAuth']).map((usage) => x509.ExtendedKeyUsage[usage])),
      await x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey),
      ...(altNames.length > 0 ? [new x509.SubjectAlternativeNameExtension(altNames)] : []),
    ],
  });
  return { certPath, keyPath, ...(await writePem(certPath, keyPath, cert, keys.privateKey)) };
}
