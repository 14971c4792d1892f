#!/usr/bin/env node
// The `pod-identity` command: one file per subcommand, wired here.
import { Command } from 'commander';
import { registerAssociationsCommand } from './associations.js';
import { registerServerCommand } from './server.js';
import { registerWebhookConfigCommand } from './webhook-config.js';
import { registerIdentitiesCommand } from './identities.js';
import { registerMigrateCommand } from './migrate.js';
import { registerAgentCommand } from './agent.js';
import { registerInitializeCommand } from './initialize.js';
import { registerTrustPolicyCommand } from './trust-policy.js';
import { registerDevCommand } from './dev.js';

// We run on Node 20 with pinned SDK versions; the SDK's advice to upgrade
// Node would otherwise be printed by every command that makes an AWS call.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const program = new Command()
  .name('pod-identity')
  .description('EKS Pod Identity, open and self-hostable: control plane, node agent and tools')
  .version('0.1.0')
  .showHelpAfterError();

registerServerCommand(program);
registerAssociationsCommand(program);
registerWebhookConfigCommand(program);
registerIdentitiesCommand(program);
registerMigrateCommand(program);
registerAgentCommand(program);
registerInitializeCommand(program);
registerTrustPolicyCommand(program);
registerDevCommand(program);

program.parseAsync(process.argv).catch((error: unknown) => {
  console.error(`pod-identity: ${(error as Error).message}`);
  process.exit(1);
});
