// What changes an association and what it is keyed by. What an association is
// comes from the EKS contract: api/eks.ts's Association.
import { MAX_TAGS, type Association } from '../api/eks.js';
import { WireError } from '../lib/errors.js';

/** The fields an update may change; a field given as undefined is cleared. */
export type AssociationChanges = Partial<Pick<Association, 'roleArn' | 'disableSessionTags' | 'targetRoleArn' | 'externalId' | 'policy' | 'tags' | 'sessionTags' | 'sessionNameTemplate' | 'transitiveSessionTags'>> & {
  /** absent: kept (tag edits do not count as modifications, as in EKS) */
  modifiedAt?: number;
  /** TagResource and UntagResource: keys set and keys removed, applied to the tags as they are in the store */
  tagEdits?: { set?: Readonly<Record<string, string>>; remove?: readonly string[] };
};

/** A service account within a cluster: the key of an association. */
export interface Subject {
  clusterName: string;
  namespace: string;
  serviceAccount: string;
}

const CLEARABLE = ['targetRoleArn', 'externalId', 'policy', 'sessionNameTemplate'] as const;

/**
 * The association after `changes`, pure: what every store writes inside its
 * transaction, so that concurrent tag edits never lose each other. Tags are
 * replaced only when given; tag edits merge, and may not take a resource past
 * 50 tags (BadRequestException, as TagResource answers).
 */
export function applyChanges(current: Association, changes: AssociationChanges): Association {
  const { tagEdits, ...fields } = changes;
  const next: Association = { ...current, ...fields, tags: fields.tags ?? current.tags, modifiedAt: fields.modifiedAt ?? current.modifiedAt };
  for (const key of CLEARABLE) if (next[key] === undefined || next[key] === '') delete next[key];
  // absent is the default (no custom tags, transitive), so an association made as in EKS keeps EKS's shape
  if (next.sessionTags === undefined || Object.keys(next.sessionTags).length === 0) delete next.sessionTags;
  if (next.transitiveSessionTags !== false) delete next.transitiveSessionTags;
  if (tagEdits) {
    const tags = { ...next.tags, ...tagEdits.set };
    for (const key of tagEdits.remove ?? []) delete tags[key];
    if (Object.keys(tags).length > MAX_TAGS) {
      throw new WireError('BadRequestException', `An association may have at most ${MAX_TAGS} tags; it would have ${Object.keys(tags).length}.`);
    }
    next.tags = tags;
  }
  return next;
}
