// An association as a row of the `associations` table, and back: the column
// list, the parameters of an insert, and what a row (or its to_jsonb record in
// a change) becomes.
import type { Association } from '../../../api/eks.js';

/** The unique constraint on (cluster, namespace, serviceAccount). */
export const SUBJECT_CONSTRAINT = 'associations_subject_key';

export const COLUMNS =
  'cluster_name, association_id, namespace, service_account, role_arn, association_arn, tags, created_at, modified_at, owner_arn, disable_session_tags, target_role_arn, external_id, policy, session_tags, session_name_template, transitive_session_tags';
/** How many columns COLUMNS names (the parameters of one row). */
export const COLUMN_COUNT = 17;

/**
 * The conditions of the two partial indexes of pattern rows, repeated
 * verbatim in the query that uses them: service-account patterns by
 * (cluster, namespace), namespace patterns by cluster.
 */
export const SERVICE_ACCOUNT_PATTERN = "service_account LIKE '%*'";
export const NAMESPACE_PATTERN = "namespace LIKE '%*'";

/** A row as `pg` returns it, and as `to_jsonb(row)` records it in a change. */
export interface Row {
  cluster_name: string;
  association_id: string;
  namespace: string;
  service_account: string;
  role_arn: string;
  association_arn: string;
  tags: Record<string, string>;
  created_at: number;
  modified_at: number;
  owner_arn: string | null;
  disable_session_tags: boolean;
  target_role_arn: string | null;
  external_id: string | null;
  policy: string | null;
  /** absent in change records written before migration 2 */
  session_tags?: Record<string, string> | null;
  session_name_template?: string | null;
  transitive_session_tags?: boolean;
}

export function fromRow(row: Row): Association {
  const association: Association = {
    clusterName: row.cluster_name,
    namespace: row.namespace,
    serviceAccount: row.service_account,
    roleArn: row.role_arn,
    associationId: row.association_id,
    associationArn: row.association_arn,
    tags: row.tags,
    createdAt: Number(row.created_at),
    modifiedAt: Number(row.modified_at),
    disableSessionTags: row.disable_session_tags,
  };
  if (row.owner_arn !== null) association.ownerArn = row.owner_arn;
  if (row.target_role_arn !== null) association.targetRoleArn = row.target_role_arn;
  if (row.external_id !== null) association.externalId = row.external_id;
  if (row.policy !== null) association.policy = row.policy;
  if (row.session_tags != null) association.sessionTags = row.session_tags;
  if (row.session_name_template != null) association.sessionNameTemplate = row.session_name_template;
  if (row.transitive_session_tags === false) association.transitiveSessionTags = false;
  return association;
}

/** Parameters $1…$17 in COLUMNS order. */
export function toParams(a: Association): unknown[] {
  return [
    a.clusterName,
    a.associationId,
    a.namespace,
    a.serviceAccount,
    a.roleArn,
    a.associationArn,
    JSON.stringify(a.tags),
    a.createdAt,
    a.modifiedAt,
    a.ownerArn ?? null,
    a.disableSessionTags,
    a.targetRoleArn ?? null,
    a.externalId ?? null,
    a.policy ?? null,
    a.sessionTags ? JSON.stringify(a.sessionTags) : null,
    a.sessionNameTemplate ?? null,
    a.transitiveSessionTags !== false,
  ];
}

export function isSubjectViolation(error: unknown): boolean {
  const e = error as { code?: string; constraint?: string };
  return e.code === '23505' && e.constraint === SUBJECT_CONSTRAINT;
}
