// The aws-sts issuer: AWS STS AssumeRole with the server's own AWS principal
// (the default credential chain), the six transitive session tags, the
// association's session policy, and targetRoleArn chaining (a second
// AssumeRole with the first session's credentials and the association's
// externalId, at most one hour). stsEndpoint/region overrides make moto,
// LocalStack or MinIO work. STS failures map to the EKS Auth error names.
// Every call has a deadline and every answer a size limit, read as it streams.
import { Readable } from 'node:stream';
import { AssumeRoleCommand, STSClient, type AssumeRoleCommandInput, type Credentials } from '@aws-sdk/client-sts';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { HttpRequest, HttpResponse } from '@smithy/protocol-http';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, HttpHandlerOptions } from '@smithy/types';
import type { Registry } from 'prom-client';
import { WireError } from '../../lib/errors.js';
import { limitStream } from '../../lib/http.js';
import type { Logger } from '../../lib/logger.js';
import { hotCounter, hotHistogram, type HotCounter, type HotHistogram } from '../../lib/metrics.js';
import { MAX_CHAINED_SECONDS } from '../session.js';
import { SESSION_TAG_KEYS } from '../../api/eks.js';
import type { CredentialIssuer, IssuedCredentials, IssueRequest } from './issuer.js';

export interface StsIssuerOptions {
  region: string;
  /** e.g. http://127.0.0.1:5000 (moto) */
  endpoint?: string;
  durationSeconds: number;
  /** the server's own principal; the SDK's default chain when absent */
  credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  logger: Logger;
  /** where the AssumeRole latency and error metrics go */
  registry?: Registry;
}

/** The first hop of a chain only lives long enough to make the second call. */
const FIRST_HOP_SECONDS = 900;
/** An AssumeRole answer is a few KB; a larger one is not STS. */
const MAX_STS_ANSWER_BYTES = 64 * 1024;
/** One AssumeRole call, retries and body included, ends by then. */
const STS_CALL_DEADLINE_MS = 5_000;

/** The SDK's Node handler, with every answer's body cut off past MAX_STS_ANSWER_BYTES while it streams. */
class BoundedHttpHandler extends NodeHttpHandler {
  override async handle(request: HttpRequest, options?: HttpHandlerOptions): Promise<{ response: HttpResponse }> {
    const answer = await super.handle(request, options);
    const body: unknown = answer.response.body;
    if (body instanceof Readable) answer.response.body = limitStream(body, MAX_STS_ANSWER_BYTES, 'STS');
    return answer;
  }
}

const THROTTLED = new Set(['Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException', 'SlowDown']);
const DENIED = new Set(['AccessDenied', 'AccessDeniedException', 'RegionDisabledException']);
const BAD_REQUEST = new Set(['MalformedPolicyDocument', 'MalformedPolicyDocumentException', 'PackedPolicyTooLarge', 'PackedPolicyTooLargeException', 'ValidationError', 'InvalidParameterValue']);
const UNAVAILABLE = new Set(['ServiceUnavailable', 'ServiceUnavailableException', 'InternalFailure', 'InternalError', 'TimeoutError', 'RequestTimeout', 'RequestTimeoutException']);

interface SdkError {
  name?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

/** STS's answer as an EKS Auth error: what the caller may learn, nothing of the server's own credentials. */
export function mapStsError(error: unknown, roleArn: string): WireError {
  const e = (error ?? {}) as SdkError;
  const name = e.name ?? '';
  const status = e.$metadata?.httpStatusCode;
  if (THROTTLED.has(name) || status === 429) return new WireError('ThrottlingException', 'STS is throttling AssumeRole; retry later.', { reason: 'sts_throttled' });
  if (DENIED.has(name)) {
    return new WireError('AccessDeniedException', `STS denied AssumeRole on ${roleArn}: does the role trust this server's principal (see pod-identity trust-policy)?`, { status: 400, reason: 'sts_denied' });
  }
  if (BAD_REQUEST.has(name)) return new WireError('InvalidRequestException', `STS refused AssumeRole on ${roleArn} (${name}).`, { reason: 'sts_refused' });
  // A 2xx that cannot be read was cut off (the size limit, the deadline, a reset): STS is not answering properly.
  const unreadable = status !== undefined && status >= 200 && status < 300;
  if (UNAVAILABLE.has(name) || unreadable || (status !== undefined && status >= 500) || (status === undefined && (e.code !== undefined || name === 'Error' || name === 'AbortError'))) {
    return new WireError('ServiceUnavailableException', 'STS is unavailable; retry later.', { reason: 'sts_unavailable' });
  }
  return new WireError('InternalServerException', 'The credential issuer failed.', { reason: 'issuer_failed' });
}

function complete(credentials: Credentials | undefined): credentials is Required<Pick<Credentials, 'AccessKeyId' | 'SecretAccessKey' | 'SessionToken' | 'Expiration'>> {
  return !!credentials?.AccessKeyId && !!credentials.SecretAccessKey && !!credentials.SessionToken && !!credentials.Expiration;
}

export class StsIssuer implements CredentialIssuer {
  readonly usesSessionTags = true;
  private readonly client: STSClient;
  private readonly latency?: HotHistogram;
  private readonly errors?: HotCounter;

