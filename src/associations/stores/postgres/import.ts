// `pod-identity migrate`'s write side: a page of associations copied into
// PostgreSQL as they are, in one statement, telling created, updated and
// unchanged apart and never overwriting another association's subject.
import type { PoolClient } from 'pg';
import type { Association } from '../../../api/eks.js';
import { COLUMN_COUNT, COLUMNS, toParams } from './rows.js';

type ImportOutcome = 'created' | 'updated' | 'unchanged';

export interface ImportResult {
  outcomes: Map<string, ImportOutcome>;
  conflicts: { association: Association; existingId: string }[];
}

/**
 * Copies associations as they are (same ids, ARNs and timestamps), within the
 * caller's transaction: a missing one is inserted, a differing one is
 * overwritten, an equal one is left alone. One whose subject is held by a
 * different association is not copied; it is answered as a conflict.
 */
export async function importAssociations(client: PoolClient, associations: Association[]): Promise<ImportResult> {
  const outcomes = new Map<string, ImportOutcome>();
  const conflicts: { association: Association; existingId: string }[] = [];
  if (associations.length === 0) return { outcomes, conflicts };
  const subjects = await client.query<{ cluster_name: string; namespace: string; service_account: string; association_id: string }>(
    `SELECT a.cluster_name, a.namespace, a.service_account, a.association_id FROM associations a
       JOIN unnest($1::text[], $2::text[], $3::text[]) AS s(cluster_name, namespace, service_account)
         ON a.cluster_name = s.cluster_name AND a.namespace = s.namespace AND a.service_account = s.service_account
     FOR UPDATE OF a`,
    [associations.map((a) => a.clusterName), associations.map((a) => a.namespace), associations.map((a) => a.serviceAccount)],
  );
  const holder = new Map(subjects.rows.map((r) => [JSON.stringify([r.cluster_name, r.namespace, r.service_account]), r.association_id]));
  const copy: Association[] = [];
  for (const association of associations) {
    const existingId = holder.get(JSON.stringify([association.clusterName, association.namespace, association.serviceAccount]));
    if (existingId !== undefined && existingId !== association.associationId) conflicts.push({ association, existingId });
    else copy.push(association);
  }
  if (copy.length === 0) return { outcomes, conflicts };
  const params: unknown[] = [];
  const values = copy.map((a) => {
    const base = params.length;
    params.push(...toParams(a));
    return `(${Array.from({ length: COLUMN_COUNT }, (_, i) => `$${base + i + 1}`).join(', ')})`;
  });
  const mutable = ['namespace', 'service_account', 'role_arn', 'association_arn', 'tags', 'created_at', 'modified_at', 'owner_arn', 'disable_session_tags', 'target_role_arn', 'external_id', 'policy', 'session_tags', 'session_name_template', 'transitive_session_tags'];
  const { rows } = await client.query<{ association_id: string; inserted: boolean }>(
    `INSERT INTO associations AS a (${COLUMNS}) VALUES ${values.join(', ')}
     ON CONFLICT (cluster_name, association_id) DO UPDATE SET ${mutable.map((c) => `${c} = EXCLUDED.${c}`).join(', ')}
       WHERE (${mutable.map((c) => `a.${c}`).join(', ')}) IS DISTINCT FROM (${mutable.map((c) => `EXCLUDED.${c}`).join(', ')})
     RETURNING a.association_id, (xmax = 0) AS inserted`,
    params,
  );
  for (const a of copy) outcomes.set(a.associationId, 'unchanged');
  for (const row of rows) outcomes.set(row.association_id, row.inserted ? 'created' : 'updated');
  return { outcomes, conflicts };
}
