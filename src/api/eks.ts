// Wire shapes of the EKS Pod Identity association API (restJson1, DESIGN §3.1):
// input validation with the rules EKS applies, and the encoders that turn an
// Association into the JSON the AWS SDKs parse (timestamps as epoch seconds).
import { z } from 'zod';
import { WireError } from '../lib/errors.js';

/**
 * An association as the EKS API describes it (PodIdentityAssociation), with its
 * timestamps in epoch milliseconds: what the store keeps and every core reads.
 */
export interface Association {
  clusterName: string;
  namespace: string;
  serviceAccount: string;
  roleArn: string;
  associationId: string;
  associationArn: string;
  tags: Record<string, string>;
  /** epoch milliseconds */
  createdAt: number;
  /** epoch milliseconds */
  modifiedAt: number;
  ownerArn?: string;
  disableSessionTags: boolean;
  targetRoleArn?: string;
  externalId?: string;
  policy?: string;
  /** our extension: session tags beyond the six of EKS; values may read pod labels (`{{pod.labels.team}}`) */
  sessionTags?: Record<string, string>;
  /** our extension: the role session name, with {cluster} {namespace} {serviceAccount} {pod} {random}; EKS's when absent */
  sessionNameTemplate?: string;
  /** our extension: false keeps the session tags off TransitiveTagKeys; absent means true, as in EKS */
  transitiveSessionTags?: boolean;
}


const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** arn:<partition>:iam::<account>:role/<optional path/><name> */
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/(?:[\x21-\x7e]+\/)?[\w+=,.@-]{1,64}$/;

/** A name, `*`, or the start of a name followed by `*` (`build-*`): what an association may hold. */
const NAMESPACE_PREFIX = /^[a-z0-9][-a-z0-9]*\*$/;
const SERVICE_ACCOUNT_PREFIX = /^[a-z0-9][-a-z0-9.]*\*$/;
const namespacePattern = z
  .string()
  .max(63, 'must be at most 63 characters')
  .refine((v) => v === '*' || NAMESPACE_PREFIX.test(v) || DNS1123_LABEL.test(v), 'must be a DNS-1123 label (lowercase alphanumerics and -), "*", or a prefix ending in "*"');
const serviceAccountPattern = z
  .string()
  .max(253, 'must be at most 253 characters')
  .refine((v) => v === '*' || SERVICE_ACCOUNT_PREFIX.test(v) || DNS1123_SUBDOMAIN.test(v), 'must be a DNS-1123 subdomain (lowercase alphanumerics, - and .), "*", or a prefix ending in "*"');
const roleArn = z.string().max(2048).regex(ROLE_ARN, 'must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)');
/** The EKS model leaves it a plain string; SDKs send a UUID. 1-64 printable ASCII characters keep the store's key sane. */
const clientRequestToken = z.string().min(1, 'must be 1-64 characters').max(64, 'must be 1-64 characters').regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');
const policy = z
  .string()
  .max(2048, 'must be at most 2048 characters')
  .refine((text) => {
    try {
      const parsed: unknown = JSON.parse(text);
      return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed);
    } catch {
      return false;
    }
  }, 'must be a JSON policy document');

/** EKS's limits on a resource's tags. */
export const MAX_TAGS = 50;
/** Letters, digits and spaces of any script, and _ . : / = + - @ (EKS's tag character set). */
const TAG_CHARACTERS = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;

/** Why a tag key is not one EKS takes, or undefined. Lengths count characters, as EKS does (UTF-16 units for astral ones). */
function tagKeyProblem(key: string): string | undefined {
  const shown = JSON.stringify(key.slice(0, 20));
  if (key.length < 1 || key.length > 128) return `tag key ${shown} must be 1-128 characters`;
  if (!TAG_CHARACTERS.test(key)) return `tag key ${shown} may hold only letters, digits, spaces and _ . : / = + - @`;
  if (key.toLowerCase().startsWith('aws:')) return 'tag keys must not start with "aws:"';
  return undefined;
}

function tagValueProblem(key: string, value: string): string | undefined {
  const shown = JSON.stringify(key.slice(0, 20));
  if (value.length > 256) return `tag value of ${shown} must be at most 256 characters`;
  if (!TAG_CHARACTERS.test(value)) return `tag value of ${shown} may hold only letters, digits, spaces and _ . : / = + - @`;
  return undefined;
}