  constructor(private readonly options: StsIssuerOptions) {
    this.client = this.makeClient(options.credentials);
    if (options.registry) {
      this.latency = hotHistogram(options.registry, {
        name: 'pod_identity_sts_assume_role_duration_seconds',
        help: 'STS AssumeRole latency per call (two calls for a targetRoleArn chain), by outcome: ok, or the EKS Auth error it became',
        labelName: 'outcome',
        buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      });
      this.errors = hotCounter(options.registry, {
        name: 'pod_identity_sts_assume_role_errors_total',
        help: 'Failed STS AssumeRole calls, by the EKS Auth error they became (ThrottlingException, AccessDeniedException, InvalidRequestException, ServiceUnavailableException, InternalServerException)',
        labelNames: ['error'],
      });
    }
  }

  private makeClient(credentials: StsIssuerOptions['credentials']): STSClient {
    return new STSClient({
      region: this.options.region,
      ...(this.options.endpoint && { endpoint: this.options.endpoint }),
      ...(credentials && { credentials }),
      // The agent gives up after 1 s: one retry at most, short timeouts.
      maxAttempts: 2,
      requestHandler: new BoundedHttpHandler({ connectionTimeout: 1_000, requestTimeout: 3_000 }),
    });
  }

  async issue({ association, sessionName, tags, transitiveTags = true }: IssueRequest): Promise<IssuedCredentials> {
    const chained = association.targetRoleArn !== undefined;
    const first: AssumeRoleCommandInput = {
      RoleArn: association.roleArn,
      RoleSessionName: sessionName,
      DurationSeconds: chained ? FIRST_HOP_SECONDS : this.options.durationSeconds,
      // without TransitiveTagKeys the tags stay on this session: roles it assumes keep their tag budget
      ...(tags && { Tags: tags, ...(transitiveTags && { TransitiveTagKeys: tags.length === SESSION_TAG_KEYS.length ? [...SESSION_TAG_KEYS] : tags.map((tag) => tag.Key) }) }),
      ...(!chained && association.policy && { Policy: association.policy }),
    };
    let answer = await this.assumeRole(this.client, first);
    if (chained) {
      const hop = answer.Credentials!;
      const chainClient = this.makeClient({ accessKeyId: hop.AccessKeyId!, secretAccessKey: hop.SecretAccessKey!, sessionToken: hop.SessionToken! });
      try {
        // Transitive tags travel with the session; setting them again would be refused.
        // Tags that are not transitive are set again, so the pod's own session still carries them.
        answer = await this.assumeRole(chainClient, {
          RoleArn: association.targetRoleArn!,
          RoleSessionName: sessionName,
          DurationSeconds: Math.min(this.options.durationSeconds, MAX_CHAINED_SECONDS),
          ...(tags && !transitiveTags && { Tags: tags }),
          ...(association.externalId && { ExternalId: association.externalId }),
          ...(association.policy && { Policy: association.policy }),
        });
      } finally {
        chainClient.destroy();
      }
    }
    const credentials = answer.Credentials!;
    return {
      accessKeyId: credentials.AccessKeyId!,
      secretAccessKey: credentials.SecretAccessKey!,
      sessionToken: credentials.SessionToken!,
      expiration: credentials.Expiration!,
      assumedRoleUser: { arn: answer.AssumedRoleUser!.Arn!, assumeRoleId: answer.AssumedRoleUser!.AssumedRoleId! },
    };
  }

  private async assumeRole(client: STSClient, input: AssumeRoleCommandInput) {
    let answer;
    const started = performance.now();
    try {
      answer = await client.send(new AssumeRoleCommand(input), { abortSignal: AbortSignal.timeout(STS_CALL_DEADLINE_MS) });
    } catch (error) {
      const wire = mapStsError(error, input.RoleArn!);
      this.latency?.observe(wire.code, (performance.now() - started) / 1000);
      this.errors?.add(wire.code);
      this.options.logger.warn({ roleArn: input.RoleArn, stsError: (error as SdkError).name, status: (error as SdkError).$metadata?.httpStatusCode, answer: wire.code }, 'STS AssumeRole failed');
      throw wire;
    }
    this.latency?.observe('ok', (performance.now() - started) / 1000);
    if (!complete(answer.Credentials) || !answer.AssumedRoleUser?.Arn || !answer.AssumedRoleUser.AssumedRoleId) {
      this.errors?.add('InternalServerException');
      throw new WireError('InternalServerException', 'STS answered without credentials.', { reason: 'issuer_failed' });
    }
    return answer;
  }

  close(): void {
    this.client.destroy();
  }
}
