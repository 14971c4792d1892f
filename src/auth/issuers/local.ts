// The local issuer (development default): mints role-session credentials
// without AWS. Nothing is stored: the session token carries the session (access
// key id, assumed-role ARN, expiry) under an HMAC of the server's key, and the
// secret key is derived from the same HMAC, so any replica holding the key can
// verify them. The server's STS GetCallerIdentity (routes/sts.ts) accepts
// exactly these credentials, until they expire.
import { createHash, createHmac, createSecretKey, randomBytes, randomFillSync, timingSafeEqual, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { BoundedMap } from '../../lib/bounded-cache.js';
import { WireError } from '../../lib/errors.js';
import { assumedRoleArn, effectiveRoleArn, MAX_CHAINED_SECONDS, parseRoleArn } from '../session.js';
import type { CredentialIssuer, IssuedCredentials, IssueRequest } from './issuer.js';

const TOKEN_PREFIX = 'PILOCAL1';
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const KEY_BYTES = 32;

function base32(bytes: Buffer, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += BASE32[bytes[i % bytes.length]! & 31];
  return out;
}

/** Random bytes from a refilled pool: one getrandom call per 256 access key ids, not one each. */
const randomPool = Buffer.alloc(4096);
let randomOffset = randomPool.length;

function pooledRandom(size: number): Buffer {
  if (randomOffset + size > randomPool.length) {
    randomFillSync(randomPool);
    randomOffset = 0;
  }
  const bytes = randomPool.subarray(randomOffset, randomOffset + size);
  randomOffset += size;
  return bytes;
}

/** The session a minted credential stands for. */
export interface LocalSession {
  accessKeyId: string;
  /** derived from the session, so nothing needs storing */
  secretAccessKey: string;
  /** arn:aws:sts::<account>:assumed-role/<role>/<session> */
  arn: string;
  /** <role id>:<session> */
  userId: string;
  accountId: string;
  /** epoch seconds */
  expiresAt: number;
}

interface TokenBody {
  k: string;
  a: string;
  u: string;
  c: string;
  e: number;
}

/** Reads the issuer key, or makes one (0600) on first start. Replicas must share it (e.g. a mounted secret). */
export function loadOrCreateLocalIssuerKey(path: string): Buffer {
  try {
    return keyFromText(readFileSync(path, 'utf8'), path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(dirname(path), { recursive: true });
  try {
    writeFileSync(path, `${randomBytes(KEY_BYTES).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  return keyFromText(readFileSync(path, 'utf8'), path);
}

function keyFromText(text: string, path: string): Buffer {
  const key = Buffer.from(text.trim(), 'hex');
  if (key.length < KEY_BYTES) throw new Error(`${path}: the local issuer key must be at least ${KEY_BYTES} bytes of hex`);
  return key;
}

/** A stable role id (AROA…) per role ARN, as STS gives every role one. */
export function localRoleId(roleArn: string): string {
  return `AROA${base32(createHash('sha256').update(roleArn).digest(), 17)}`;
}

interface LocalRole {
  accountId: string;
  id: string;
  /** the role's session ARNs without the session name */
  sessionArnPrefix: string;
}

/** What each role ARN gives its sessions, worked out once per role (null: not a role ARN). */
const roles = new BoundedMap<string, LocalRole | null>(10_000);

function localRole(roleArn: string): LocalRole | null {
  let role = roles.get(roleArn);
  if (role === undefined) {
    const parts = parseRoleArn(roleArn);
    role = parts ? { accountId: parts.accountId, id: localRoleId(roleArn), sessionArnPrefix: assumedRoleArn(roleArn, '') } : null;
    roles.set(roleArn, role);
  }
  return role;
}

export interface LocalIssuerOptions {
  key: Buffer;
  durationSeconds: number;
  now?: () => number;
}

export class LocalIssuer implements CredentialIssuer {
  readonly usesSessionTags = false;
  private readonly now: () => number;
  /** A KeyObject, not bytes: each HMAC with it skips importing the key again. */
  private readonly key: KeyObject;

  constructor(private readonly options: LocalIssuerOptions) {
    if (options.key.length < KEY_BYTES) throw new Error(`the local issuer key must be at least ${KEY_BYTES} bytes`);
    this.now = options.now ?? Date.now;
    this.key = createSecretKey(options.key);
  }

  async issue({ association, sessionName }: IssueRequest): Promise<IssuedCredentials> {
    const roleArn = effectiveRoleArn(association);
    const role = localRole(roleArn);
    if (!role) throw new WireError('InternalServerException', 'The association does not name a valid role ARN.', { reason: 'issuer_failed' });
    const duration = association.targetRoleArn ? Math.min(this.options.durationSeconds, MAX_CHAINED_SECONDS) : this.options.durationSeconds;
    const expiresAt = Math.floor(this.now() / 1000) + duration;
    const accessKeyId = `ASIA${base32(pooledRandom(16), 16)}`;
    const arn = `${role.sessionArnPrefix}${sessionName}`;
    const userId = `${role.id}:${sessionName}`;
    const body: TokenBody = { k: accessKeyId, a: arn, u: userId, c: role.accountId, e: expiresAt };
    const encoded = Buffer.from(JSON.stringify(body)).toString('base64url');
    const derived = this.derive(encoded);
    return {
      accessKeyId,
      secretAccessKey: derived.secret,
      sessionToken: `${TOKEN_PREFIX}.${encoded}.${derived.mac.toString('base64url')}`,
      expiration: new Date(expiresAt * 1000),
      assumedRoleUser: { arn, assumeRoleId: userId },
    };
  }

  /**
   * The session behind a session token minted here for `accessKeyId`.
   * Not ours, forged or for another key: UnrecognizedClientException;
   * expired: ExpiredTokenException (403, STS's ExpiredToken).
   */
  identify(accessKeyId: string, sessionToken: string | undefined): LocalSession {
    const invalid = () => new WireError('UnrecognizedClientException', 'The security token included in the request is invalid.');
    const parts = sessionToken?.split('.');
    if (!parts || parts.length !== 3 || parts[0] !== TOKEN_PREFIX) throw invalid();
    const [, encoded, mac] = parts as [string, string, string];
    const given = Buffer.from(mac, 'base64url');
    const derived = this.derive(encoded);
    if (given.length !== derived.mac.length || !timingSafeEqual(given, derived.mac)) throw invalid();
    const body = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8')) as TokenBody;
    if (body.k !== accessKeyId) throw invalid();
    if (Math.floor(this.now() / 1000) >= body.e) throw new WireError('ExpiredTokenException', 'The security token included in the request is expired', { status: 403 });
    return { accessKeyId: body.k, secretAccessKey: derived.secret, arn: body.a, userId: body.u, accountId: body.c, expiresAt: body.e };
  }

  close(): void {}

  /** One HMAC-SHA512 of the session body: its first half authenticates the token, the rest is the secret key. */
  private derive(encoded: string): { mac: Buffer; secret: string } {
    const digest = createHmac('sha512', this.key).update(encoded).digest();
    return { mac: digest.subarray(0, 32), secret: digest.subarray(32, 62).toString('base64') };
  }
}
