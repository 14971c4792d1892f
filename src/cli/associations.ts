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
import { HttpRequest, HttpResponse } from '@smithy/protocol-http';
import type { MiddlewareStack } from '@smithy/types';
import { InvalidArgumentError, type Command } from 'commander';
import { withConnection, withEks, type ConnectionFlags } from './eks-client.js';
import { clusterNameOption, withExamples } from './options.js';
import { age, outputOption, printResult, renderTable, type OutputFormat } from './output.js';

interface Flags extends ConnectionFlags {
  clusterName: string;
  output: OutputFormat;
}

const DETAIL_COLUMNS = ['associationId', 'namespace', 'serviceAccount', 'roleArn', 'targetRoleArn', 'disableSessionTags', 'sessionTags', 'sessionNameTemplate', 'transitiveSessionTags', 'age'];

/** Our extensions of the association (sessionTags, sessionNameTemplate, transitiveSessionTags), which EKS's model does not know. */
type Extensions = Record<string, unknown>;
const EXTENSION_FIELDS = ['sessionTags', 'sessionNameTemplate', 'transitiveSessionTags'];

/**
 * Sends `extra` in the command's JSON body and keeps the extension fields of
 * the association it answers: the EKS SDK serializes and parses only its
 * model's members, and the rest of the request (signing, retries, errors)
 * stays the SDK's.
 */
