// What an association is, independent of any wire format or database.

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
}

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
