// `pod-identity associations …`: the association API from the shell.
import {
  CreatePodIdentityAssociationCommand,
  DeletePodIdentityAssociationCommand,
  DescribePodIdentityAssociationCommand,
  paginateListPodIdentityAssociations,
  UpdatePodIdentityAssociationCommand,
  type EKSClient,
  type PodIdentityAssociation,
  type PodIdentityAssociationSummary,
} from '@aws-sdk/client-eks';
import { InvalidArgumentError, type Command } from 'commander';
import { withConnection, withEks, type ConnectionFlags } from './eks-client.js';
import { clusterNameOption, withExamples } from './options.js';
import { age, outputOption, printResult, renderTable, type OutputFormat } from './output.js';

interface Flags extends ConnectionFlags {
  clusterName: string;
  output: OutputFormat;
}

const DETAIL_COLUMNS = ['associationId', 'namespace', 'serviceAccount', 'roleArn', 'targetRoleArn', 'disableSessionTags', 'age'];

function printAssociation(flags: Flags, association: PodIdentityAssociation | undefined): void {
  printResult(flags.output, { association }, () => renderTable([{ ...association, age: age(association?.createdAt) }], DETAIL_COLUMNS));
}

function collectTag(pair: string, previous: Record<string, string> | undefined): Record<string, string> {
  const eq = pair.indexOf('=');
  if (eq < 1) throw new InvalidArgumentError(`expected key=value, got "${pair}"`);
  return { ...previous, [pair.slice(0, eq)]: pair.slice(eq + 1) };
}

function parseBool(value: string): boolean {
  if (value !== 'true' && value !== 'false') throw new InvalidArgumentError('expected true or false');
  return value === 'true';
}

/** The options every subcommand takes: the cluster, the connection and the output format. */
function subcommand(group: Command, name: string, description: string): Command {
  return withConnection(group.command(name).description(description).addOption(clusterNameOption('cluster the association belongs to'))).addOption(outputOption());
}

/** Details of listed associations (the list answer has no role or times), a few requests at a time. */
async function describeAll(eks: EKSClient, clusterName: string, summaries: PodIdentityAssociationSummary[]): Promise<PodIdentityAssociation[]> {
  const out: PodIdentityAssociation[] = new Array(summaries.length);
  let next = 0;
  const worker = async () => {
    while (next < summaries.length) {
      const i = next++;
      const found = await eks.send(new DescribePodIdentityAssociationCommand({ clusterName, associationId: summaries[i]!.associationId }));
      out[i] = found.association ?? { ...summaries[i] };
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, summaries.length) }, worker));
  return out;
}

const CONNECTION_EXAMPLE = '--endpoint http://127.0.0.1:8080 --access-key-id AKIA… --secret-access-key …';

