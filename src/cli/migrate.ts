// `pod-identity migrate --from sqlite:<path> --to postgres://…`: copies every
// association into a PostgreSQL store, idempotently, with progress on stderr.
import type { Command } from 'commander';
import { integer, withExamples } from './options.js';
import { copyAssociations, openSourceStore, parseStoreLocation, type CopyCounts } from '../associations/migrate.js';
import { PostgresAssociationStore, redactDatabaseUrl } from '../associations/stores/postgres/store.js';

function describeCounts(c: CopyCounts): string {
  return `${c.done}/${c.total} associations (created ${c.created}, updated ${c.updated}, unchanged ${c.unchanged}, conflicts ${c.conflicts})`;
}

export function registerMigrateCommand(program: Command): void {
  withExamples(
    program
      .command('migrate')
      .description('copy every association from one store into a PostgreSQL store (idempotent: safe to run again)')
      .requiredOption('--from <store>', 'source store: sqlite:<path to associations.db> (in the server\'s dataDir) or postgres://…')
      .requiredOption('--to <url>', 'target PostgreSQL store: postgres://user:password@host:5432/database (the schema is created when missing)')
      .option('--batch-size <n>', 'associations copied per transaction (1-2000)', integer(1, 2000), 500)
      .option('--quiet', 'print only the summary, no progress')
      .addHelpText(
        'after',
        `
Associations keep their ids, ARNs, timestamps and owners. An association that
already exists in the target with the same id is overwritten only when it
differs; one whose (cluster, namespace, serviceAccount) is held by a different
association in the target is reported as a conflict and not copied (exit
status 1). Deletions in the source are not carried over: stop the servers on
the source (or run again just before switching) so the copy is complete.`,
      ),
    'pod-identity migrate --from sqlite:./data/associations.db --to postgres://pod-identity:secret@db:5432/pod_identity',
  ).action(async (flags: { from: string; to: string; batchSize: number; quiet?: boolean }) => {
    const from = parseStoreLocation(flags.from);
    const to = parseStoreLocation(flags.to);
    if (to.kind !== 'postgres') throw new Error('--to must be a PostgreSQL URL (postgres://…)');
    if (from.kind === 'postgres' && from.url === to.url) throw new Error('--from and --to are the same database');
    const source = await openSourceStore(from);
    let target: PostgresAssociationStore | undefined;
    try {
      target = await PostgresAssociationStore.open(to.url, { listen: false, poolSize: 2 });
      const where = from.kind === 'sqlite' ? `sqlite:${from.path}` : redactDatabaseUrl(from.url);
      if (!flags.quiet) process.stderr.write(`migrate: copying associations from ${where} to ${redactDatabaseUrl(to.url)}\n`);
      let lastReport = 0;
      const counts = await copyAssociations(source, target, {
        batchSize: flags.batchSize,
        onProgress: (c) => {
          if (flags.quiet) return;
          // About one line a second, and always the last.
          if (c.done === c.total || Date.now() - lastReport >= 1000) {
            lastReport = Date.now();
            process.stderr.write(`migrate: ${describeCounts(c)}\n`);
          }
        },
        onConflict: (a, existingId) =>
          process.stderr.write(
            `migrate: conflict: ${a.clusterName}/${a.namespace}/${a.serviceAccount}: ${a.associationId} not copied, the target has ${existingId} for that service account\n`,
          ),
      });
      process.stdout.write(`migrated ${describeCounts(counts)}\n`);
      if (counts.conflicts > 0) process.exitCode = 1;
    } finally {
      await target?.close();
      await source.close();
    }
  });
}
