// What a role session looks like (DESIGN §3.6), as pure functions: the session
// name STS accepts (EKS's, or the association's template), the six transitive
// session tags and the association's own, and the ARNs the agent and the SDKs
// parse.
import { POD_LABEL_PLACEHOLDER, SESSION_TAG_KEYS, type Association } from '../api/eks.js';
import type { PodIdentityClaims } from './claims.js';
import { refused } from './claims.js';

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

/** What a session name template's placeholders stand for. */
export interface SessionNameParts {
  cluster: string;
  namespace: string;
  serviceAccount: string;
  pod: string;
  /** a random suffix, so that sessions of one pod stay apart */
  random: string;
}

/**
 * The association's sessionNameTemplate filled in: placeholders replaced,
 * characters outside STS's [\w+=,.@-] replaced by "-", cut to 64.
 */
export function templatedSessionName(template: string, parts: SessionNameParts): string {
  const name = template.replace(/\{(cluster|namespace|serviceAccount|pod|random)\}/g, (_, key: keyof SessionNameParts) => parts[key]);
  return name.replace(/[^\w+=,.@-]/g, '-').slice(0, MAX_SESSION_NAME);
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

/** Whether any of the association's session tag values reads a pod label. */
export function readsPodLabels(sessionTags: Readonly<Record<string, string>>): boolean {
  for (const value of Object.values(sessionTags)) if (value.includes('{{pod.labels.')) return true;
  return false;
}

/**
 * The association's own session tags, with `{{pod.labels.<key>}}` replaced by
 * the pod's label. A label the pod lacks refuses the request, naming it: an
 * empty tag would pass an ABAC condition that was meant to fail closed.
 */
export function customSessionTags(sessionTags: Readonly<Record<string, string>>, podLabels: Readonly<Record<string, string>> | undefined, podName: string): SessionTag[] {
  return Object.entries(sessionTags).map(([Key, template]) => {
    const value = template.replace(POD_LABEL_PLACEHOLDER, (_, label: string) => {
      const found = podLabels?.[label];
      if (found === undefined) {
        throw refused('InvalidRequestException', 'pod_label_missing', `Session tag ${Key} needs label ${label}, which pod ${podName} does not have.`);
      }
      return found;
    });
    return { Key, Value: tagValue(value) };
  });
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