export function registerAssociationsCommand(program: Command): void {
  const group = withExamples(
    program.command('associations').description('create, describe, list, update and delete pod identity associations'),
    `pod-identity associations list -c dev -o table ${CONNECTION_EXAMPLE}`,
  );

  withExamples(
    subcommand(group, 'create', 'map a service account to an IAM role')
      .requiredOption('-n, --namespace <ns>', 'Kubernetes namespace')
      .requiredOption('-s, --service-account <name>', 'Kubernetes service account')
      .requiredOption('--role-arn <arn>', 'IAM role the pods receive')
      .option('--target-role-arn <arn>', 'role assumed with the first role’s credentials (role chaining)')
      .option('--disable-session-tags', 'do not attach the six eks session tags')
      .option('--policy <json>', 'session policy (requires --disable-session-tags)')
      .option('--tag <key=value>', 'a resource tag; repeat for more', collectTag)
      .option('--client-request-token <token>', 'idempotency token'),
    `pod-identity associations create -c dev -n default -s demo --role-arn arn:aws:iam::111122223333:role/demo --tag team=web ${CONNECTION_EXAMPLE}`,
  ).action((flags: Flags & { namespace: string; serviceAccount: string; roleArn: string; targetRoleArn?: string; disableSessionTags?: boolean; policy?: string; tag?: Record<string, string>; clientRequestToken?: string }) =>
    withEks(flags, async (eks) => {
      const out = await eks.send(
        new CreatePodIdentityAssociationCommand({
          clusterName: flags.clusterName,
          namespace: flags.namespace,
          serviceAccount: flags.serviceAccount,
          roleArn: flags.roleArn,
          targetRoleArn: flags.targetRoleArn,
          disableSessionTags: flags.disableSessionTags,
          policy: flags.policy,
          tags: flags.tag,
          clientRequestToken: flags.clientRequestToken,
        }),
      );
      printAssociation(flags, out.association);
    }),
  );

  withExamples(
    subcommand(group, 'describe', 'show one association').requiredOption('--association-id <id>', 'association id (a-…)'),
    `pod-identity associations describe -c dev --association-id a-0123456789abcdefg ${CONNECTION_EXAMPLE}`,
  ).action((flags: Flags & { associationId: string }) =>
    withEks(flags, async (eks) => {
      const out = await eks.send(new DescribePodIdentityAssociationCommand({ clusterName: flags.clusterName, associationId: flags.associationId }));
      printAssociation(flags, out.association);
    }),
  );

  withExamples(
    subcommand(group, 'list', 'list associations (all pages)')
      .option('-n, --namespace <ns>', 'only this namespace')
      .option('-s, --service-account <name>', 'only this service account'),
    `pod-identity associations list -c dev -n default -o table ${CONNECTION_EXAMPLE}`,
  ).action((flags: Flags & { namespace?: string; serviceAccount?: string }) =>
    withEks(flags, async (eks) => {
      const associations: PodIdentityAssociationSummary[] = [];
      for await (const page of paginateListPodIdentityAssociations(
        { client: eks, pageSize: 100 },
        { clusterName: flags.clusterName, namespace: flags.namespace, serviceAccount: flags.serviceAccount },
      )) {
        associations.push(...(page.associations ?? []));
      }
      if (flags.output === 'json') {
        printResult('json', { associations }, () => '');
        return;
      }
      if (associations.length === 0) {
        const filter = [flags.namespace && `namespace ${flags.namespace}`, flags.serviceAccount && `service account ${flags.serviceAccount}`].filter(Boolean).join(', ');
        process.stdout.write(`no associations in cluster ${flags.clusterName}${filter ? ` for ${filter}` : ''}\n`);
        return;
      }
      const detailed = await describeAll(eks, flags.clusterName, associations);
      const now = Date.now();
      process.stdout.write(`${renderTable(detailed.map((a) => ({ ...a, role: a.targetRoleArn ? `${a.roleArn} → ${a.targetRoleArn}` : a.roleArn, age: age(a.createdAt, now) })), ['associationId', 'namespace', 'serviceAccount', 'role', 'age'])}\n`);
    }),
  );

  withExamples(
    subcommand(group, 'update', 'change the role, target role, session tags or policy')
      .requiredOption('--association-id <id>', 'association id (a-…)')
      .option('--role-arn <arn>', 'new IAM role')
      .option('--target-role-arn <arn>', 'new target role; "" removes it')
      .option('--disable-session-tags <bool>', 'true or false', parseBool)
      .option('--policy <json>', 'session policy; "" removes it'),
    `pod-identity associations update -c dev --association-id a-0123456789abcdefg --role-arn arn:aws:iam::111122223333:role/demo-v2 ${CONNECTION_EXAMPLE}`,
  ).action((flags: Flags & { associationId: string; roleArn?: string; targetRoleArn?: string; disableSessionTags?: boolean; policy?: string }) =>
    withEks(flags, async (eks) => {
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

  withExamples(
    subcommand(group, 'delete', 'delete an association').requiredOption('--association-id <id>', 'association id (a-…)'),
    `pod-identity associations delete -c dev --association-id a-0123456789abcdefg ${CONNECTION_EXAMPLE}`,
  ).action((flags: Flags & { associationId: string }) =>
    withEks(flags, async (eks) => {
      const out = await eks.send(new DeletePodIdentityAssociationCommand({ clusterName: flags.clusterName, associationId: flags.associationId }));
      printAssociation(flags, out.association);
    }),
  );
}
