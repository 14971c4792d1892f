// What a role session looks like (DESIGN §3.6), as pure functions: the session
// name STS accepts, the six transitive session tags, and the ARNs the agent
// and the SDKs parse.
import { SESSION_TAG_KEYS, type Association } from '../api/eks.js';
import type { PodIdentityClaims } from './claims.js';

const MAX_SESSION_NAME = 64;
/** Chained role sessions (role → targetRole) last at most one hour. */
export const MAX_CHAINED_SECONDS = 3600;

export interface SessionTag {
  Key: string;
  Value: string;
}


const SESSION_NAME_SAFE = /^[\w+=,.@-]*$/;

/**
 * `eks-<cluster>-<pod>-<uuid>`, characters outside STS's [\w+=,.@-] replaced
 * by "-", cut to 64. `uuid` is a UUID (randomUUID), whose hex digits and
 * dashes are always allowed.
 */
export function roleSessionName(clusterName: string, podName: string, uuid: string): string {
  const name = `eks-${clusterName}-${podName}-${uuid}`;
  // The names are tested, not the joined string: they are flat strings, which
  // V8 matches on its fast path, while a new string (randomUUID's too) is
  // first flattened through the runtime.
  const safe = SESSION_NAME_SAFE.test(clusterName) && SESSION_NAME_SAFE.test(podName);
  return (safe ? name : name.replace(/[^\w+=,.@-]/g, '-')).slice(0, MAX_SESSION_NAME);
}

const TAG_SAFE = /^[\w .:/=+\-@]{0,256}$/;

/** STS tag values allow letters, digits, spaces and _.:/=+-@, up to 256 characters. */
function tagValue(value: string): string {
  // ASCII names (nearly all) pass as they are; only others pay for the Unicode-aware rewrite.
  return TAG_SAFE.test(value) ? value : value.replace(/[^\p{L}\p{Z}\p{N}_.:/=+\-@]/gu, '-').slice(0, 256);
}

export function sessionTags(clusterArn: string, clusterName: string, claims: PodIdentityClaims): SessionTag[] {
  const values = [clusterArn, clusterName, claims.namespace, claims.serviceAccount, claims.podName, claims.podUid];
  return SESSION_TAG_KEYS.map((Key, i) => ({ Key, Value: tagValue(values[i]!) }));
}

export function clusterArn(region: string, accountId: string, clusterName: string): string {
  return `arn:aws:eks:${region}:${accountId}:cluster/${clusterName}`;
}

const ROLE_ARN = /^arn:(aws[a-z-]*):iam::(\d{12}):role\/(?:.*\/)?([\w+=,.@-]{1,64})$/;

export interface RoleParts {
  partition: string;
  accountId: string;
  /** the name without its path */
  roleName: string;
}

export function parseRoleArn(arn: string): RoleParts | undefined {
  const m = ROLE_ARN.exec(arn);
  return m ? { partition: m[1]!, accountId: m[2]!, roleName: m[3]! } : undefined;
}

/** `arn:aws:sts::<account>:assumed-role/<role-name>/<session>`, the ARN STS gives a role session. */
export function assumedRoleArn(roleArn: string, sessionName: string): string {
  const role = parseRoleArn(roleArn);
  if (!role) throw new Error(`not a role ARN: ${roleArn}`);
  return `arn:${role.partition}:sts::${role.accountId}:assumed-role/${role.roleName}/${sessionName}`;
}

/** The role the credentials are finally for: targetRoleArn when chaining, else roleArn. */
export function effectiveRoleArn(association: Association): string {
  return association.targetRoleArn ?? association.roleArn;
}
