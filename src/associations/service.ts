// The association operations (DESIGN §3.1) above any store: ids and ARNs,
// idempotent create, pagination tokens, the rules that span fields. Inputs
// arrive validated by src/api/eks.ts; errors leave as WireErrors.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { WireError } from '../lib/errors.js';
import { looksLikeArn, parseAssociationArn, type CreateInput, type ListInput, type UpdateInput } from '../api/eks.js';
import { StoreWriteError, SubjectTakenError, type AssociationStore } from './store.js';
import type { Association } from '../api/eks.js';
import type { AssociationChanges, Subject } from './types.js';
import type { ChangeAudit, ChangeContext, ChangeOperation } from './audit.js';
import { isoTime } from '../lib/iso-time.js';
import { findAssociation, hasPattern, isPattern } from './resolve.js';

/** What an update may set: UpdatePodIdentityAssociation's fields and, for the CRD reconciler, the whole tag set. */
export type AssociationUpdate = UpdateInput & { tags?: Record<string, string> };

export interface CreateOptions {
  /** who made the association (a PodIdentityAssociation resource); associations made through the EKS API have none */
  ownerArn?: string;
}

export interface AssociationServiceOptions {
  store: AssociationStore;
  region: string;
  accountId: string;
  /** names of the clusters this server serves */
  clusters: () => Iterable<string>;
  /** where every change is recorded, with its actor and before/after */
  audit?: ChangeAudit;
  /** whether a namespace or service account may be a pattern (`*`, `build-*`); the server's associations.allowPatterns, default true */
  allowPatterns?: boolean;
  now?: () => number;
}

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** `a-` + 17 lowercase alphanumerics, as EKS makes them. */
export function newAssociationId(): string {
  const bytes = randomBytes(17);
  let id = 'a-';
  // 252 = 7 * 36: rejection-free enough; the tiny modulo bias is irrelevant for ids.
  for (const byte of bytes) id += ID_ALPHABET[byte % 36];
  return id;
}

export function associationArn(region: string, accountId: string, clusterName: string, associationId: string): string {
  return `arn:aws:eks:${region}:${accountId}:podidentityassociation/${clusterName}/${associationId}`;
}

/** The fields that make two creates "the same input" for idempotency. */
function createFingerprint(clusterName: string, input: CreateInput): string {
  const canonical = JSON.stringify([
    clusterName,
    input.namespace,
    input.serviceAccount,
    input.roleArn,
    Object.entries(input.tags ?? {}).sort(([a], [b]) => (a < b ? -1 : 1)),
    input.disableSessionTags ?? false,
    input.targetRoleArn ?? null,
    input.policy ?? null,
    Object.entries(input.sessionTags ?? {}).sort(([a], [b]) => (a < b ? -1 : 1)),
    input.sessionNameTemplate ?? null,
    input.transitiveSessionTags ?? true,
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}

interface PageToken {
  /** last associationId returned */
  a: string;
  n?: string;
  s?: string;
}

export function encodePageToken(token: PageToken): string {
  return Buffer.from(JSON.stringify(token)).toString('base64url');
}

export function decodePageToken(text: string, filters: { namespace?: string; serviceAccount?: string }): PageToken {
  let token: PageToken;
  try {
    token = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as PageToken;
  } catch {
    throw new WireError('InvalidParameterException', 'nextToken is not valid.');
  }
  if (typeof token !== 'object' || token === null || typeof token.a !== 'string' || !/^a-[a-z0-9]{17}$/.test(token.a)) {
    throw new WireError('InvalidParameterException', 'nextToken is not valid.');
  }
  if ((token.n ?? undefined) !== filters.namespace || (token.s ?? undefined) !== filters.serviceAccount) {
    throw new WireError('InvalidParameterException', 'nextToken was issued for different filters.');
  }
  return token;
}

function checkPolicyRule(disableSessionTags: boolean, policy: string | undefined): void {
  if (policy !== undefined && policy !== '' && !disableSessionTags) {
    throw new WireError('InvalidParameterException', 'policy can only be set when disableSessionTags is true.');
  }
}

/** Custom session tags ride on the six EKS tags: an association without session tags has none to add. */
function checkSessionTagsRule(disableSessionTags: boolean, sessionTags: Record<string, string> | undefined): void {
  if (disableSessionTags && sessionTags !== undefined && Object.keys(sessionTags).length > 0) {
    throw new WireError('InvalidParameterException', 'sessionTags can only be set when disableSessionTags is false.');
  }
}

/** A store that cannot write says why, in the words the operator needs (ServerException, as EKS answers a failure of its own). */
async function writing<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof StoreWriteError) throw new WireError('ServerException', error.message, { cause: error });
    throw error;
  }
}

export class AssociationService {
  private readonly store: AssociationStore;
  private readonly now: () => number;

  constructor(private readonly options: AssociationServiceOptions) {
    this.store = options.store;
    this.now = options.now ?? Date.now;
  }

  private requireCluster(clusterName: string): void {
    for (const name of this.options.clusters()) if (name === clusterName) return;
    throw new WireError('ResourceNotFoundException', `No cluster found for name: ${clusterName}.`);
  }