const tags = z.record(z.string(), z.string()).superRefine((value, ctx) => {
  const entries = Object.entries(value);
  if (entries.length < 1 || entries.length > MAX_TAGS) ctx.addIssue({ code: 'custom', message: `must have between 1 and ${MAX_TAGS} tags` });
  for (const [key, val] of entries) {
    const problem = tagKeyProblem(key) ?? tagValueProblem(key, val);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }
});
/** The six session tags EKS sets (DESIGN §3.6); custom session tags may not reuse their keys. */
export const SESSION_TAG_KEYS = [
  'eks-cluster-arn',
  'eks-cluster-name',
  'kubernetes-namespace',
  'kubernetes-service-account',
  'kubernetes-pod-name',
  'kubernetes-pod-uid',
] as const;
/** STS takes at most 50 session tags; the six EKS tags count. */
const MAX_CUSTOM_SESSION_TAGS = MAX_TAGS - SESSION_TAG_KEYS.length;
/** `{{pod.labels.<label key>}}` in a session tag value: the pod's label, read at issuance. */
export const POD_LABEL_PLACEHOLDER = /\{\{pod\.labels\.([A-Za-z0-9][-A-Za-z0-9_./]*)\}\}/g;
const RESERVED_SESSION_TAG_KEYS: ReadonlySet<string> = new Set(SESSION_TAG_KEYS);

const sessionTags = z.record(z.string(), z.string()).superRefine((value, ctx) => {
  const entries = Object.entries(value);
  if (entries.length > MAX_CUSTOM_SESSION_TAGS) {
    ctx.addIssue({ code: 'custom', message: `may have at most ${MAX_CUSTOM_SESSION_TAGS} tags (STS takes 50 session tags, and the six EKS tags count)` });
  }
  const seen = new Set<string>();
  for (const [key, val] of entries) {
    // STS treats tag keys case-insensitively: Team and team collide
    const lower = key.toLowerCase();
    if (RESERVED_SESSION_TAG_KEYS.has(lower)) ctx.addIssue({ code: 'custom', message: `key ${JSON.stringify(key)} is one of the six EKS session tags` });
    if (seen.has(lower)) ctx.addIssue({ code: 'custom', message: `key ${JSON.stringify(key)} differs from another only in case` });
    seen.add(lower);
    const problem = tagKeyProblem(key) ?? tagValueProblem(key, val.replace(POD_LABEL_PLACEHOLDER, 'x'));
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }
});

/** The placeholders a session name template may hold. */
const SESSION_NAME_PLACEHOLDERS = ['cluster', 'namespace', 'serviceAccount', 'pod', 'random'] as const;
const sessionNameTemplate = z
  .string()
  .min(2, 'must be 2-128 characters')
  .max(128, 'must be 2-128 characters')
  .superRefine((template, ctx) => {
    for (const [, name] of template.matchAll(/\{([^}]*)\}/g)) {
      if (!(SESSION_NAME_PLACEHOLDERS as readonly string[]).includes(name!)) ctx.addIssue({ code: 'custom', message: `has an unknown placeholder {${name}} (known: ${SESSION_NAME_PLACEHOLDERS.map((p) => `{${p}}`).join(' ')})` });
    }
    if (!/^[\w+=,.@-]*$/.test(template.replace(/\{[^}]*\}/g, ''))) ctx.addIssue({ code: 'custom', message: 'may hold, outside its placeholders, only letters, digits and _ + = , . @ - (STS\'s role session name characters)' });
  });

const tagKeys = z
  .array(z.string())
  .min(1, `must name between 1 and ${MAX_TAGS} keys`)
  .max(MAX_TAGS, `must name between 1 and ${MAX_TAGS} keys`)
  .superRefine((keys, ctx) => {
    for (const key of keys) if (key.length < 1 || key.length > 128) ctx.addIssue({ code: 'custom', message: `tag key ${JSON.stringify(key.slice(0, 20))} must be 1-128 characters` });
  });

export const createInput = z.object({
  namespace: namespacePattern,
  serviceAccount: serviceAccountPattern,
  roleArn,
  clientRequestToken: clientRequestToken.optional(),
  tags: tags.optional(),
  disableSessionTags: z.boolean().optional(),
  targetRoleArn: roleArn.optional(),
  policy: policy.optional(),
  sessionTags: sessionTags.optional(),
  sessionNameTemplate: sessionNameTemplate.optional(),
  transitiveSessionTags: z.boolean().optional(),
});
export type CreateInput = z.infer<typeof createInput>;

export const updateInput = z.object({
  roleArn: roleArn.optional(),
  clientRequestToken: clientRequestToken.optional(),
  disableSessionTags: z.boolean().optional(),
  /** "" removes the target role */
  targetRoleArn: z.union([z.literal(''), roleArn]).optional(),
  /** "" removes the policy */
  policy: z.union([z.literal(''), policy]).optional(),
  /** {} removes the custom session tags */
  sessionTags: sessionTags.optional(),
  /** "" restores EKS's session name */
  sessionNameTemplate: z.union([z.literal(''), sessionNameTemplate]).optional(),
  transitiveSessionTags: z.boolean().optional(),
});
export type UpdateInput = z.infer<typeof updateInput>;

