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

/** What a role's trust policy lets one principal do, as far as the policy alone says. */
export interface TrustVerdict {
  assumeRole: boolean;
  tagSession: boolean;
  /** conditions and statements that could not be weighed here, for the operator to check */
  notes: string[];
}

interface Statement {
  Effect?: unknown;
  Principal?: unknown;
  NotPrincipal?: unknown;
  Action?: unknown;
  NotAction?: unknown;
  Condition?: unknown;
}

const asList = (value: unknown): unknown[] => (Array.isArray(value) ? value : value === undefined ? [] : [value]);

/** IAM's wildcard match: * any run, ? one character, case-insensitive for actions. */
function wildcard(pattern: string, text: string): boolean {
  const source = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.');
  return new RegExp(`^${source}$`, 'i').test(text);
}

function principalMatches(principal: unknown, principalArn: string): boolean {
  if (principal === '*') return true;
  if (typeof principal !== 'object' || principal === null) return false;
  const account = accountOf(principalArn);
  return asList((principal as { AWS?: unknown }).AWS).some(
    (entry) => entry === '*' || entry === principalArn || (account !== undefined && (entry === account || entry === `arn:aws:iam::${account}:root`)),
  );
}

/**
 * Whether a trust policy (IAM's AssumeRolePolicyDocument: JSON, or the
 * URL-encoded JSON that GetRole answers) allows `principalArn` to call
 * sts:AssumeRole and sts:TagSession. A matching Deny wins over any Allow;
 * conditions are not evaluated, only reported.
 */
export function evaluateTrust(document: string | object, principalArn: string): TrustVerdict {
  let parsed: unknown = document;
  if (typeof document === 'string') {
    const text = document.trimStart().startsWith('{') ? document : decodeURIComponent(document);
    parsed = JSON.parse(text);
  }
  const statements = asList((parsed as { Statement?: unknown } | null)?.Statement) as Statement[];
  const verdict: TrustVerdict = { assumeRole: false, tagSession: false, notes: [] };
  const denied = { assumeRole: false, tagSession: false };
  for (const statement of statements) {
    if (statement.NotPrincipal !== undefined || statement.NotAction !== undefined) {
      verdict.notes.push('a statement with NotPrincipal or NotAction was not weighed');
      continue;
    }
    if (!principalMatches(statement.Principal, principalArn)) continue;
    const actions = asList(statement.Action).filter((a): a is string => typeof a === 'string');
    const covers = (action: string) => actions.some((pattern) => wildcard(pattern, action));
    const target = statement.Effect === 'Deny' ? denied : statement.Effect === 'Allow' ? verdict : undefined;
    if (!target) continue;
    if (covers('sts:AssumeRole')) target.assumeRole = true;
    if (covers('sts:TagSession')) target.tagSession = true;
    if (statement.Effect === 'Allow' && statement.Condition !== undefined && (covers('sts:AssumeRole') || covers('sts:TagSession'))) {
      verdict.notes.push(`the Allow holds only under its conditions: ${JSON.stringify(statement.Condition).slice(0, 200)}`);
    }
  }
  if (denied.assumeRole) verdict.assumeRole = false;
  if (denied.tagSession) verdict.tagSession = false;
  return verdict;
}
