// `pod-identity identities`: writes the container-credentials file that AWS's
// own pod identity webhook watches (`--watch-container-credentials-config`),
// from the association API, for operators who run that webhook instead of ours.
// It reads through ListPodIdentityAssociations, so it works against EKS too.
import { renameSync, writeFileSync } from 'node:fs';
import { EKSClient, paginateListPodIdentityAssociations } from '@aws-sdk/client-eks';
import { Option, type Command } from 'commander';
import { formatIdentitiesFile, toIdentitiesFile, type Identity } from '../webhook/identities.js';

interface Flags {
  clusterName: string;
  endpoint: string;
  region: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  file?: string;
  interval?: string;
}

async function fetchIdentities(eks: EKSClient, clusterName: string): Promise<string> {
  const subjects: Identity[] = [];
  for await (const page of paginateListPodIdentityAssociations({ client: eks, pageSize: 100 }, { clusterName })) {
    for (const a of page.associations ?? []) if (a.namespace && a.serviceAccount) subjects.push({ namespace: a.namespace, serviceAccount: a.serviceAccount });
  }
  return formatIdentitiesFile(toIdentitiesFile(subjects));
}

/** Replace the file in one step: the watcher never reads a half-written document. */
function writeAtomically(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

export function registerIdentitiesCommand(program: Command): void {
  program
    .command('identities')
    .description('print (or keep writing) the container-credentials identities file read by AWS’s pod identity webhook')
    .requiredOption('--cluster-name <name>', 'cluster whose associations are listed')
    .addOption(new Option('--endpoint <url>', 'pod-identity server API URL (or an EKS endpoint)').env('POD_IDENTITY_ENDPOINT').default('http://127.0.0.1:8080'))
    .addOption(new Option('--region <region>', 'signing region').env('AWS_REGION').default('us-east-1'))
    .option('--access-key-id <id>', 'admin access key id (default: the AWS default credential chain)')
    .option('--secret-access-key <secret>', 'admin secret access key (prefer AWS_SECRET_ACCESS_KEY or a profile)')
    .option('--file <path>', 'write the document to this file (atomically) instead of stdout')
    .option('--interval <seconds>', 'with --file: keep rewriting it every N seconds when the set changes')
    .addHelpText('after', '\nFormat: {"identities":[{"namespace":"…","serviceAccount":"…"}]}, one entry per association, sorted.')
    .action(async (flags: Flags) => {
      if ((flags.accessKeyId === undefined) !== (flags.secretAccessKey === undefined)) {
        throw new Error('--access-key-id and --secret-access-key go together (or use the AWS default credential chain)');
      }
      const intervalSeconds = flags.interval === undefined ? undefined : Number(flags.interval);
      if (intervalSeconds !== undefined && (!flags.file || !(intervalSeconds >= 1))) throw new Error('--interval needs --file and a number of seconds ≥ 1');
      const eks = new EKSClient({
        endpoint: flags.endpoint,
        region: flags.region,
        maxAttempts: 3,
        ...(flags.accessKeyId && { credentials: { accessKeyId: flags.accessKeyId, secretAccessKey: flags.secretAccessKey! } }),
      });
      try {
        let last = await fetchIdentities(eks, flags.clusterName);
        if (!flags.file) {
          process.stdout.write(last);
          return;
        }
        writeAtomically(flags.file, last);
        if (intervalSeconds === undefined) return;
        const file = flags.file;
        await new Promise<void>((resolve) => {
          const timer = setInterval(() => {
            fetchIdentities(eks, flags.clusterName).then(
              (text) => {
                if (text === last) return;
                writeAtomically(file, text);
                last = text;
              },
              (error: unknown) => console.error(`pod-identity identities: ${(error as Error).name}: ${(error as Error).message}; keeping the previous file`),
            );
          }, intervalSeconds * 1000);
          const stop = () => {
            clearInterval(timer);
            resolve();
          };
          process.once('SIGTERM', stop);
          process.once('SIGINT', stop);
        });
      } catch (error) {
        const e = error as Error;
        console.error(`${e.name}: ${e.message}`);
        process.exitCode = 1;
      } finally {
        eks.destroy();
      }
    });
}
