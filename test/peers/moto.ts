// moto's server (scripts/install-python-peers.sh) as the AWS-compatible STS,
// IAM and S3 of the tests, on a free loopback port, with IAM calls made through
// its Query API, signed with SigV4 like any SDK would.
import { createHash, createHmac } from 'node:crypto';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import type { Checksum, SourceData } from '@smithy/types';
import { freePort } from '../helpers/server-process.js';
import { spawnPeer, waitUntil, type PeerProcess } from './processes.js';
import { isolatedAwsEnv, pythonPeersMissingReason, venvBinary } from './python.js';

/** moto's default account */
export const MOTO_ACCOUNT_ID = '123456789012';
const MOTO_REGION = 'us-east-1';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface MotoServer {
  /** http://127.0.0.1:<port>, for every service */
  endpoint: string;
  region: string;
  accountId: string;
  /** any key works with moto; these stand for the account's root */
  credentials: AwsCredentials;
  process: PeerProcess;
  /** forget every resource (POST /moto-api/reset) */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export function motoMissingReason(): string | undefined {
  return pythonPeersMissingReason();
}

export interface MotoOptions {
  readyTimeoutMs?: number;
  /** address to listen on (default 127.0.0.1), e.g. a test's own veth address so a network namespace reaches it */
  host?: string;
}

export async function startMoto(options: MotoOptions = {}): Promise<MotoServer> {
  const missing = motoMissingReason();
  if (missing) throw new Error(missing);
  // a free port can be taken by someone else between probing and binding it
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (error) {
      if (attempt >= 3 || !/address already in use/i.test((error as Error).message)) throw error;
    }
  }
}

async function startOnce(options: MotoOptions): Promise<MotoServer> {
  const host = options.host ?? '127.0.0.1';
  const port = await freePort();
  const endpoint = `http://${host}:${port}`;
  const peer = spawnPeer('moto_server', venvBinary('moto_server'), ['-H', host, '-p', String(port)], {
    env: isolatedAwsEnv({ MOTO_ACCOUNT_ID }),
  });
  try {
    await waitUntil(peer, 'an HTTP answer', options.readyTimeoutMs ?? 60_000, async () => {
      const res = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      return true;
    });
  } catch (error) {
    await peer.stop(1_000);
    throw error;
  }
  return {
    endpoint,
    region: MOTO_REGION,
    accountId: MOTO_ACCOUNT_ID,
    credentials: { accessKeyId: 'AKIAMOTOROOTTEST0001', secretAccessKey: 'moto-root-secret-for-tests' },
    process: peer,
    async reset() {
      const res = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
      await res.arrayBuffer();
      if (!res.ok) throw new Error(`moto reset: ${res.status}`);
    },
    stop: () => peer.stop(2_000),
  };
}

class NodeSha256 implements Checksum {
  private readonly hash;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(secret));
  }
  update(data: Uint8Array): void {
    this.hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {
    throw new Error('not supported');
  }
}

function toBuffer(data: SourceData): Buffer {
  if (typeof data === 'string') return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

class AwsQueryError extends Error {
  constructor(
    readonly service: string,
    readonly action: string,
    readonly status: number,
    readonly code: string | undefined,
    readonly body: string,
  ) {
    super(`${service} ${action}: ${status} ${code ?? ''}: ${xmlValue(body, 'Message') ?? body.slice(0, 300)}`);
    this.name = 'AwsQueryError';
  }
}

/** One AWS Query-protocol call (IAM, STS) to moto, signed with SigV4; answers the XML text. */
export async function awsQuery(
  moto: Pick<MotoServer, 'endpoint' | 'region' | 'credentials'>,
  service: 'iam' | 'sts',
  action: string,
  params: Record<string, string> = {},
  credentials: AwsCredentials = moto.credentials,
): Promise<string> {
  const version = service === 'iam' ? '2010-05-08' : '2011-06-15';
  const body = new URLSearchParams({ Action: action, Version: version, ...params }).toString();
  const url = new URL(moto.endpoint);
  const request = new HttpRequest({
    method: 'POST',
    protocol: url.protocol,
    hostname: url.hostname,
    port: Number(url.port),
    path: '/',
    headers: { host: url.host, 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
    body,
  });
  const signer = new SignatureV4({ credentials, region: moto.region, service, sha256: NodeSha256 });
  const signed = await signer.sign(request);
  const res = await fetch(`${moto.endpoint}/`, {
    method: 'POST',
    headers: signed.headers,
    body,
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  if (!res.ok) throw new AwsQueryError(service, action, res.status, xmlValue(text, 'Code'), text);
  return text;
}

/** The text of the first <tag>…</tag> in `xml`, entities decoded. */
function xmlValue(xml: string, tag: string): string | undefined {
  const match = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml);
  if (!match) return undefined;
  return match[1]
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

export interface Role {
  roleName: string;
  arn: string;
  roleId: string;
}

/** A trust policy letting `principalArn` (default: the account root) assume the role and tag the session. */
export function trustPolicyFor(principalArn = `arn:aws:iam::${MOTO_ACCOUNT_ID}:root`): Record<string, unknown> {
  return {
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: { AWS: principalArn }, Action: ['sts:AssumeRole', 'sts:TagSession'] }],
  };
}

export async function createRole(
  moto: Pick<MotoServer, 'endpoint' | 'region' | 'credentials'>,
  options: { roleName: string; trustPolicy?: Record<string, unknown>; maxSessionDuration?: number; path?: string },
): Promise<Role> {
  const xml = await awsQuery(moto, 'iam', 'CreateRole', {
    RoleName: options.roleName,
    AssumeRolePolicyDocument: JSON.stringify(options.trustPolicy ?? trustPolicyFor()),
    ...(options.path && { Path: options.path }),
    ...(options.maxSessionDuration && { MaxSessionDuration: String(options.maxSessionDuration) }),
  });
  const arn = xmlValue(xml, 'Arn');
  const roleId = xmlValue(xml, 'RoleId');
  if (!arn || !roleId) throw new Error(`CreateRole answered no Arn/RoleId: ${xml.slice(0, 300)}`);
  return { roleName: options.roleName, arn, roleId };
}

/** An IAM user with an access key: an AWS principal (for example the server's own) that moto knows. */
export async function createUserWithAccessKey(
  moto: Pick<MotoServer, 'endpoint' | 'region' | 'credentials'>,
  userName: string,
): Promise<AwsCredentials & { arn: string }> {
  const user = await awsQuery(moto, 'iam', 'CreateUser', { UserName: userName });
  const key = await awsQuery(moto, 'iam', 'CreateAccessKey', { UserName: userName });
  const arn = xmlValue(user, 'Arn');
  const accessKeyId = xmlValue(key, 'AccessKeyId');
  const secretAccessKey = xmlValue(key, 'SecretAccessKey');
  if (!arn || !accessKeyId || !secretAccessKey) throw new Error('CreateUser/CreateAccessKey answered no key');
  return { arn, accessKeyId, secretAccessKey };
}
