// What changes an association and what it is keyed by. What an association is
// comes from the EKS contract: api/eks.ts's Association.
import type { Association } from '../api/eks.js';

/** The fields an update may change. */
export type AssociationChanges = Partial<Pick<Association, 'roleArn' | 'disableSessionTags' | 'targetRoleArn' | 'externalId' | 'policy' | 'tags'>> & {
  modifiedAt: number;
};

/** A service account within a cluster: the key of an association. */
export interface Subject {
  clusterName: string;
  namespace: string;
  serviceAccount: string;
}
