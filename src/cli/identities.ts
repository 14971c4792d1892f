// `pod-identity identities`: writes the container-credentials file that AWS's
// own pod identity webhook watches (`--watch-container-credentials-config`),
// from the association API, for operators who run that webhook instead of ours.
// It reads through ListPodIdentityAssociations, so it works against EKS too.
import { renameSync, writeFileSync } from 'node:fs';
import { paginateListPodIdentityAssociations, type EKSClient } from '@aws-sdk/client-eks';
import type { Command } from 'commander';
import { formatIdentitiesFile, toIdentitiesFile, type Identity } from '../webhook/identities.js';
import { withConnection, withEks, type ConnectionFlags } from './eks-client.js';
import { CliError, oneLine } from './fail.js';
import { clusterNameOption, integer, withExamples } from './options.js';

interface Flags extends ConnectionFlags {
  clusterName: string;
  file?: string;
  interval?: number;
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
  withExamples(
    withConnection(
      program
        .command('identities')
        .description('print (or keep writing) the container-credentials identities file read by AWS’s pod identity webhook')
        .addOption(clusterNameOption('cluster whose associations are listed')),
    )
      .option('--file <path>', 'write the document to this file (atomically) instead of stdout')
      .option('--interval <seconds>', 'with --file: keep rewriting it every N seconds when the set changes', integer(1, 86_400))
      .addHelpText('after', '\nFormat: {"identities":[{"namespace":"…","serviceAccount":"…"}]}, one entry per association, sorted.'),
    'pod-identity identities -c my-cluster --file /var/run/pod-identity/identities.json --interval 30',
  ).action((flags: Flags) =>
    withEks(flags, async (eks) => {
      if (flags.interval !== undefined && !flags.file) throw new CliError('--interval needs --file');
      let last = await fetchIdentities(eks, flags.clusterName);
      if (!flags.file) {
        process.stdout.write(last);
        return;
      }
      writeAtomically(flags.file, last);
      if (flags.interval === undefined) return;
      const file = flags.file;
      await new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          fetchIdentities(eks, flags.clusterName).then(
            (text) => {
              if (text === last) return;
              writeAtomically(file, text);
              last = text;
            },
            (error: unknown) => process.stderr.write(`pod-identity identities: ${oneLine(error)}; keeping the previous file\n`),
          );
        }, flags.interval! * 1000);
        const stop = () => {
          clearInterval(timer);
          resolve();
        };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
    }),
  );
}