function withExtensions(command: { middlewareStack: MiddlewareStack<any, any> }, extra: Extensions = {}): Extensions { // eslint-disable-line @typescript-eslint/no-explicit-any
  const answered: Extensions = {};
  command.middlewareStack.add(
    (next) => async (args) => {
      if (HttpRequest.isInstance(args.request) && Object.keys(extra).length > 0) {
        // the SDK serializes to a string or to UTF-8 bytes, depending on its version
        const raw: unknown = args.request.body;
        const text = typeof raw === 'string' ? raw : raw instanceof Uint8Array ? new TextDecoder().decode(raw) : '';
        const body = JSON.parse(text === '' ? '{}' : text) as Extensions;
        args.request.body = JSON.stringify({ ...body, ...extra });
      }
      return next(args);
    },
    // before the content-length and signing middleware, which then cover the new body
    { step: 'build', priority: 'high', name: 'podIdentityExtensionsRequest' },
  );
  command.middlewareStack.add(
    (next) => async (args) => {
      const result = await next(args);
      const response = result.response;
      if (HttpResponse.isInstance(response) && response.body && typeof (response.body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === 'function') {
        const chunks: Uint8Array[] = [];
        for await (const chunk of response.body as AsyncIterable<Uint8Array>) chunks.push(chunk);
        const bytes = Buffer.concat(chunks);
        // the SDK's deserializer reads the same bytes next
        response.body = new Uint8Array(bytes);
        try {
          const association = (JSON.parse(bytes.toString('utf8')) as { association?: Extensions }).association ?? {};
          for (const field of EXTENSION_FIELDS) if (association[field] !== undefined) answered[field] = association[field];
        } catch {
          // not JSON: the SDK reports it
        }
      }
      return result;
    },
    // inside the deserializer: the raw answer, before the SDK parses it
    { step: 'deserialize', priority: 'low', name: 'podIdentityExtensionsResponse' },
  );
  return answered;
}

function printAssociation(flags: Flags, association: PodIdentityAssociation | undefined, extensions: Extensions): void {
  const shown = association && { ...association, ...extensions };
  printResult(flags.output, { association: shown }, () => renderTable([{ ...shown, age: age(association?.createdAt) }], DETAIL_COLUMNS));
}

/** The extension fields a create or update sets, from its flags. */
function extensionsOf(flags: { sessionTag?: Record<string, string>; noSessionTags?: boolean; sessionNameTemplate?: string; transitiveSessionTags?: boolean }): Extensions {
  return {
    ...(flags.sessionTag && { sessionTags: flags.sessionTag }),
    ...(flags.noSessionTags && { sessionTags: {} }),
    ...(flags.sessionNameTemplate !== undefined && { sessionNameTemplate: flags.sessionNameTemplate }),
    ...(flags.transitiveSessionTags !== undefined && { transitiveSessionTags: flags.transitiveSessionTags }),
  };
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
  return withConnection(group.command(name).description(description).addOption(clusterNameOption('cluster the association belongs to'))).addOption(outputOption<OutputFormat>(['json', 'table']));
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
    subcommand(group, 'create', 'map a service account (or a pattern of them) to an IAM role')
      .requiredOption('-n, --namespace <ns>', 'Kubernetes namespace, "*", or a prefix ending in "*" (team-*)')
      .requiredOption('-s, --service-account <name>', 'Kubernetes service account, "*", or a prefix ending in "*" (build-*)')
      .requiredOption('--role-arn <arn>', 'IAM role the pods receive')
      .option('--target-role-arn <arn>', 'role assumed with the first role’s credentials (role chaining)')
      .option('--disable-session-tags', 'do not attach the six eks session tags')
      .option('--policy <json>', 'session policy (requires --disable-session-tags)')
      .option('--tag <key=value>', 'a resource tag; repeat for more', collectTag)
      .option('--session-tag <key=value>', 'a session tag beyond the six eks ones; the value may read a pod label: team={{pod.labels.team}}; repeat for more', collectTag)
      .option('--session-name-template <template>', 'role session name from {cluster} {namespace} {serviceAccount} {pod} {random} (default: eks-<cluster>-<pod>-<uuid>)')
      .option('--no-transitive-session-tags', 'keep the session tags off TransitiveTagKeys, so roles chained from the session keep their tag budget')
      .option('--client-request-token <token>', 'idempotency token'),
    `pod-identity associations create -c dev -n default -s demo --role-arn arn:aws:iam::111122223333:role/demo --tag team=web ${CONNECTION_EXAMPLE}`,
    `pod-identity associations create -c dev -n ci -s 'build-*' --role-arn arn:aws:iam::111122223333:role/ci --session-tag 'team={{pod.labels.team}}' --session-name-template 'ci-{pod}-{random}' --no-transitive-session-tags ${CONNECTION_EXAMPLE}`,
  ).action(
    (
      flags: Flags & {
        namespace: string;
        serviceAccount: string;
        roleArn: string;
        targetRoleArn?: string;
        disableSessionTags?: boolean;
        policy?: string;
        tag?: Record<string, string>;
        sessionTag?: Record<string, string>;
        sessionNameTemplate?: string;
        transitiveSessionTags: boolean;
        clientRequestToken?: string;
      },
    ) =>
    withEks(flags, async (eks) => {
      const command = new CreatePodIdentityAssociationCommand({
          clusterName: flags.clusterName,
          namespace: flags.namespace,
          serviceAccount: flags.serviceAccount,
          roleArn: flags.roleArn,
          targetRoleArn: flags.targetRoleArn,
          disableSessionTags: flags.disableSessionTags,
          policy: flags.policy,
          tags: flags.tag,
          clientRequestToken: flags.clientRequestToken,
        });
      // commander's --no-… flag defaults to true: only false is sent
      const extensions = withExtensions(command, extensionsOf({ ...flags, transitiveSessionTags: flags.transitiveSessionTags ? undefined : false }));
      const out = await eks.send(command);
      printAssociation(flags, out.association, extensions);
    }),
  );

  withExamples(
    subcommand(group, 'describe', 'show one association').requiredOption('--association-id <id>', 'association id (a-…)'),
    `pod-identity associations describe -c dev --association-id a-0123456789abcdefg ${CONNECTION_EXAMPLE}`,
  ).action((flags: Flags & { associationId: string }) =>
    withEks(flags, async (eks) => {
      const command = new DescribePodIdentityAssociationCommand({ clusterName: flags.clusterName, associationId: flags.associationId });
      const extensions = withExtensions(command);
      const out = await eks.send(command);
      printAssociation(flags, out.association, extensions);
    }),
  );

  withExamples(
    subcommand(group, 'list', 'list associations (all pages); with -n and -s naming one service account, the association that applies to it (exact or pattern)')
      .option('-n, --namespace <ns>', 'only this namespace')
      .option('-s, --service-account <name>', 'only this service account'),
    `pod-identity associations list -c dev -n default -o table ${CONNECTION_EXAMPLE}`,
    `pod-identity associations list -c dev -n ci -s build-42 -o table ${CONNECTION_EXAMPLE}   # which association applies to ci/build-42`,
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
    subcommand(group, 'update', 'change the role, target role, session tags, session name or policy')
      .requiredOption('--association-id <id>', 'association id (a-…)')
      .option('--role-arn <arn>', 'new IAM role')
      .option('--target-role-arn <arn>', 'new target role; "" removes it')
      .option('--disable-session-tags <bool>', 'true or false', parseBool)
      .option('--policy <json>', 'session policy; "" removes it')
      .option('--session-tag <key=value>', 'replaces the custom session tags; repeat for more', collectTag)
      .option('--no-session-tags', 'removes the custom session tags')
      .option('--session-name-template <template>', 'new session name template; "" restores eks-<cluster>-<pod>-<uuid>')
      .option('--transitive-session-tags <bool>', 'true or false', parseBool),
    `pod-identity associations update -c dev --association-id a-0123456789abcdefg --role-arn arn:aws:iam::111122223333:role/demo-v2 ${CONNECTION_EXAMPLE}`,
    `pod-identity associations update -c dev --association-id a-0123456789abcdefg --session-tag cost-center=cc-42 --transitive-session-tags false ${CONNECTION_EXAMPLE}`,
  ).action(
    (
      flags: Flags & {
        associationId: string;
        roleArn?: string;
        targetRoleArn?: string;
        disableSessionTags?: boolean;
        policy?: string;
        sessionTag?: Record<string, string>;
        sessionTags: boolean;
        sessionNameTemplate?: string;
        transitiveSessionTags?: boolean;
      },
    ) =>
    withEks(flags, async (eks) => {
      const command = new UpdatePodIdentityAssociationCommand({
          clusterName: flags.clusterName,
          associationId: flags.associationId,
          roleArn: flags.roleArn,
          targetRoleArn: flags.targetRoleArn,
          disableSessionTags: flags.disableSessionTags,
          policy: flags.policy,
        });
      const extensions = withExtensions(command, extensionsOf({ ...flags, noSessionTags: !flags.sessionTags }));
      const out = await eks.send(command);
      printAssociation(flags, out.association, extensions);
    }),
  );

  withExamples(
    subcommand(group, 'delete', 'delete an association').requiredOption('--association-id <id>', 'association id (a-…)'),
    `pod-identity associations delete -c dev --association-id a-0123456789abcdefg ${CONNECTION_EXAMPLE}`,
  ).action((flags: Flags & { associationId: string }) =>
    withEks(flags, async (eks) => {
      const command = new DeletePodIdentityAssociationCommand({ clusterName: flags.clusterName, associationId: flags.associationId });
      const extensions = withExtensions(command);
      const out = await eks.send(command);
      printAssociation(flags, out.association, extensions);
    }),
  );
}
