// Who changed an association, and how: the record every change through the
// association service leaves in the audit trail (lib/audit.ts), whether it
// came through the API, a tag operation or a PodIdentityAssociation resource.
import type { Association } from '../api/eks.js';

/** Who asked for a change. */
export type Actor =
  /** a SigV4-signed API call, by its access key id */
  | { kind: 'access-key'; accessKeyId: string }
  /** the CRD reconciler, on behalf of this Kubernetes object */
  | { kind: 'kubernetes'; apiVersion: string; resource: string; namespace: string; name: string; uid?: string };

export type ChangeOperation = 'CreatePodIdentityAssociation' | 'UpdatePodIdentityAssociation' | 'DeletePodIdentityAssociation' | 'TagResource' | 'UntagResource';

/** Where a change came from: its actor, and the API request it belongs to when there is one. */
export interface ChangeContext {
  actor: Actor;
  requestId?: string;
}

/** The audit record of one change (docs/operations.md, Audit records). */
interface AssociationChangeRecord {
  type: 'association-change';
  /** ISO 8601 */
  time: string;
  operation: ChangeOperation;
  actor: Actor;
  requestId?: string;
  cluster: string;
  associationId: string;
  associationArn: string;
  /** the association before the change; null for a create */
  before: Association | null;
  /** and after it; null for a delete */
  after: Association | null;
}

/** Where the service writes its records (lib/audit.ts's AuditLog). */
export interface ChangeAudit {
  record(record: AssociationChangeRecord, message: string): void;
}
