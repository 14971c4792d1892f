// The trust policy a role needs so that this server (self-hosted, outside EKS)
// may assume it with session tags: the server's own AWS principal, not the
// service principal pods.eks.amazonaws.com that only EKS can use.
import { parseRoleArn } from './session.js';

export interface TrustPolicyInput {
  /** the role that will be assumed */
  roleArn: string;
  /** who assumes it: the server's principal (or, for targetRoleArn, the association's roleArn) */
  principalArn: string;
  /** required as sts:ExternalId when given (cross-account chaining) */
  externalId?: string;
}

export interface TrustPolicy {
  Version: '2012-10-17';
  Statement: {
    Sid: string;
    Effect: 'Allow';
    Principal: { AWS: string };
    Action: string[];
    Condition?: { StringEquals: Record<string, string> };
  }[];
}

const ASSUMED_ROLE = /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([^/]+)\/[^/]+$/;

/**
 * The principal to trust for a caller identity: an assumed-role session is
 * trusted through its role (arn:aws:iam::<account>:role/<name>; a role with a
 * path needs the path added by hand, the session ARN does not carry it).
 */
export function principalForTrust(callerArn: string): string {
  const m = ASSUMED_ROLE.exec(callerArn);
  return m ? `arn:${m[1]}:iam::${m[2]}:role/${m[3]}` : callerArn;
}

export function accountOf(arn: string): string | undefined {
  return /^arn:[^:]+:[^:]+:[^:]*:(\d{12}):/.exec(arn)?.[1];
}

export function isCrossAccount(roleArn: string, principalArn: string): boolean {
  const principalAccount = accountOf(principalArn);
  return principalAccount !== undefined && parseRoleArn(roleArn)?.accountId !== principalAccount;
}

export function trustPolicy({ roleArn, principalArn, externalId }: TrustPolicyInput): TrustPolicy {
  if (!parseRoleArn(roleArn)) throw new Error(`not an IAM role ARN: ${roleArn}`);
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'PodIdentityServerAssumeRole',
        Effect: 'Allow',
        Principal: { AWS: principalArn },
        Action: ['sts:AssumeRole', 'sts:TagSession'],
        ...(externalId !== undefined && { Condition: { StringEquals: { 'sts:ExternalId': externalId } } }),
      },
    ],
  };
}