export const listInput = z.object({
  namespace: namespacePattern.optional(),
  serviceAccount: serviceAccountPattern.optional(),
  maxResults: z.coerce.number().int('must be an integer').min(1, 'must be between 1 and 100').max(100, 'must be between 1 and 100').default(100),
  nextToken: z.string().min(1).max(1024).optional(),
});
export type ListInput = z.infer<typeof listInput>;

/** TagResource's body and UntagResource's query (the tag operations answer BadRequestException, as EKS's model says). */
export const tagResourceInput = z.object({ tags });
export const untagResourceInput = z.object({ tagKeys });

/**
 * Validates `input` with `schema`; the first problem becomes a WireError
 * naming the field: InvalidParameterException, or the operation's own code.
 */
export function validate<T>(schema: z.ZodType<T>, input: unknown, code: 'InvalidParameterException' | 'BadRequestException' = 'InvalidParameterException'): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.length ? issue.path.map(String).join('.') : 'request';
  const message = issue.code === 'invalid_type' && issue.input === undefined ? 'is required' : issue.message;
  throw new WireError(code, `${field} ${message}`);
}

/** An association's ARN: arn:<partition>:eks:<region>:<account>:podidentityassociation/<cluster>/<associationId>. */
export interface AssociationArnParts {
  region: string;
  accountId: string;
  clusterName: string;
  associationId: string;
}

const ASSOCIATION_ARN = /^arn:aws[a-z-]*:eks:([a-z0-9-]+):(\d{12}):podidentityassociation\/([0-9A-Za-z][A-Za-z0-9\-_]{0,99})\/(a-[a-z0-9]{17})$/;

/** The parts of an association ARN; undefined for any other ARN (or text). */
export function parseAssociationArn(arn: string): AssociationArnParts | undefined {
  const m = ASSOCIATION_ARN.exec(arn);
  return m ? { region: m[1]!, accountId: m[2]!, clusterName: m[3]!, associationId: m[4]! } : undefined;
}

/** Whether the text looks like an ARN at all (arn:partition:service:region:account:resource). */
export function looksLikeArn(text: string): boolean {
  return /^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{0,12}:.+$/.test(text);
}

/** Parses a JSON request body; an empty body is `{}`. */
export function parseJsonBody(body: Buffer): unknown {
  if (body.length === 0) return {};
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new WireError('InvalidRequestException', 'The request body is not valid JSON.');
  }
}

const seconds = (ms: number) => ms / 1000;

/** The PodIdentityAssociation shape of Create/Describe/Update/Delete. */
export function toWireAssociation(a: Association) {
  return {
    clusterName: a.clusterName,
    namespace: a.namespace,
    serviceAccount: a.serviceAccount,
    roleArn: a.roleArn,
    associationArn: a.associationArn,
    associationId: a.associationId,
    tags: a.tags,
    createdAt: seconds(a.createdAt),
    modifiedAt: seconds(a.modifiedAt),
    ...(a.ownerArn !== undefined && { ownerArn: a.ownerArn }),
    disableSessionTags: a.disableSessionTags,
    ...(a.targetRoleArn !== undefined && { targetRoleArn: a.targetRoleArn }),
    ...(a.externalId !== undefined && { externalId: a.externalId }),
    ...(a.policy !== undefined && { policy: a.policy }),
    // our extensions, present only when set: an association made through an EKS client answers EKS's shape
    ...(a.sessionTags !== undefined && { sessionTags: a.sessionTags }),
    ...(a.sessionNameTemplate !== undefined && { sessionNameTemplate: a.sessionNameTemplate }),
    ...(a.transitiveSessionTags === false && { transitiveSessionTags: false }),
  };
}

/** The summary shape of List. */
export function toWireSummary(a: Association) {
  return {
    clusterName: a.clusterName,
    namespace: a.namespace,
    serviceAccount: a.serviceAccount,
    associationArn: a.associationArn,
    associationId: a.associationId,
    ...(a.ownerArn !== undefined && { ownerArn: a.ownerArn }),
  };
}

export const listClustersInput = z.object({
  maxResults: z.coerce.number().int('must be an integer').min(1, 'must be between 1 and 100').max(100, 'must be between 1 and 100').default(100),
  nextToken: z.string().min(1).max(1024).optional(),
  include: z.string().optional(),
});

/** A cluster this server serves, as far as DescribeCluster tells it. */
export interface ClusterRecord {
  name: string;
  arn: string;
  /** the service-account issuer, when configured */
  issuer?: string;
}

/** The Cluster shape of DescribeCluster: what cluster discovery tools read (status, ARN, the OIDC issuer). */
export function toWireCluster(c: ClusterRecord) {
  return {
    name: c.name,
    arn: c.arn,
    status: 'ACTIVE',
    ...(c.issuer !== undefined && { identity: { oidc: { issuer: c.issuer } } }),
    tags: {},
  };
}

