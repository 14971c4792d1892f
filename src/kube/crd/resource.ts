// The PodIdentityAssociation resource (podidentity.dev/v1alpha1) and the pure
// decisions of its reconciler: what a spec asks for, checked with the rules
// of CreatePodIdentityAssociation; what must change in the association; the
// status to write back.
//
// An association made from a resource carries an ownerArn naming the
// resource (namespace, name and uid), which is how the reconciler tells its
// own associations from ones made through the EKS API: those are never
// touched, and a resource asking for their service account gets a Conflict
// condition. Invalid specs get an InvalidSpec condition.
import { randomUUID } from 'node:crypto';
import { createInput, validate, type Association } from '../../api/eks.js';
import type { AssociationChanges } from '../../associations/types.js';
import { WireError } from '../../lib/errors.js';

export const CRD_GROUP = 'podidentity.dev';
export const CRD_VERSION = 'v1alpha1';
export const CRD_PLURAL = 'podidentityassociations';

// ---------------------------------------------------------------- shapes

interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface ResourceStatus {
  associationId?: string | null;
  associationArn?: string | null;
  observedGeneration?: number;
  conditions?: Condition[];
}

export interface PodIdentityAssociationResource {
  metadata: { name: string; namespace: string; uid: string; generation?: number; resourceVersion?: string; deletionTimestamp?: string };
  spec?: Record<string, unknown>;
  status?: ResourceStatus;
}

/** What a valid spec asks for. */
export interface DesiredAssociation {
  namespace: string;
  serviceAccount: string;
  roleArn: string;
  targetRoleArn?: string;
  disableSessionTags: boolean;
  policy?: string;
  tags: Record<string, string>;
}

// ---------------------------------------------------------------- pure decisions

/** The ownerArn of associations made from a resource; the uid tells a re-created resource of the same name apart. */
export function ownerArnOf(region: string, accountId: string, clusterName: string, resource: PodIdentityAssociationResource): string {
  const { namespace, name, uid } = resource.metadata;
  return `${ownerArnPrefix(region, accountId, clusterName)}${namespace}/${name}/${uid}`;
}

export function ownerArnPrefix(region: string, accountId: string, clusterName: string): string {
  return `arn:aws:eks:${region}:${accountId}:podidentityassociationresource/${clusterName}/`;
}

/** The spec checked with the same rules as CreatePodIdentityAssociation; a message when it breaks one. */
export function desiredFromSpec(resource: PodIdentityAssociationResource): { ok: true; desired: DesiredAssociation } | { ok: false; message: string } {
  const spec = resource.spec ?? {};
  const tags = spec.tags && typeof spec.tags === 'object' && Object.keys(spec.tags).length > 0 ? spec.tags : undefined;
  try {
    const input = validate(createInput, {
      namespace: resource.metadata.namespace,
      serviceAccount: spec.serviceAccount,
      roleArn: spec.roleArn,
      ...(tags !== undefined && { tags }),
      ...(spec.disableSessionTags !== undefined && { disableSessionTags: spec.disableSessionTags }),
      ...(spec.targetRoleArn !== undefined && spec.targetRoleArn !== '' && { targetRoleArn: spec.targetRoleArn }),
      ...(spec.policy !== undefined && spec.policy !== '' && { policy: spec.policy }),
    });
    if (input.policy !== undefined && !input.disableSessionTags) {
      return { ok: false, message: 'spec.policy can only be set when spec.disableSessionTags is true' };
    }
    return {
      ok: true,
      desired: {
        namespace: input.namespace,
        serviceAccount: input.serviceAccount,
        roleArn: input.roleArn,
        disableSessionTags: input.disableSessionTags ?? false,
        tags: input.tags ?? {},
        ...(input.targetRoleArn !== undefined && { targetRoleArn: input.targetRoleArn }),
        ...(input.policy !== undefined && { policy: input.policy }),
      },
    };
  } catch (error) {
    if (error instanceof WireError) return { ok: false, message: `spec.${error.message}` };
    throw error;
  }
}

/** The update that makes `current` match `desired`, or undefined when it already does. A new target role gets a new externalId. */
export function changesFor(current: Association, desired: DesiredAssociation, now: number): AssociationChanges | undefined {
  const changes: AssociationChanges = { modifiedAt: now };
  let changed = false;
  if (current.roleArn !== desired.roleArn) {
    changes.roleArn = desired.roleArn;
    changed = true;
  }
  if (current.disableSessionTags !== desired.disableSessionTags) {
    changes.disableSessionTags = desired.disableSessionTags;
    changed = true;
  }
  if (current.policy !== desired.policy) {
    changes.policy = desired.policy;
    changed = true;
  }
  if (current.targetRoleArn !== desired.targetRoleArn) {
    changes.targetRoleArn = desired.targetRoleArn;
    changes.externalId = desired.targetRoleArn === undefined ? undefined : randomUUID();
    changed = true;
  }
  if (!sameTags(current.tags, desired.tags)) {
    changes.tags = desired.tags;
    changed = true;
  }
  return changed ? changes : undefined;
}

function sameTags(a: Record<string, string>, b: Record<string, string>): boolean {
  const ak = Object.keys(a);
  return ak.length === Object.keys(b).length && ak.every((k) => b[k] === a[k]);
}

function rfc3339(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** The status to write: the Ready condition keeps its lastTransitionTime unless its status flips. */
export function nextStatus(
  previous: ResourceStatus | undefined,
  generation: number | undefined,
  outcome: { ready: boolean; reason: string; message: string; association?: Association },
  now: number,
): ResourceStatus {
  const before = previous?.conditions?.find((c) => c.type === 'Ready');
  const status = outcome.ready ? 'True' : 'False';
  const ready: Condition = {
    type: 'Ready',
    status,
    reason: outcome.reason,
    message: outcome.message,
    lastTransitionTime: before && before.status === status ? before.lastTransitionTime : rfc3339(now),
    ...(generation !== undefined && { observedGeneration: generation }),
  };
  return {
    associationId: outcome.association?.associationId ?? null,
    associationArn: outcome.association?.associationArn ?? null,
    ...(generation !== undefined && { observedGeneration: generation }),
    conditions: [...(previous?.conditions ?? []).filter((c) => c.type !== 'Ready'), ready],
  };
}

export function sameStatus(a: ResourceStatus | undefined, b: ResourceStatus): boolean {
  return JSON.stringify({ ...a, associationId: a?.associationId ?? null, associationArn: a?.associationArn ?? null }) === JSON.stringify(b);
}

