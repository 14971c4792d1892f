// `pod-identity associations …`: the association API from the shell, through
// the AWS SDK's EKS client (so what works here works for any SDK user).
import {
  CreatePodIdentityAssociationCommand,
  DeletePodIdentityAssociationCommand,
  DescribePodIdentityAssociationCommand,
  EKSClient,
  paginateListPodIdentityAssociations,
  UpdatePodIdentityAssociationCommand,
  type PodIdentityAssociation,
  type PodIdentityAssociationSummary,
} from '@aws-sdk/client-eks';
import { Command, Option } from 'commander';
import { parseOutputFormat, printResult, renderTable, type OutputFormat } from './output.js';

interface ConnectionFlags {
  endpoint: string;
  region: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  clusterName: string;
  output: OutputFormat;
}

function client(flags: ConnectionFlags): EKSClient {
  if ((flags.accessKeyId === undefined) !== (flags.secretAccessKey === undefined)) {
    throw new Error('--access-key-id and --secret-access-key go together (or use the AWS default credential chain)');
  }
  return new EKSClient({
    endpoint: flags.endpoint,
    region: flags.region,
    maxAttempts: 3,
    ...(flags.accessKeyId && { credentials: { accessKeyId: flags.accessKeyId, secretAccessKey: flags.secretAccessKey! } }),
  });
}

const DETAIL_COLUMNS = ['associationId', 'namespace', 'serviceAccount', 'roleArn', 'targetRoleArn', 'disableSessionTags', 'modifiedAt'];

function printAssociation(flags: ConnectionFlags, association: PodIdentityAssociation | undefined): void {
  printResult(flags.output, { association }, () => renderTable([{ ...association }], DETAIL_COLUMNS));
}

function parseTags(values: string[] | undefined): Record<string, string> | undefined {
  if (!values?.length) return undefined;
  return Object.fromEntries(
    values.map((pair) => {
      const eq = pair.indexOf('=');
      if (eq < 1) throw new Error(`--tag expects key=value, got "${pair}"`);
      return [pair.slice(0, eq), pair.slice(eq + 1)];
    }),
  );
}

function parseBool(value: string): boolean {
  if (value !== 'true' && value !== 'false') throw new Error(`expected true or false, got "${value}"`);
  return value === 'true';
}

/** Connection options shared by every subcommand. */
function withConnection(command: Command): Command {
  return command
    .requiredOption('--cluster-name <name>', 'cluster the association belongs to')
    .addOption(new Option('--endpoint <url>', 'pod-identity server API URL').env('POD_IDENTITY_ENDPOINT').default('http://127.0.0.1:8080'))
    .addOption(new Option('--region <region>', 'signing region').env('AWS_REGION').default('us-east-1'))
    .option('--access-key-id <id>', 'admin access key id (default: the AWS default credential chain)')
    .option('--secret-access-key <secret>', 'admin secret access key (prefer AWS_SECRET_ACCESS_KEY or a profile)')
    .addOption(new Option('-o, --output <format>', 'json or table').default('json').argParser(parseOutputFormat));
}

async function run(flags: ConnectionFlags, work: (eks: EKSClient) => Promise<void>): Promise<void> {
  const eks = client(flags);
  try {
    await work(eks);
  } catch (error) {
    const e = error as Error;
    // AWS errors carry their wire name; say it, then exit non-zero.
    console.error(`${e.name}: ${e.message}`);
    process.exitCode = 1;
  } finally {
    eks.destroy();
  }
}

