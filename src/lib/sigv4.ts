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

export const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

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
  /** Finds the secret for an access key id, or undefined when the key is not allowed here. */
  lookup: (accessKeyId: string) => SigningKey | undefined;
  now?: () => number;
}

const AUTH_SCHEME = 'AWS4-HMAC-SHA256 ';

interface ParsedAuthorization {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

/** Parses the Authorization header; an incomplete one is IncompleteSignatureException. */
export function parseAuthorization(header: string): ParsedAuthorization {
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
  const scope = credential.split('/');
  if (scope.length !== 5 || scope[4] !== 'aws4_request') {
    throw new WireError('IncompleteSignatureException', 'Credential must be <key>/<date>/<region>/<service>/aws4_request.');
  }
  const [accessKeyId, date, region, service] = scope as [string, string, string, string];
  return { accessKeyId, date, region, service, signedHeaders: signedHeaders.split(';'), signature };
}

/** Parses an x-amz-date value (20060102T150405Z). */
export function parseAmzDate(value: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return undefined;
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
}

function headerValue(headers: SignedRequest['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

const SIGNATURE = /^[0-9a-f]{64}$/;

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

  /** `headers` (at least `host`) are [lower-case name, value] pairs sorted by name, each name once. */
  build(method: string, path: string, query: URLSearchParams, headers: readonly (readonly [string, string])[], payloadHash: string): string {
    let lines = this.head(method, path, query);
    let names = '';
    for (const [name, value] of headers) {
      lines += `${name}:${canonicalHeaderValue(value)}\n`;
      names += names ? `;${name}` : name;
    }
    return `${lines}\n${names}\n${payloadHash}`;
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

const FOLDABLE = /[\t\r\n]| {2}|^ | $/;

/** A header value as SigV4 signs it: line breaks and runs of blanks become one space, trimmed (smithy's rules). */
function canonicalHeaderValue(value: string): string {
  return FOLDABLE.test(value) ? value.replace(/[\r\n]/g, ' ').replace(/[ \t]+/g, ' ').replace(/^ | $/g, '') : value;
}

/**
 * Derived signing keys (four HMACs each) by key, day, region and service: a
 * node signs with one key all day, so verification costs two hashes and one
 * HMAC. An entry is used only while the secret is the one it was derived from.
 */
class SigningKeyCache {
  private readonly entries = new BoundedMap<string, { secret: string; key: KeyObject }>(4096);

  get(accessKeyId: string, secret: string, scope: { date: string; region: string; service: string }): KeyObject {
    const id = `${accessKeyId}/${scope.date}/${scope.region}/${scope.service}`;
    const cached = this.entries.get(id);
    if (cached && cached.secret === secret) return cached.key;
    let key = Buffer.from(`AWS4${secret}`, 'utf8');
    for (const part of [scope.date, scope.region, scope.service, 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
    // A KeyObject, not bytes: each HMAC with it skips importing the key again.
    const signingKey = createSecretKey(key);
    this.entries.set(id, { secret, key: signingKey });
    return signingKey;
  }
}
const signingKeys = new SigningKeyCache();

/** The signature (raw bytes) of a canonical request at `amzDate` for a key and credential scope. */
function signatureOf(canonicalRequest: string, amzDate: string, key: SigningKey, scope: { date: string; region: string; service: string }): Buffer {
  const stringToSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope.date}/${scope.region}/${scope.service}/aws4_request\n${hash('sha256', canonicalRequest, 'hex')}`;
  return createHmac('sha256', signingKeys.get(key.accessKeyId, key.secretAccessKey, scope)).update(stringToSign).digest();
}

/**
 * Verifies a SigV4 header-signed request. Throws WireError with the names the
 * AWS SDKs know (403): MissingAuthenticationTokenException,
 * UnrecognizedClientException, InvalidSignatureException.
 */
export async function verifySigV4(request: SignedRequest, options: VerifyOptions): Promise<VerifiedCaller> {
  const authorization = headerValue(request.headers, 'authorization');
  if (!authorization) throw new WireError('MissingAuthenticationTokenException', 'Missing Authentication Token');
  const auth = parseAuthorization(authorization);

  const key = options.lookup(auth.accessKeyId);
  if (!key) throw new WireError('UnrecognizedClientException', 'The security token included in the request is invalid.');
  if (auth.service !== options.service) {
    throw new WireError('InvalidSignatureException', `Credential should be scoped to correct service: '${options.service}'.`);
  }
  if (!auth.signedHeaders.includes('host')) {
    throw new WireError('InvalidSignatureException', "'Host' must be a signed header.");
  }

  const amzDate = headerValue(request.headers, 'x-amz-date');
  const signingDate = amzDate ? parseAmzDate(amzDate) : undefined;
  if (!signingDate) throw new WireError('IncompleteSignatureException', 'Missing or malformed X-Amz-Date header.');
  if (!amzDate!.startsWith(auth.date)) {
    throw new WireError('InvalidSignatureException', 'Credential date does not match X-Amz-Date.');
  }
  const now = options.now?.() ?? Date.now();
  if (Math.abs(now - signingDate.getTime()) > MAX_CLOCK_SKEW_MS) {
    throw new WireError('InvalidSignatureException', 'Signature expired: the request time is more than 5 minutes away from the server time.');
  }

  const sessionToken = headerValue(request.headers, 'x-amz-security-token');
  if (key.sessionToken !== undefined && sessionToken !== key.sessionToken) {
    throw new WireError('UnrecognizedClientException', 'The security token included in the request is invalid.');
  }

  // Rebuild exactly the signed headers. A claimed payload hash is replaced by
  // the real one, so a lying x-amz-content-sha256 fails the comparison.
  const payloadHash = hash('sha256', request.body, 'hex');
  const names = sortedUnique(auth.signedHeaders);
  const headers = names.map((name): [string, string] => {
    const value = name === 'x-amz-content-sha256' ? payloadHash : headerValue(request.headers, name);
    if (value === undefined) throw new WireError('InvalidSignatureException', `Signed header '${name}' is missing from the request.`);
    return [name, value];
  });
  const canonicalRequest = canonicalRequests.build(request.method, request.path, request.query, headers, payloadHash);
  const expected = signatureOf(canonicalRequest, amzDate!, key, auth);
  const given = SIGNATURE.test(auth.signature) ? Buffer.from(auth.signature, 'hex') : Buffer.alloc(0);
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
  const canonicalHeaders = Object.entries(getCanonicalHeaders({ headers } as unknown as HttpRequest)).sort(([a], [b]) => (a < b ? -1 : 1));
  const canonicalRequest = canonicalRequests.build(request.method, request.url.pathname, request.url.searchParams, canonicalHeaders, payloadHash);
  const scope = { date: amzDate.slice(0, 8), region, service };
  const signature = signatureOf(canonicalRequest, amzDate, credentials, scope).toString('hex');
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope.date}/${region}/${service}/aws4_request, SignedHeaders=${canonicalHeaders.map(([name]) => name).join(';')}, Signature=${signature}`;
  return headers;
}
