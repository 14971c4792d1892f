// The EKS Auth API (restJson1, signing name `eks-auth`, DESIGN §3.2):
// POST /clusters/{clusterName}/assume-role-for-pod-identity. One request and
// one answer shape for both ends: the server's route decodes the request and
// answers an AssumeRoleResponse; the agent decodes that answer, or the error
// in its place.
import { WireError, type WireErrorCode } from '../lib/errors.js';

export interface AssumeRoleRequest {
  clusterName: string;
  token: string;
  eksNodeName?: string;
  instanceId?: string;
  zone?: string;
}

/** The 200 body, every member present. */
export interface AssumeRoleResponse {
  subject: { namespace: string; serviceAccount: string };
  audience: string;
  podIdentityAssociation: { associationArn: string; associationId: string };
  assumedRoleUser: { arn: string; assumeRoleId: string };
  /** `expiration` in epoch seconds */
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string; expiration: number };
}

const CLUSTER_NAME = /^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$/;
/** Projected tokens are a few KB; anything far larger is not one. */
const MAX_TOKEN_LENGTH = 16 * 1024;
const OPTIONAL_STRINGS = ['eksNodeName', 'instanceId', 'zone'] as const;

/** Validates the path parameter and JSON body; bad input is InvalidParameterException / InvalidRequestException. */
export function decodeAssumeRoleRequest(clusterName: string, body: Buffer): AssumeRoleRequest {
  if (!CLUSTER_NAME.test(clusterName)) {
    throw new WireError('InvalidParameterException', 'clusterName must be 1-100 characters of [0-9A-Za-z-_], starting alphanumeric.');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new WireError('InvalidRequestException', 'The request body must be a JSON object.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new WireError('InvalidRequestException', 'The request body must be a JSON object.');
  const input = parsed as Record<string, unknown>;
  if (typeof input.token !== 'string' || input.token.length === 0) throw new WireError('InvalidParameterException', 'token is required.');
  if (input.token.length > MAX_TOKEN_LENGTH) throw new WireError('InvalidParameterException', `token must be at most ${MAX_TOKEN_LENGTH} characters.`);
  const request: AssumeRoleRequest = { clusterName, token: input.token };
  for (const name of OPTIONAL_STRINGS) {
    const value = input[name];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'string' || value.length === 0 || value.length > 256) throw new WireError('InvalidParameterException', `${name} must be a string of 1-256 characters.`);
    request[name] = value;
  }
  return request;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const text = (value: unknown): string => (typeof value === 'string' ? value : '');

/**
 * Reads a 200 answer; undefined when what a caller needs is missing or
 * malformed: the credentials and an assumed-role ARN naming a 12-digit account
 * (the agent serves that account id). The other members are taken as given.
 */
export function decodeAssumeRoleResponse(body: Buffer): AssumeRoleResponse | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isRecord(parsed)) return undefined;
  const c = parsed.credentials;
  const user = parsed.assumedRoleUser;
  if (!isRecord(c) || !isRecord(user)) return undefined;
  if (typeof c.accessKeyId !== 'string' || typeof c.secretAccessKey !== 'string' || typeof c.sessionToken !== 'string' || typeof user.arn !== 'string') return undefined;
  // restJson1 timestamps are epoch seconds; an ISO string is tolerated.
  const expiration = typeof c.expiration === 'number' ? c.expiration : typeof c.expiration === 'string' ? Date.parse(c.expiration) / 1000 : NaN;
  if (!Number.isFinite(expiration) || assumedRoleAccount(user.arn) === undefined) return undefined;
  const subject = isRecord(parsed.subject) ? parsed.subject : {};
  const association = isRecord(parsed.podIdentityAssociation) ? parsed.podIdentityAssociation : {};
  return {
    subject: { namespace: text(subject.namespace), serviceAccount: text(subject.serviceAccount) },
    audience: text(parsed.audience),
    podIdentityAssociation: { associationArn: text(association.associationArn), associationId: text(association.associationId) },
    assumedRoleUser: { arn: user.arn, assumeRoleId: text(user.assumeRoleId) },
    credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken, expiration },
  };
}

/** The 12-digit account of an ARN (its fifth field), or undefined. */
export function assumedRoleAccount(arn: string): string | undefined {
  const account = arn.split(':')[4] ?? '';
  return /^\d{12}$/.test(account) ? account : undefined;
}

/** Error codes of the EKS Auth model (and SigV4 failures), kept as the server said them. */
const KNOWN_CODES = new Set<WireErrorCode>([
  'AccessDeniedException',
  'ExpiredTokenException',
  'InvalidParameterException',
  'InvalidRequestException',
  'InvalidTokenException',
  'ResourceNotFoundException',
  'ThrottlingException',
  'InternalServerException',
  'ServiceUnavailableException',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'IncompleteSignatureException',
  'MissingAuthenticationTokenException',
]);

function codeForStatus(status: number): WireErrorCode {
  if (status === 429) return 'ThrottlingException';
  if (status === 503) return 'ServiceUnavailableException';
  if (status >= 500) return 'InternalServerException';
  if (status === 404) return 'ResourceNotFoundException';
  if (status === 403) return 'AccessDeniedException';
  return 'InvalidRequestException';
}

/** An error answer as a WireError with the server's status and code (an unknown code: the one its status means). */
export function decodeErrorResponse(response: { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }): WireError {
  let code: string | undefined;
  let message: string | undefined;
  const header = response.headers['x-amzn-errortype'];
  if (typeof header === 'string') code = header;
  try {
    const body = JSON.parse(response.body.toString('utf8')) as { __type?: unknown; code?: unknown; message?: unknown; Message?: unknown };
    if (code === undefined && typeof body.__type === 'string') code = body.__type;
    if (code === undefined && typeof body.code === 'string') code = body.code;
    const m = body.message ?? body.Message;
    if (typeof m === 'string') message = m;
  } catch {
    // not JSON: the status decides
  }
  // "aws.protocoltests#Name:http://…" → "Name"
  const name = code?.split(':')[0]?.split('#').pop();
  const known = name !== undefined && KNOWN_CODES.has(name as WireErrorCode) ? (name as WireErrorCode) : codeForStatus(response.status);
  return new WireError(known, message ?? `EKS Auth answered HTTP ${response.status}.`, { status: response.status });
}
