// One error type for everything that crosses the wire. The `code` is the
// AWS error name the SDKs switch on (`__type`, `x-amzn-ErrorType`); the
// status is what that name means on the wire. Callers pick a code, never
// parse a message.

export type WireErrorCode =
  // authentication (SigV4), shared by every signed API
  | 'MissingAuthenticationTokenException'
  | 'UnrecognizedClientException'
  | 'InvalidSignatureException'
  | 'IncompleteSignatureException'
  | 'AccessDeniedException'
  // EKS association API
  | 'InvalidParameterException'
  | 'InvalidRequestException'
  | 'ResourceNotFoundException'
  | 'ResourceInUseException'
  | 'ResourceLimitExceededException'
  | 'ServerException'
  | 'NotFoundException'
  | 'BadRequestException'
  // EKS Auth API
  | 'ExpiredTokenException'
  | 'InvalidTokenException'
  | 'ThrottlingException'
  | 'InternalServerException'
  | 'ServiceUnavailableException'
  // generic HTTP
  | 'RequestEntityTooLargeException'
  | 'UnsupportedMediaTypeException'
  | 'UnknownOperationException';

const DEFAULT_STATUS: Record<WireErrorCode, number> = {
  MissingAuthenticationTokenException: 403,
  UnrecognizedClientException: 403,
  InvalidSignatureException: 403,
  IncompleteSignatureException: 403,
  AccessDeniedException: 403,
  InvalidParameterException: 400,
  InvalidRequestException: 400,
  ResourceNotFoundException: 404,
  ResourceInUseException: 409,
  ResourceLimitExceededException: 400,
  ServerException: 500,
  NotFoundException: 404,
  BadRequestException: 400,
  ExpiredTokenException: 400,
  InvalidTokenException: 400,
  ThrottlingException: 429,
  InternalServerException: 500,
  ServiceUnavailableException: 503,
  RequestEntityTooLargeException: 413,
  UnsupportedMediaTypeException: 415,
  UnknownOperationException: 404,
};

export class WireError extends Error {
  readonly code: WireErrorCode;
  readonly status: number;
  /** a finer, stable code of why, for audit records and metrics (never sent); the producer's own fixed set */
  readonly reason?: string;

  constructor(code: WireErrorCode, message: string, options: { status?: number; cause?: unknown; reason?: string } = {}) {
    super(message, { cause: options.cause });
    this.name = code;
    this.code = code;
    this.status = options.status ?? DEFAULT_STATUS[code];
    if (options.reason !== undefined) this.reason = options.reason;
  }
}

export function isWireError(error: unknown): error is WireError {
  return error instanceof WireError;
}
