// Test PKI with the openssl CLI: a throwaway CA and certificates it signs
// (P-256 keys: fast to make, accepted by Go and Node).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertificateAuthority {
  certPath: string;
  keyPath: string;
  certPem: string;
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

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr || (error as Error).message}`, { cause: error });
  }
}

/** An openssl config whose only x509 extensions are `extensions` (no defaults from the system config). */
function writeConfig(path: string, extensions: string[]): string {
  writeFileSync(path, ['[req]', 'distinguished_name = dn', 'x509_extensions = ext', '[dn]', '[ext]', ...extensions, ''].join('\n'));
  return path;
}

const keyArgs = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** Creates `<dir>/<name>-ca.crt` and its key. */
export function createCertificateAuthority(dir: string, name = 'test', days = 2): CertificateAuthority {
  const certPath = join(dir, `${name}-ca.crt`);
  const keyPath = join(dir, `${name}-ca.key`);
  openssl(
    [
      'req', '-x509', ...keyArgs, '-keyout', keyPath, '-out', certPath, '-days', String(days),
      '-subj', `/CN=pod-identity test CA (${name})`,
      '-config', writeConfig(join(dir, `${name}-ca.cnf`), [
        'basicConstraints = critical,CA:TRUE',
        'keyUsage = critical,keyCertSign,cRLSign',
        'subjectKeyIdentifier = hash',
      ]),
    ],
    dir,
  );
  return { certPath, keyPath, certPem: readFileSync(certPath, 'utf8'), dir };
}

/** Issues a leaf certificate signed by `ca`, written beside it. */
export function issueCertificate(ca: CertificateAuthority, request: CertificateRequest): IssuedCertificate {
  const certPath = join(ca.dir, `${request.name}.crt`);
  const keyPath = join(ca.dir, `${request.name}.key`);
  const altNames = [...(request.ips ?? []).map((ip) => `IP:${ip}`), ...(request.dnsNames ?? []).map((dns) => `DNS:${dns}`)];
  const subject = `/CN=${request.commonName}${(request.organizations ?? []).map((o) => `/O=${o}`).join('')}`;
  const config = writeConfig(join(ca.dir, `${request.name}.cnf`), [
    'basicConstraints = critical,CA:FALSE',
    'keyUsage = critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage = ${(request.usage ?? ['serverAuth']).join(',')}`,
    'authorityKeyIdentifier = keyid',
    ...(altNames.length > 0 ? [`subjectAltName = ${altNames.join(',')}`] : []),
  ]);
  openssl(
    [
      'req', '-x509', ...keyArgs, '-keyout', keyPath, '-out', certPath, '-days', String(request.days ?? 2),
      '-subj', subject, '-CA', ca.certPath, '-CAkey', ca.keyPath, '-config', config,
    ],
    ca.dir,
  );
  return { certPath, keyPath, certPem: readFileSync(certPath, 'utf8'), keyPem: readFileSync(keyPath, 'utf8') };
}
