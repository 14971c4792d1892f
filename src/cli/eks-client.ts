// The association API from the shell, through the AWS SDK's EKS client (so
// what works here works for any SDK user), with the connection options every
// such command shares and failures said in one line.
import { EKSClient } from '@aws-sdk/client-eks';
import { Option, type Command } from 'commander';
import { CliError, explainAwsError } from './fail.js';
import { endpointUrl } from './options.js';

export interface ConnectionFlags {
  endpoint: string;
  region: string;
  accessKeyId?: string;
  secretAccessKey?: string;
}

/** Where the keys are when none were found: dev prints them, and keeps them. */
const ADMIN_KEYS_HINT =
  'pass --access-key-id and --secret-access-key, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or a profile (`pod-identity dev` prints its admin keys in step 1 of the steps it shows, and keeps them in <state-dir>/dev-state.json)';

/** --endpoint, --region and the admin key options. */
export function withConnection(command: Command): Command {
  return command
    .addOption(new Option('--endpoint <url>', 'pod-identity server API URL').env('POD_IDENTITY_ENDPOINT').default('http://127.0.0.1:8080').argParser(endpointUrl))
    .addOption(new Option('--region <region>', 'signing region').env('AWS_REGION').default('us-east-1'))
    .option('--access-key-id <id>', 'admin access key id (default: the AWS default credential chain)')
    .option('--secret-access-key <secret>', 'admin secret access key (prefer AWS_SECRET_ACCESS_KEY or a profile)');
}

/** Runs `work` with an EKS client for the flags; any failure leaves as one CliError line. */
export async function withEks<T>(flags: ConnectionFlags, work: (eks: EKSClient) => Promise<T>): Promise<T> {
  if ((flags.accessKeyId === undefined) !== (flags.secretAccessKey === undefined)) {
    throw new CliError('--access-key-id and --secret-access-key go together (or use the AWS default credential chain)');
  }
  const eks = new EKSClient({
    endpoint: flags.endpoint,
    region: flags.region,
    maxAttempts: 2,
    ...(flags.accessKeyId && { credentials: { accessKeyId: flags.accessKeyId, secretAccessKey: flags.secretAccessKey! } }),
  });
  try {
    return await work(eks);
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(explainAwsError(error, flags.endpoint, ADMIN_KEYS_HINT));
  } finally {
    eks.destroy();
  }
}
