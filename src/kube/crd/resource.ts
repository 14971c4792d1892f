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
import { createHash } from 'node:crypto';
import type { Actor } from '../../associations/audit.js';
import type { V1ObjectMeta } from '@kubernetes/client-node';
import { createInput, validate, type Association, type CreateInput } from '../../api/eks.js';
import type { AssociationUpdate } from '../../associations/service.js';
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
  /** only its presence tells anything here; the timestamps are the API's strings, not the Dates the model type names */
  metadata: V1ObjectMeta & { name: string; namespace: string; uid: string };
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
  /** our extensions (api/eks.ts's Association), absent when at their defaults */
  sessionTags?: Record<string, string>;
  sessionNameTemplate?: string;
  transitiveSessionTags?: false;
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

/** The audit trail's actor of a change made for this resource. */
export function actorOf(resource: Pick<PodIdentityAssociationResource, 'metadata'>): Actor {
  const { namespace, name, uid } = resource.metadata;
  return { kind: 'kubernetes', apiVersion: `${CRD_GROUP}/${CRD_VERSION}`, resource: CRD_PLURAL, namespace, name, ...(uid && { uid }) };
}

/** The actor of a change for a resource known only by the owner ARN (`<prefix><namespace>/<name>/<uid>`) it left on an association: one deleted while nobody watched. */
export function actorOfOwnerArn(ownerArn: string, prefix: string): Actor {
  const [namespace = '', name = '', uid, ...rest] = ownerArn.slice(prefix.length).split('/');
  if (!ownerArn.startsWith(prefix) || !uid || rest.length > 0) return actorOf({ metadata: { namespace: '', name: ownerArn, uid: '' } });
  return actorOf({ metadata: { namespace, name, uid } });
}

/** The spec checked with the same rules as CreatePodIdentityAssociation; a message when it breaks one. */
export function desiredFromSpec(resource: PodIdentityAssociationResource): { ok: true; desired: DesiredAssociation } | { ok: false; message: string } {
  const spec = resource.spec ?? {};
  const tags = spec.tags && typeof spec.tags === 'object' && Object.keys(spec.tags).length > 0 ? spec.tags : undefined;
  const sessionTags = spec.sessionTags && typeof spec.sessionTags === 'object' && Object.keys(spec.sessionTags).length > 0 ? spec.sessionTags : undefined;
  try {
    const input = validate(createInput, {
      namespace: resource.metadata.namespace,
      serviceAccount: spec.serviceAccount,
      roleArn: spec.roleArn,
      ...(tags !== undefined && { tags }),
      ...(spec.disableSessionTags !== undefined && { disableSessionTags: spec.disableSessionTags }),
      ...(spec.targetRoleArn !== undefined && spec.targetRoleArn !== '' && { targetRoleArn: spec.targetRoleArn }),
      ...(spec.policy !== undefined && spec.policy !== '' && { policy: spec.policy }),
      ...(sessionTags !== undefined && { sessionTags }),
      ...(spec.sessionNameTemplate !== undefined && spec.sessionNameTemplate !== '' && { sessionNameTemplate: spec.sessionNameTemplate }),
      ...(spec.transitiveSessionTags !== undefined && { transitiveSessionTags: spec.transitiveSessionTags }),
    });
    if (input.policy !== undefined && !input.disableSessionTags) {
      return { ok: false, message: 'spec.policy can only be set when spec.disableSessionTags is true' };
    }
    if (input.sessionTags !== undefined && input.disableSessionTags) {
      return { ok: false, message: 'spec.sessionTags can only be set when spec.disableSessionTags is false' };
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
        ...(input.sessionTags !== undefined && { sessionTags: input.sessionTags }),
        ...(input.sessionNameTemplate !== undefined && { sessionNameTemplate: input.sessionNameTemplate }),
        ...(input.transitiveSessionTags === false && { transitiveSessionTags: false as const }),
      },
    };
  } catch (error) {
    if (error instanceof WireError) return { ok: false, message: `spec.${error.message}` };
    throw error;
  }
}

