// The aws-sts issuer's own AWS principal, and whether a role trusts it: what
// `pod-identity doctor` asks the server, since only the server holds the
// credentials that call sts:AssumeRole. The principal comes from STS
// GetCallerIdentity; a role's trust policy from IAM GetRole, when the
// server's credentials may read it (emulators such as moto serve IAM on the
// STS endpoint, hence the default).
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { GetRoleCommand, IAMClient } from '@aws-sdk/client-iam';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { evaluateTrust, principalForTrust, type TrustVerdict } from '../trust-policy.js';
import { parseRoleArn } from '../session.js';

export interface PrincipalOptions {
  region: string;
  stsEndpoint?: string;
  /** default: stsEndpoint when set (an emulator), else AWS's IAM */
  iamEndpoint?: string;
  credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
}

export type RoleTrust = ({ readable: true } & TrustVerdict) | { readable: false; reason: string };

export interface ServerPrincipal {
  /** the ARN a trust policy names for this server (an assumed-role session as its role) */
  arn(): Promise<string>;
  /** what the role's trust policy lets this server do; unreadable when IAM refuses GetRole */
  roleTrust(roleArn: string, principalArn: string): Promise<RoleTrust>;
  close(): void;
}

const CLIENT_LIMITS = { maxAttempts: 2, requestHandler: { connectionTimeout: 2_000, requestTimeout: 5_000 } };

export function serverPrincipal(options: PrincipalOptions): ServerPrincipal {
  const credentials = options.credentials && { credentials: options.credentials };
  const sts = new STSClient({ region: options.region, ...(options.stsEndpoint && { endpoint: options.stsEndpoint }), ...credentials, ...CLIENT_LIMITS });
  const iamEndpoint = options.iamEndpoint ?? options.stsEndpoint;
  const iam = new IAMClient({ region: options.region, ...(iamEndpoint && { endpoint: iamEndpoint }), ...credentials, ...CLIENT_LIMITS });
  return {
    async arn() {
      const identity = await sts.send(new GetCallerIdentityCommand({}));
      if (!identity.Arn) throw new Error('STS GetCallerIdentity answered without an ARN');
      return principalForTrust(identity.Arn);
    },
    async roleTrust(roleArn, principalArn) {
      const role = parseRoleArn(roleArn);
      if (!role) return { readable: false, reason: `${roleArn} is not a role ARN` };
      try {
        const answer = await iam.send(new GetRoleCommand({ RoleName: role.roleName }));
        const document = answer.Role?.AssumeRolePolicyDocument;
        if (!document) return { readable: false, reason: 'IAM GetRole answered no trust policy' };
        return { readable: true, ...evaluateTrust(document, principalArn) };
      } catch (error) {
        const e = error as { name?: string; message?: string };
        return { readable: false, reason: `IAM GetRole: ${e.name ?? 'Error'}: ${(e.message ?? '').slice(0, 200)}` };
      }
    },
    close() {
      sts.destroy();
      iam.destroy();
    },
  };
}