  /** One audit record for a change that happened. */
  private recordChange(operation: ChangeOperation, context: ChangeContext, before: Association | undefined, after: Association | undefined): void {
    const subject = (after ?? before)!;
    this.options.audit?.record(
      {
        type: 'association-change',
        time: isoTime(this.now()),
        operation,
        actor: context.actor,
        ...(context.requestId !== undefined && { requestId: context.requestId }),
        cluster: subject.clusterName,
        associationId: subject.associationId,
        associationArn: subject.associationArn,
        before: before ?? null,
        after: after ?? null,
      },
      'association changed',
    );
  }

  private notFound(clusterName: string, associationId: string): WireError {
    return new WireError('ResourceNotFoundException', `Pod identity association ${associationId} not found in cluster ${clusterName}.`);
  }

  async create(clusterName: string, input: CreateInput, context: ChangeContext, options: CreateOptions = {}): Promise<Association> {
    this.requireCluster(clusterName);
    checkPolicyRule(input.disableSessionTags ?? false, input.policy);
    checkSessionTagsRule(input.disableSessionTags ?? false, input.sessionTags);
    if (this.options.allowPatterns === false && hasPattern(input)) {
      throw new WireError('InvalidParameterException', 'namespace and serviceAccount must be names: this server does not allow patterns (associations.allowPatterns is false).');
    }
    const now = this.now();
    const associationId = newAssociationId();
    const association: Association = {
      clusterName,
      namespace: input.namespace,
      serviceAccount: input.serviceAccount,
      roleArn: input.roleArn,
      associationId,
      associationArn: associationArn(this.options.region, this.options.accountId, clusterName, associationId),
      tags: input.tags ?? {},
      createdAt: now,
      modifiedAt: now,
      ...(options.ownerArn !== undefined && { ownerArn: options.ownerArn }),
      disableSessionTags: input.disableSessionTags ?? false,
      ...(input.targetRoleArn !== undefined && { targetRoleArn: input.targetRoleArn, externalId: randomUUID() }),
      ...(input.policy !== undefined && { policy: input.policy }),
      ...(input.sessionTags !== undefined && Object.keys(input.sessionTags).length > 0 && { sessionTags: input.sessionTags }),
      ...(input.sessionNameTemplate !== undefined && { sessionNameTemplate: input.sessionNameTemplate }),
      ...(input.transitiveSessionTags === false && { transitiveSessionTags: false }),
    };
    const fingerprint = createFingerprint(clusterName, input);
    let result;
    try {
      result = await writing(this.store.create(association, input.clientRequestToken ? { token: input.clientRequestToken, fingerprint } : undefined));
    } catch (error) {
      if (error instanceof SubjectTakenError) {
        throw new WireError(
          'ResourceInUseException',
          `Association already exists for namespace ${input.namespace} and service account ${input.serviceAccount} in cluster ${clusterName}.`,
        );
      }
      throw error;
    }
    if (result.created) {
      this.recordChange('CreatePodIdentityAssociation', context, undefined, result.association);
      return result.association;
    }
    // A retried create (no change, so no record): same token. Same input answers the same association.
    if (result.record.fingerprint !== fingerprint) {
      throw new WireError('InvalidRequestException', 'clientRequestToken was already used with different parameters.');
    }
    const existing = await this.store.get(clusterName, result.record.associationId);
    if (!existing) throw new WireError('InvalidRequestException', 'clientRequestToken belongs to an association that has since been deleted.');
    return existing;
  }

  async describe(clusterName: string, associationId: string): Promise<Association> {
    const found = await this.find(clusterName, associationId);
    if (!found) throw this.notFound(clusterName, associationId);
    return found;
  }

  /** Describe without the error: undefined when there is no such association. */
  async find(clusterName: string, associationId: string): Promise<Association | undefined> {
    this.requireCluster(clusterName);
    return this.store.get(clusterName, associationId);
  }

  /** The association of a service account, if it has one. */
  async findBySubject(subject: Subject): Promise<Association | undefined> {
    this.requireCluster(subject.clusterName);
    return this.store.findBySubject(subject);
  }

  /**
   * Filters match the stored namespace and service account literally, as in
   * EKS; but a list for one service account by name (both filters, neither a
   * pattern) answers the association it resolves to, so that the pattern
   * that matched shows. Without patterns the two are the same.
   */
  async list(clusterName: string, input: ListInput): Promise<{ associations: Association[]; nextToken?: string }> {
    this.requireCluster(clusterName);
    if (input.namespace !== undefined && input.serviceAccount !== undefined && !isPattern(input.namespace) && !isPattern(input.serviceAccount)) {
      if (input.nextToken) decodePageToken(input.nextToken, { namespace: input.namespace, serviceAccount: input.serviceAccount });
      const found = await findAssociation(this.store, { clusterName, namespace: input.namespace, serviceAccount: input.serviceAccount });
      return { associations: found && !input.nextToken ? [found] : [] };
    }
    const filters = { namespace: input.namespace, serviceAccount: input.serviceAccount };
    const after = input.nextToken ? decodePageToken(input.nextToken, filters).a : undefined;
    // One extra row tells whether another page exists.
    const rows = await this.store.list(clusterName, { ...filters, afterId: after, limit: input.maxResults + 1 });
    const page = rows.slice(0, input.maxResults);
    if (rows.length <= input.maxResults) return { associations: page };
    return {
      associations: page,
      nextToken: encodePageToken({ a: page[page.length - 1]!.associationId, ...(filters.namespace && { n: filters.namespace }), ...(filters.serviceAccount && { s: filters.serviceAccount }) }),
    };
  }

