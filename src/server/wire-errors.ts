// The one place that turns errors into wire answers for the server's
// protocols: restJson1 (EKS, EKS Auth) and the AWS Query protocol (STS).
// Unknown errors never leak their message across the trust boundary.
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { isWireError, WireError } from '../lib/errors.js';
import type { ErrorProtocol } from './router.js';

export function newRequestId(): string {
  return randomUUID();
}

/** Any thrown value as a WireError; unknown failures become a generic 500 of the route's protocol. */
export function toWireError(error: unknown, internalCode: 'ServerException' | 'InternalServerException' = 'ServerException'): WireError {
  if (isWireError(error)) return error;
  return new WireError(internalCode, 'An internal error occurred.');
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

/** The names STS itself gives these failures (the SDKs and the AWS CLI print them). */
const STS_CODES: Partial<Record<WireError['code'], string>> = {
  UnrecognizedClientException: 'InvalidClientTokenId',
  InvalidSignatureException: 'SignatureDoesNotMatch',
  ExpiredTokenException: 'ExpiredToken',
  MissingAuthenticationTokenException: 'MissingAuthenticationToken',
  IncompleteSignatureException: 'IncompleteSignature',
};

export function sendWireError(res: ServerResponse, error: WireError, requestId: string, protocol: ErrorProtocol = 'rest-json'): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (protocol === 'aws-query') {
    // STS: <ErrorResponse><Error><Type>Sender</Type><Code>…</Code><Message>…</Message></Error><RequestId>…</RequestId></ErrorResponse>
    const code = STS_CODES[error.code] ?? error.code;
    const type = error.status >= 500 ? 'Receiver' : 'Sender';
    const xml =
      '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">' +
      `<Error><Type>${type}</Type><Code>${escapeXml(code)}</Code><Message>${escapeXml(error.message)}</Message></Error>` +
      `<RequestId>${requestId}</RequestId></ErrorResponse>`;
    res.writeHead(error.status, { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(xml), 'x-amzn-requestid': requestId });
    res.end(xml);
    return;
  }
  const payload = JSON.stringify({ __type: error.code, message: error.message });
  res.writeHead(error.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
    'x-amzn-errortype': error.code,
    'x-amzn-requestid': requestId,
  });
  res.end(payload);
}
