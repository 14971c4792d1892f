// The container-credentials endpoint's answer (DESIGN §3.3), the one the AWS
// SDKs' container provider parses: GET /v1/credentials → 200
// {"AccessKeyId","SecretAccessKey","Token","AccountId","Expiration"}, and
// {"Code","Message"} for a failure.

/** Role credentials for one pod, what the endpoint serves; the agent holds them only until encodeCredentials has made the body it keeps. */
export interface PodCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  /** 12-digit account id, taken from the assumed-role ARN */
  readonly accountId: string;
  /** epoch milliseconds */
  readonly expiresAt: number;
}

/** `2024-01-01T00:00:00Z`: RFC 3339 in UTC with `Z`, whole seconds (the JS SDK rejects offsets). */
export function formatExpiration(epochMs: number): string {
  const iso = new Date(Math.floor(epochMs / 1000) * 1000).toISOString();
  return `${iso.slice(0, 19)}Z`;
}

/**
 * The exact 200 body (field names the SDKs parse). The bytes get their own
 * memory, not a slice of Node's shared 8 KiB pool: they live as long as the
 * cache entry, and a pooled slice would keep its whole slab — and the
 * short-lived buffers cut from it — alive with it.
 */
export function encodeCredentials(credentials: PodCredentials): Buffer {
  const json = JSON.stringify({
    AccessKeyId: credentials.accessKeyId,
    SecretAccessKey: credentials.secretAccessKey,
    Token: credentials.sessionToken,
    AccountId: credentials.accountId,
    Expiration: formatExpiration(credentials.expiresAt),
  });
  const body = Buffer.allocUnsafeSlow(Buffer.byteLength(json));
  body.write(json);
  return body;
}

/** A failure's body: JSON the JS SDK reads (`Code`, `Message`). */
export function encodeFailure(code: string, message: string): Buffer {
  return Buffer.from(JSON.stringify({ Code: code, Message: message }));
}