/** What CreatePodIdentityAssociation is asked for a valid spec. */
export function createInputFor(desired: DesiredAssociation): CreateInput {
  return {
    namespace: desired.namespace,
    serviceAccount: desired.serviceAccount,
    roleArn: desired.roleArn,
    disableSessionTags: desired.disableSessionTags,
    ...(Object.keys(desired.tags).length > 0 && { tags: desired.tags }),
    ...(desired.targetRoleArn !== undefined && { targetRoleArn: desired.targetRoleArn }),
    ...(desired.policy !== undefined && { policy: desired.policy }),
    ...(desired.sessionTags !== undefined && { sessionTags: desired.sessionTags }),
    ...(desired.sessionNameTemplate !== undefined && { sessionNameTemplate: desired.sessionNameTemplate }),
    ...(desired.transitiveSessionTags === false && { transitiveSessionTags: false }),
  };
}

/** The update that makes `current` match `desired`, or undefined when it already does; "" removes a target role or a policy. */
export function changesFor(current: Association, desired: DesiredAssociation): AssociationUpdate | undefined {
  const update: AssociationUpdate = {};
  if (current.roleArn !== desired.roleArn) update.roleArn = desired.roleArn;
  if (current.disableSessionTags !== desired.disableSessionTags) update.disableSessionTags = desired.disableSessionTags;
  if (current.policy !== desired.policy) update.policy = desired.policy ?? '';
  if (current.targetRoleArn !== desired.targetRoleArn) update.targetRoleArn = desired.targetRoleArn ?? '';
  if (!sameTags(current.tags, desired.tags)) update.tags = desired.tags;
  if (!sameTags(current.sessionTags ?? {}, desired.sessionTags ?? {})) update.sessionTags = desired.sessionTags ?? {};
  if (current.sessionNameTemplate !== desired.sessionNameTemplate) update.sessionNameTemplate = desired.sessionNameTemplate ?? '';
  if ((current.transitiveSessionTags ?? true) !== (desired.transitiveSessionTags ?? true)) update.transitiveSessionTags = desired.transitiveSessionTags ?? true;
  return Object.keys(update).length > 0 ? update : undefined;
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
  const conditions = [...(previous?.conditions ?? []).filter((c) => c.type !== 'Ready' && c.type !== TAGS_OWNED), ready];
  if (outcome.ready && outcome.association) {
    const owned = previous?.conditions?.find((c) => c.type === TAGS_OWNED);
    conditions.push({
      type: TAGS_OWNED,
      status: 'True',
      reason: 'SpecTags',
      message: `spec.tags are the tags of ${outcome.association.associationArn}: TagResource and UntagResource on it are undone; change spec.tags instead`,
      lastTransitionTime: owned?.status === 'True' ? owned.lastTransitionTime : rfc3339(now),
      ...(generation !== undefined && { observedGeneration: generation }),
    });
  }
  return {
    associationId: outcome.association?.associationId ?? null,
    associationArn: outcome.association?.associationArn ?? null,
    ...(generation !== undefined && { observedGeneration: generation }),
    conditions,
  };
}

/**
 * The condition that says who owns an association's tags: its resource. A tag
 * operation through the API changes the store, the reconciler sees an owned
 * association differ from its spec and puts spec.tags back.
 */
const TAGS_OWNED = 'TagsOwnedByResource';

export function sameStatus(a: ResourceStatus | undefined, b: ResourceStatus): boolean {
  return JSON.stringify({ ...a, associationId: a?.associationId ?? null, associationArn: a?.associationArn ?? null }) === JSON.stringify(b);
}


/**
 * The Lease whose holder reconciles a cluster's resources. Lease names are
 * DNS-1123 subdomains and cluster names are not (capitals, `_`, a trailing
 * `-`): such names are lowered, cleaned and given a hash of the real name,
 * so two clusters never share a Lease.
 */
export function leaseNameFor(clusterName: string): string {
  if (/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(clusterName)) return `pod-identity-crd-${clusterName}`;
  const cleaned = clusterName.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/-+$/, '');
  return `pod-identity-crd-${cleaned}${cleaned ? '-' : ''}${createHash('sha256').update(clusterName).digest('hex').slice(0, 8)}`;
}

/** The Conflict condition's message: which association holds the service account, and who made it. */
export function conflictMessage(desired: DesiredAssociation, current: Association, ownerPrefix: string): string {
  const heldBy = current.ownerArn?.startsWith(ownerPrefix)
    ? `the PodIdentityAssociation ${current.ownerArn.slice(ownerPrefix.length).split('/').slice(0, 2).join('/')}`
    : current.ownerArn ? current.ownerArn : 'the EKS API';
  return `service account ${desired.namespace}/${desired.serviceAccount} already has association ${current.associationId}, made by ${heldBy}`;
}
