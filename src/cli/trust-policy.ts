// `pod-identity trust-policy`: prints the trust policy a role needs for this
// server's AWS principal (found with STS GetCallerIdentity from the default
// credential chain, or given with --principal-arn).
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { Command } from 'commander';
import { isCrossAccount, principalForTrust, trustPolicy } from '../auth/trust-policy.js';
import { CliError, explainAwsError } from './fail.js';
import { arn, defaultNote, endpointUrl, withExamples } from './options.js';

interface TrustPolicyFlags {
  roleArn: string;
  principalArn?: string;
  externalId?: string;
  region?: string;
  stsEndpoint?: string;
}

async function callerArn(flags: TrustPolicyFlags): Promise<string> {
  const region = flags.region ?? process.env.AWS_REGION ?? 'us-east-1';
  const client = new STSClient({ region, ...(flags.stsEndpoint && { endpoint: flags.stsEndpoint }) });
  try {
    const identity = await client.send(new GetCallerIdentityCommand({}));
    if (!identity.Arn) throw new CliError('STS GetCallerIdentity answered without an ARN');
    return identity.Arn;
  } catch (error) {
    if (error instanceof CliError) throw error;
    const where = flags.stsEndpoint ?? `STS in ${region}`;
    throw new CliError(`cannot find this server's principal: ${explainAwsError(error, where, "give the principal with --principal-arn, or run where the server's AWS credentials are (environment, profile or instance role)")}`);
  } finally {
    client.destroy();
  }
}

export function registerTrustPolicyCommand(program: Command): void {
  withExamples(
    program
      .command('trust-policy')
      .description("print the trust policy a role needs so this server's AWS principal may assume it with session tags")
      .requiredOption('--role-arn <arn>', 'the role to be assumed (an association roleArn, or its targetRoleArn)', arn)
      .option('--principal-arn <arn>', "who assumes it; default: this server's principal from STS GetCallerIdentity (for a targetRoleArn: the association's roleArn)", arn)
      .option('--external-id <id>', 'require this sts:ExternalId (cross-account targetRoleArn chaining)')
      .option('--region <region>', `STS region for finding the principal ${defaultNote('$AWS_REGION or us-east-1')}`)
      .option('--sts-endpoint <url>', 'STS endpoint for finding the principal (moto, LocalStack, …)', endpointUrl)
      .addHelpText('after', "\nSelf-hosted, roles trust the server's own principal, not pods.eks.amazonaws.com (only EKS can use that).\nThe server calls sts:AssumeRole with session tags, so the policy allows sts:AssumeRole and sts:TagSession."),
    'pod-identity trust-policy --role-arn arn:aws:iam::111122223333:role/demo > trust.json && aws iam update-assume-role-policy --role-name demo --policy-document file://trust.json',
    'pod-identity trust-policy --role-arn arn:aws:iam::444455556666:role/target --principal-arn arn:aws:iam::111122223333:role/demo --external-id 3f2a…',
  ).action(async (flags: TrustPolicyFlags) => {
    const principal = principalForTrust(flags.principalArn ?? (await callerArn(flags)));
    if (isCrossAccount(flags.roleArn, principal) && flags.externalId === undefined) {
      console.error('pod-identity trust-policy: the role is in another account than its principal; consider --external-id (and the association\'s externalId)');
    }
    process.stdout.write(`${JSON.stringify(trustPolicy({ roleArn: flags.roleArn, principalArn: principal, externalId: flags.externalId }), null, 2)}\n`);
  });
}
