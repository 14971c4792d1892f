// How a command fails: one line on stderr that says what went wrong and,
// where we know, what to do; a non-zero exit; never a stack trace.
// Commands throw CliError (or anything); cli/main.ts prints it.

export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** The message of any thrown value, on one line. */
export function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\s*\n\s*/g, '; ').trim() || 'failed';
}

interface SdkError {
  name?: string;
  message?: string;
  code?: string;
  $fault?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: { statusCode?: number };
  cause?: unknown;
}

/** Error names a pod-identity server (or EKS) answers with: they are the answer, said as is. */
const MODELED = /Exception$|^(AccessDenied|InvalidClientTokenId|SignatureDoesNotMatch|ExpiredToken|ValidationError)$/;

/**
 * An AWS SDK failure against `endpoint`, as one line: a modelled error as
 * `Name: message`; an answer no AWS client can read as "not our API"; a
 * network failure as "cannot reach"; no credentials as where to find keys.
 */
export function explainAwsError(error: unknown, endpoint: string, keysHint: string): string {
  const e = (error ?? {}) as SdkError;
  const name = e.name ?? '';
  if (name === 'CredentialsProviderError') return `no AWS keys to sign with: ${keysHint}`;
  const status = e.$metadata?.httpStatusCode ?? e.$response?.statusCode;
  const network = networkCode(error);
  if (network) {
    const why = network === 'ECONNREFUSED' ? 'connection refused' : network === 'ENOTFOUND' ? 'no such host' : network;
    return `cannot reach ${endpoint}: ${why} (is the server running there?)`;
  }
  if (name === 'TimeoutError' || name === 'RequestTimeout') return `${endpoint} did not answer in time`;
  const unreadable = name === 'SyntaxError' || name === 'Unknown' || name === 'UnknownError' || /Deserialization error|Unexpected token/.test(e.message ?? '');
  if (unreadable || (!MODELED.test(name) && status !== undefined && status !== 200)) {
    return `${endpoint} is not a pod-identity API listener: it answered${status ? ` HTTP ${status}` : ''} in a form no AWS client reads (use the server's listen address, e.g. http://127.0.0.1:8080, not its metrics or webhook port)`;
  }
  return `${name || 'Error'}: ${oneLine(error)}`;
}

function networkCode(error: unknown): string | undefined {
  for (let e = error as SdkError | undefined, depth = 0; e && depth < 4; e = e.cause as SdkError | undefined, depth++) {
    if (typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code)) return e.code;
  }
  return undefined;
}
