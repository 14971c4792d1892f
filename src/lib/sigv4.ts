// SigV4 on both sides: verifying signed requests that reach our APIs, and
// signing the requests our agent and tests send. Both build the canonical
// request the same way (its path and query lines from @smithy/signature-v4,
// the AWS SDKs' signer) and compute the signature with node:crypto and a
// cached signing key; verifying compares it with the given one in constant time.
import { createHash, createHmac, createSecretKey, hash, timingSafeEqual, type KeyObject } from 'node:crypto';
import { HttpRequest } from '@smithy/protocol-http';
import { getCanonicalHeaders, SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, Checksum, SourceData } from '@smithy/types';
import { BoundedMap } from './bounded-cache.js';
import { WireError } from './errors.js';

/** SHA-256 (plain or HMAC) on node:crypto, in the shape the smithy signer expects. */
export class NodeSha256 implements Checksum {
  private hash;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(secret));
  }
  update(data: Uint8Array): void {
    this.hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
  reset(): void {
    throw new Error('NodeSha256 cannot be reset');
  }
}

function toBuffer(data: SourceData): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

/** What the verifier needs of an incoming request. `path` is the raw (still URI-encoded) path. */
export interface SignedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A key the caller may sign with. `sessionToken` is set for temporary credentials. */
export interface SigningKey {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface VerifiedCaller {
  accessKeyId: string;
  region: string;
  service: string;
  sessionToken?: string;
}

export interface VerifyOptions {
  /** Signing name the credential scope must carry (`eks`, `eks-auth`, `sts`). */
  service: string;
  /** Region the credential scope must carry: the server's configured region. */
  region: string;
  /** Finds the secret for an access key id, or undefined when the key is not allowed here. */
  lookup: (accessKeyId: string) => SigningKey | undefined;
  now?: () => number;
}

const AUTH_SCHEME = 'AWS4-HMAC-SHA256 ';

/** What a signature is made with: the access key and the scope of its signing key. */
interface Credential {
  /** "<key>/<date>/<region>/<service>/aws4_request" */
  credential: string;
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  /** the credential without its key, as the string to sign carries it */
  scope: string;
}

interface ParsedAuthorization extends Credential {
  signedHeaders: string[];
  signature: string;
}

/** The header as every AWS SDK writes it: scheme, then Credential, SignedHeaders and Signature in this order. */
const SDK_AUTHORIZATION = /^AWS4-HMAC-SHA256 Credential=(([^/,\s]+)\/((\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request)), ?SignedHeaders=([^,\s]+), ?Signature=([^,\s]+)$/;

/** Parses the Authorization header; an incomplete one is IncompleteSignatureException. */
export function parseAuthorization(header: string): ParsedAuthorization {
  // One regex for the usual form; any other spacing or order takes the general way below.
  const sdk = SDK_AUTHORIZATION.exec(header);
  if (sdk) {
    return { credential: sdk[1]!, accessKeyId: sdk[2]!, date: sdk[4]!, region: sdk[5]!, service: sdk[6]!, scope: sdk[3]!, signedHeaders: sdk[7]!.split(';'), signature: sdk[8]! };
  }
  const text = header.trim();
  if (!text.startsWith(AUTH_SCHEME)) throw new WireError('IncompleteSignatureException', 'Authorization header must use AWS4-HMAC-SHA256.');
  let credential: string | undefined;
  let signedHeaders: string | undefined;
  let signature: string | undefined;
  for (const piece of text.slice(AUTH_SCHEME.length).split(',')) {
    const eq = piece.indexOf('=');
    if (eq <= 0) continue;
    const name = piece.slice(0, eq).trim();
    const value = piece.slice(eq + 1).trim();
    if (name === 'Credential') credential = value;
    else if (name === 'SignedHeaders') signedHeaders = value;
    else if (name === 'Signature') signature = value;
  }
  if (!credential || !signedHeaders || !signature) {
    throw new WireError('IncompleteSignatureException', 'Authorization header requires Credential, SignedHeaders and Signature.');
  }
  const parts = credential.split('/');
  if (parts.length !== 5 || parts[4] !== 'aws4_request') {
    throw new WireError('IncompleteSignatureException', 'Credential must be <key>/<date>/<region>/<service>/aws4_request.');
  }
  const [accessKeyId, date, region, service] = parts as [string, string, string, string];
  return { credential, accessKeyId, date, region, service, scope: parts.slice(1).join('/'), signedHeaders: signedHeaders.split(';'), signature };
}

const AMZ_DATE = /^\d{8}T\d{6}Z$/;

/** Parses an x-amz-date value (20060102T150405Z) to epoch milliseconds. */
export function parseAmzDate(value: string): number | undefined {
  if (!AMZ_DATE.test(value)) return undefined;
  const digits = (from: number, to: number) => Number(value.slice(from, to));
  return Date.UTC(digits(0, 4), digits(4, 6) - 1, digits(6, 8), digits(9, 11), digits(11, 13), digits(13, 15));
}

function headerValue(headers: SignedRequest['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

/** Names in order, each once; SDKs already send them so, which costs one pass. */
function sortedUnique(names: string[]): string[] {
  for (let i = 1; i < names.length; i++) if (names[i - 1]! >= names[i]!) return [...new Set(names)].sort();
  return names;
}

/** Longer method + path + query strings are not remembered. */
const MAX_MEMO_KEY = 512;

/**
 * Canonical requests (SigV4 task 1). The method, path and query lines carry
 * the subtle rules (path normalisation, URI escaping, query ordering), so
 * they come from smithy's own code (the AWS SDKs' signer), reached through
 * its protected method; a service sees the same few paths again and again,
 * so each distinct one is computed once. The header lines are the signed
 * headers in name order, values with whitespace folded exactly as smithy does.
 */
class CanonicalRequests extends SignatureV4 {
  private readonly heads = new BoundedMap<string, string>(1024);
  constructor() {
    super({ credentials: { accessKeyId: '', secretAccessKey: '' }, region: '', service: '', sha256: NodeSha256 });
  }

  /** `names` (at least `host`) are the signed headers' lower-case names, sorted, each once; `valueOf` gives each one's value. */
  build(method: string, path: string, query: URLSearchParams, names: readonly string[], valueOf: (name: string) => string, payloadHash: string): string {
    let lines = this.head(method, path, query);
    for (const name of names) lines += `${name}:${canonicalHeaderValue(valueOf(name))}\n`;
    return `${lines}\n${names.join(';')}\n${payloadHash}`;
  }

  /** "METHOD\n<canonical path>\n<canonical query>\n", from smithy's request builder with no headers. */
  private head(method: string, path: string, query: URLSearchParams): string {
    const id = query.size ? `${method} ${path}?${query.toString()}` : `${method} ${path}`;
    let head = this.heads.get(id);
    if (head === undefined) {
      const values: Record<string, string | string[]> = {};
      for (const name of new Set(query.keys())) {
        const all = query.getAll(name);
        values[name] = all.length === 1 ? all[0]! : all;
      }
      // With no headers and an empty payload hash, the builder's answer ends in the three line breaks after the (empty) header block.
      head = this.createCanonicalRequest(new HttpRequest({ method, path, query: values, headers: {} }), {}, '').slice(0, -3);
      // Bounded in count and size: a caller needs only a key id (not its secret) to get here.
      if (id.length > MAX_MEMO_KEY) return head;
      this.heads.set(id, head);
    }
    return head;
  }
}
const canonicalRequests = new CanonicalRequests();

/** A header value as SigV4 signs it: line breaks and runs of blanks become one space, trimmed (smithy's rules). */
function canonicalHeaderValue(value: string): string {
  // Plain string searches: a regex scan of every signed value cost more than all of them.
  const foldable = value.startsWith(' ') || value.endsWith(' ') || value.includes('  ') || value.includes('\t') || value.includes('\n') || value.includes('\r');
  return foldable ? value.replace(/[\r\n]/g, ' ').replace(/[ \t]+/g, ' ').replace(/^ | $/g, '') : value;
}

/**
 * Derived signing keys (four HMACs each) by credential (key, day, region and
 * service): a node signs with one key all day, so verification costs two
 * hashes and one HMAC. An entry is used only while the secret is the one it
 * was derived from.
 */
class SigningKeyCache {
  private readonly entries = new BoundedMap<string, { secret: string; key: KeyObject }>(4096);

  get(secret: string, credential: Credential): KeyObject {
    const cached = this.entries.get(credential.credential);
    if (cached && cached.secret === secret) return cached.key;
    let key = Buffer.from(`AWS4${secret}`, 'utf8');
    for (const part of [credential.date, credential.region, credential.service, 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
    // A KeyObject, not bytes: each HMAC with it skips importing the key again.
    const signingKey = createSecretKey(key);
    this.entries.set(credential.credential, { secret, key: signingKey });
    return signingKey;
  }
}
const signingKeys = new SigningKeyCache();

/** The signature (raw bytes) of a canonical request at `amzDate` with a secret and the credential it belongs to. */
function signatureOf(canonicalRequest: string, amzDate: string, secret: string, credential: Credential): Buffer {
  const stringToSign = `AWS4-HMAC-SHA256\n${amzDate}\n${credential.scope}\n${hash('sha256', canonicalRequest, 'hex')}`;
  return createHmac('sha256', signingKeys.get(secret, credential)).update(stringToSign).digest();
}

/**
 * Verifies a SigV4 header-signed request. Throws WireError with the names the
 * AWS SDKs know (403): MissingAuthenticationTokenException,
 * UnrecognizedClientException, InvalidSignatureException.
 */
export function verifySigV4(request: SignedRequest, options: VerifyOptions): VerifiedCaller {
  const authorization = headerValue(request.headers, 'authorization');
  if (!authorization) throw new WireError('MissingAuthenticationTokenException', 'Missing Authentication Token');
  const auth = parseAuthorization(authorization);

  const key = options.lookup(auth.accessKeyId);
  if (!key) throw new WireError('UnrecognizedClientException', 'The security token included in the request is invalid.');
  // The scope is part of what is signed, but a signature made for another
  // region or service is still a valid signature: AWS refuses it before
  // checking the signature, with these messages.
  if (auth.region !== options.region) throw new WireError('InvalidSignatureException', 'Credential should be scoped to a valid region.');
  if (auth.service !== options.service) {
    throw new WireError('InvalidSignatureException', `Credential should be scoped to correct service: '${options.service}'.`);
  }
  if (!auth.signedHeaders.includes('host')) {
    throw new WireError('InvalidSignatureException', "'Host' must be a signed header.");
  }

  const amzDate = headerValue(request.headers, 'x-amz-date');
  const signedAt = amzDate === undefined ? undefined : parseAmzDate(amzDate);
  if (signedAt === undefined) throw new WireError('IncompleteSignatureException', 'Missing or malformed X-Amz-Date header.');
  if (!amzDate!.startsWith(auth.date)) {
    throw new WireError('InvalidSignatureException', 'Credential date does not match X-Amz-Date.');
  }
  const now = options.now?.() ?? Date.now();
  if (Math.abs(now - signedAt) > MAX_CLOCK_SKEW_MS) {
    throw new WireError('InvalidSignatureException', 'Signature expired: the request time is more than 5 minutes away from the server time.');
  }

  const sessionToken = headerValue(request.headers, 'x-amz-security-token');
  if (key.sessionToken !== undefined && sessionToken !== key.sessionToken) {
    throw new WireError('UnrecognizedClientException', 'The security token included in the request is invalid.');
  }

  // Rebuild exactly the signed headers. A claimed payload hash is replaced by
  // the real one, so a lying x-amz-content-sha256 fails the comparison.
  const payloadHash = hash('sha256', request.body, 'hex');
  const signedValue = (name: string): string => {
    const value = name === 'x-amz-content-sha256' ? payloadHash : headerValue(request.headers, name);
    if (value === undefined) throw new WireError('InvalidSignatureException', `Signed header '${name}' is missing from the request.`);
    return value;
  };
  const canonicalRequest = canonicalRequests.build(request.method, request.path, request.query, sortedUnique(auth.signedHeaders), signedValue, payloadHash);
  const expected = signatureOf(canonicalRequest, amzDate!, key.secretAccessKey, auth);
  // 64 characters that decode to 32 bytes are 64 hex digits (the decoder stops at anything else).
  const given = auth.signature.length === 64 ? Buffer.from(auth.signature, 'hex') : Buffer.alloc(0);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new WireError(
      'InvalidSignatureException',
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
    );
  }
  return { accessKeyId: auth.accessKeyId, region: auth.region, service: auth.service, sessionToken };
}

export interface OutgoingRequest {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  body?: string;
}

/** 20261126T230000Z, the SigV4 form of a time. */
function amzDateOf(date: Date): string {
  return date.toISOString().replace(/[-:]|\.\d{3}/g, '');
}

/**
 * Signs an outgoing request; returns the headers to send (the caller's, plus
 * host, x-amz-date, x-amz-content-sha256, x-amz-security-token when the
 * credentials have one, and authorization). Same canonical request and
 * cached signing key as verification: the smithy signer's output, without
 * its per-call key derivation and async hashing (the agent signs one request
 * per cold pod).
 */
export async function signRequest(
  request: OutgoingRequest,
  options: { credentials: AwsCredentialIdentity; region: string; service: string; now?: Date },
): Promise<Record<string, string>> {
  const { credentials, region, service } = options;
  const amzDate = amzDateOf(options.now ?? new Date());
  const payloadHash = hash('sha256', request.body ?? '', 'hex');
  const headers: Record<string, string> = { host: request.url.host, ...request.headers, 'x-amz-date': amzDate, 'x-amz-content-sha256': payloadHash };
  if (credentials.sessionToken) headers['x-amz-security-token'] = credentials.sessionToken;
  const canonicalHeaders = getCanonicalHeaders({ headers } as unknown as HttpRequest);
  const names = Object.keys(canonicalHeaders).sort();
  const canonicalRequest = canonicalRequests.build(request.method, request.url.pathname, request.url.searchParams, names, (name) => canonicalHeaders[name]!, payloadHash);
  const date = amzDate.slice(0, 8);
  const scope = `${date}/${region}/${service}/aws4_request`;
  const credential = { credential: `${credentials.accessKeyId}/${scope}`, accessKeyId: credentials.accessKeyId, date, region, service, scope };
  const signature = signatureOf(canonicalRequest, amzDate, credentials.secretAccessKey, credential).toString('hex');
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${credential.credential}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
  return headers;
}
