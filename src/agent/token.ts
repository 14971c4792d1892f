// The agent's own check of a service-account token before it spends an
// upstream call on it: present, one header line, shaped like a JWT, not
// expired. The signature is the server's business (the agent has no keys);
// this only turns away what the server would refuse anyway.
import { WireError } from '../lib/errors.js';

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
/** a token may say it is valid from a little in the future (clock skew between nodes) */
const NOT_BEFORE_LEEWAY_MS = 60_000;

/**
 * Returns when the token expires (epoch ms; Infinity when it has no `exp`).
 * Throws WireError 400 for an empty, multi-line, unparseable or expired token.
 */
export function readTokenExpiry(token: string, nowMs: number): number {
  if (token.length === 0) throw new WireError('InvalidParameterException', 'Service account token cannot be empty.');
  if (token.includes('\r') || token.includes('\n')) {
    throw new WireError('InvalidParameterException', 'Service account token must not contain line breaks.');
  }
  if (!JWT_SHAPE.test(token)) throw new WireError('InvalidTokenException', 'Service account token cannot be parsed: not a JWT.');
  const payloadPart = token.slice(token.indexOf('.') + 1, token.lastIndexOf('.'));
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payloadPart, 'base64url').toString('utf8'));
  } catch {
    throw new WireError('InvalidTokenException', 'Service account token cannot be parsed: the payload is not JSON.');
  }
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
    throw new WireError('InvalidTokenException', 'Service account token cannot be parsed: the payload is not a JSON object.');
  }
  const { exp, nbf } = claims as { exp?: unknown; nbf?: unknown };
  if (exp !== undefined && typeof exp !== 'number') throw new WireError('InvalidTokenException', 'Service account token has a non-numeric exp claim.');
  if (nbf !== undefined && typeof nbf !== 'number') throw new WireError('InvalidTokenException', 'Service account token has a non-numeric nbf claim.');
  const expiresAt = exp === undefined ? Infinity : exp * 1000;
  if (expiresAt <= nowMs) throw new WireError('ExpiredTokenException', 'Service account token has expired.');
  if (nbf !== undefined && nbf * 1000 > nowMs + NOT_BEFORE_LEEWAY_MS) {
    throw new WireError('InvalidTokenException', 'Service account token is not valid yet (nbf is in the future).');
  }
  return expiresAt;
}