  async update(clusterName: string, associationId: string, input: AssociationUpdate, context: ChangeContext): Promise<Association> {
    const current = await this.describe(clusterName, associationId);
    const changes: AssociationChanges = { modifiedAt: this.now() };
    if (input.roleArn !== undefined) changes.roleArn = input.roleArn;
    if (input.tags !== undefined) changes.tags = input.tags;
    if (input.disableSessionTags !== undefined) changes.disableSessionTags = input.disableSessionTags;
    if (input.policy !== undefined) changes.policy = input.policy === '' ? undefined : input.policy;
    if (input.targetRoleArn !== undefined) {
      if (input.targetRoleArn === '') {
        changes.targetRoleArn = undefined;
        changes.externalId = undefined;
      } else if (input.targetRoleArn !== current.targetRoleArn) {
        changes.targetRoleArn = input.targetRoleArn;
        changes.externalId = randomUUID();
      }
    }
    if (input.sessionTags !== undefined) changes.sessionTags = Object.keys(input.sessionTags).length > 0 ? input.sessionTags : undefined;
    if (input.sessionNameTemplate !== undefined) changes.sessionNameTemplate = input.sessionNameTemplate === '' ? undefined : input.sessionNameTemplate;
    if (input.transitiveSessionTags !== undefined) changes.transitiveSessionTags = input.transitiveSessionTags;
    const disableSessionTags = changes.disableSessionTags ?? current.disableSessionTags;
    const nextPolicy = 'policy' in changes ? changes.policy : current.policy;
    checkPolicyRule(disableSessionTags, nextPolicy);
    checkSessionTagsRule(disableSessionTags, 'sessionTags' in changes ? changes.sessionTags : current.sessionTags);
    const updated = await writing(this.store.update(clusterName, associationId, changes));
    if (!updated) throw this.notFound(clusterName, associationId);
    this.recordChange('UpdatePodIdentityAssociation', context, current, updated);
    return updated;
  }

  async delete(clusterName: string, associationId: string, context: ChangeContext): Promise<Association> {
    this.requireCluster(clusterName);
    const deleted = await writing(this.store.delete(clusterName, associationId));
    if (!deleted) throw this.notFound(clusterName, associationId);
    this.recordChange('DeletePodIdentityAssociation', context, deleted, undefined);
    return deleted;
  }

  /** TagResource: sets these tags on the association the ARN names; its other tags stay. */
  async tagResource(resourceArn: string, tags: Readonly<Record<string, string>>, context: ChangeContext): Promise<Association> {
    return this.editTags('TagResource', resourceArn, { set: tags }, context);
  }

  /** UntagResource: removes these keys (absent ones are no error). */
  async untagResource(resourceArn: string, keys: readonly string[], context: ChangeContext): Promise<Association> {
    return this.editTags('UntagResource', resourceArn, { remove: keys }, context);
  }

  private async editTags(operation: 'TagResource' | 'UntagResource', resourceArn: string, tagEdits: NonNullable<AssociationChanges['tagEdits']>, context: ChangeContext): Promise<Association> {
    const { clusterName, associationId } = this.locate(resourceArn);
    // read first for the record's "before"; the edit itself merges inside the store's transaction
    const before = this.options.audit ? await this.store.get(clusterName, associationId) : undefined;
    const updated = await writing(this.store.update(clusterName, associationId, { tagEdits }));
    if (!updated) throw this.unknownResource(resourceArn);
    this.recordChange(operation, context, before, updated);
    return updated;
  }

  async listTagsForResource(resourceArn: string): Promise<Record<string, string>> {
    const { clusterName, associationId } = this.locate(resourceArn);
    const found = await this.store.get(clusterName, associationId);
    if (!found) throw this.unknownResource(resourceArn);
    return found.tags;
  }

  /** Which association a tag operation's ARN names: not an ARN is BadRequestException; an ARN this server does not hold is NotFoundException. */
  private locate(resourceArn: string): { clusterName: string; associationId: string } {
    if (!looksLikeArn(resourceArn)) throw new WireError('BadRequestException', `${JSON.stringify(resourceArn.slice(0, 100))} is not a valid ARN.`);
    const parts = parseAssociationArn(resourceArn);
    if (!parts || parts.region !== this.options.region || parts.accountId !== this.options.accountId) throw this.unknownResource(resourceArn);
    for (const name of this.options.clusters()) if (name === parts.clusterName) return parts;
    throw this.unknownResource(resourceArn);
  }

  private unknownResource(resourceArn: string): WireError {
    return new WireError('NotFoundException', `No resource found for ${resourceArn.slice(0, 300)}.`);
  }
}
