// The credential issuer interface: what EKS Auth asks for once a token is
// verified and its association found, and what comes back. Implementations:
// sts.ts (real AWS STS AssumeRole, or moto/LocalStack) and local.ts (minted
// here, for development).
import type { Association } from '../../api/eks.js';
import type { SessionTag } from '../session.js';

export interface IssueRequest {
  association: Association;
  /** `eks-<cluster>-<pod>-<uuid>` or the association's template, already cut to STS's rules */
  sessionName: string;
  /** the six EKS tags and the association's own; undefined when the association disables session tags or the issuer does not use them */
  tags?: SessionTag[];
  /** whether the tags are passed on to roles the session assumes (TransitiveTagKeys); the association's transitiveSessionTags, default true */
  transitiveTags?: boolean;
}

export interface IssuedCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
  assumedRoleUser: {
    /** arn:aws:sts::<account>:assumed-role/<role-name>/<session> */
    arn: string;
    /** <role id>:<session> */
    assumeRoleId: string;
  };
}

export interface CredentialIssuer {
  /** whether the sessions it makes carry session tags (STS's do; the local issuer's have nowhere to keep them) */
  readonly usesSessionTags: boolean;
  /** Throws WireError: AccessDeniedException, ThrottlingException, ServiceUnavailableException, InternalServerException. */
  issue(request: IssueRequest): Promise<IssuedCredentials>;
  close(): void;
}
