#!/usr/bin/env node
// The `pod-identity` command: one file per subcommand, wired here.
import { Command } from 'commander';
import { registerServerCommand } from './server.js';

const program = new Command()
  .name('pod-identity')
  .description('EKS Pod Identity, open and self-hostable: control plane, node agent and tools')
  .version('0.1.0')
  .showHelpAfterError();

registerServerCommand(program);

program.parseAsync(process.argv).catch((error: unknown) => {
  console.error(`pod-identity: ${(error as Error).message}`);
  process.exit(1);
});