export function registerAssociationsCommand(program: Command): void {
  const group = program.command('associations').description('create, describe, list, update and delete pod identity associations');

  withConnection(group.command('create').description('map a service account to an IAM role'))
    .requiredOption('--namespace <ns>', 'Kubernetes namespace')
    .requiredOption('--service-account <name>', 'Kubernetes service account')
    .requiredOption('--role-arn <arn>', 'IAM role the pods receive')
    .option('--target-role-arn <arn>', 'role assumed with the first role’s credentials (role chaining)')
    .option('--disable-session-tags', 'do not attach the six eks session tags')
    .option('--policy <json>', 'session policy (requires --disable-session-tags)')
    .option('--tag <key=value...>', 'resource tags')
    .option('--client-request-token <token>', 'idempotency token')
    .action((flags: ConnectionFlags & { namespace: string; serviceAccount: string; roleArn: string; targetRoleArn?: string; disableSessionTags?: boolean; policy?: string; tag?: string[]; clientRequestToken?: string }) =>
      run(flags, async (eks) => {
        const out = await eks.send(
          new CreatePodIdentityAssociationCommand({
            clusterName: flags.clusterName,
            namespace: flags.namespace,
            serviceAccount: flags.serviceAccount,
            roleArn: flags.roleArn,
            targetRoleArn: flags.targetRoleArn,
            disableSessionTags: flags.disableSessionTags,
            policy: flags.policy,
            tags: parseTags(flags.tag),
            clientRequestToken: flags.clientRequestToken,
          }),
        );
        printAssociation(flags, out.association);
      }),
    );

  withConnection(group.command('describe').description('show one association'))
    .requiredOption('--association-id <id>', 'association id (a-…)')
    .action((flags: ConnectionFlags & { associationId: string }) =>
      run(flags, async (eks) => {
        const out = await eks.send(new DescribePodIdentityAssociationCommand({ clusterName: flags.clusterName, associationId: flags.associationId }));
        printAssociation(flags, out.association);
      }),
    );

  withConnection(group.command('list').description('list associations (all pages)'))
    .option('--namespace <ns>', 'only this namespace')
    .option('--service-account <name>', 'only this service account')
    .action((flags: ConnectionFlags & { namespace?: string; serviceAccount?: string }) =>
      run(flags, async (eks) => {
        const associations: PodIdentityAssociationSummary[] = [];
        for await (const page of paginateListPodIdentityAssociations(
          { client: eks, pageSize: 100 },
          { clusterName: flags.clusterName, namespace: flags.namespace, serviceAccount: flags.serviceAccount },
        )) {
          associations.push(...(page.associations ?? []));
        }
        printResult(flags.output, { associations }, () =>
          renderTable(associations.map((a) => ({ ...a })), ['associationId', 'namespace', 'serviceAccount', 'associationArn']),
        );
      }),
    );

  withConnection(group.command('update').description('change the role, target role, session tags or policy'))
    .requiredOption('--association-id <id>', 'association id (a-…)')
    .option('--role-arn <arn>', 'new IAM role')
    .option('--target-role-arn <arn>', 'new target role; "" removes it')
    .option('--disable-session-tags <bool>', 'true or false', parseBool)
    .option('--policy <json>', 'session policy; "" removes it')
    .action((flags: ConnectionFlags & { associationId: string; roleArn?: string; targetRoleArn?: string; disableSessionTags?: boolean; policy?: string }) =>
      run(flags, async (eks) => {
        const out = await eks.send(
          new UpdatePodIdentityAssociationCommand({
            clusterName: flags.clusterName,
            associationId: flags.associationId,
            roleArn: flags.roleArn,
            targetRoleArn: flags.targetRoleArn,
            disableSessionTags: flags.disableSessionTags,
            policy: flags.policy,
          }),
        );
        printAssociation(flags, out.association);
      }),
    );

  withConnection(group.command('delete').description('delete an association'))
    .requiredOption('--association-id <id>', 'association id (a-…)')
    .action((flags: ConnectionFlags & { associationId: string }) =>
      run(flags, async (eks) => {
        const out = await eks.send(new DeletePodIdentityAssociationCommand({ clusterName: flags.clusterName, associationId: flags.associationId }));
        printAssociation(flags, out.association);
      }),
    );
}
