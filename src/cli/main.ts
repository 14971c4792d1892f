#!/usr/bin/env node
// The `pod-identity` command: one file per subcommand, wired here.
import { Command } from 'commander';

const program = new Command()
  .name('pod-identity')
  .description('EKS Pod Identity, open and self-hostable: control plane, node agent and tools')
  .version('0.1.0')
  // A subcommand's options are its own: `dev token --state-dir X` is token's flag, not dev's.
  .enablePositionalOptions()
  .showHelpAfterError();

/**
 * Each subcommand's module, loaded only when needed: a long-running process
 * (the agent on every node) then holds just its own code, not the server's,
 * the SDK clients' and the stores' (about 20 MiB of resident memory).
 */
const COMMANDS: Record<string, () => Promise<(program: Command) => void>> = {
  server: async () => (await import('./server.js')).registerServerCommand,
  associations: async () => (await import('./associations.js')).registerAssociationsCommand,
  'webhook-config': async () => (await import('./webhook-config.js')).registerWebhookConfigCommand,
  identities: async () => (await import('./identities.js')).registerIdentitiesCommand,
  migrate: async () => (await import('./migrate.js')).registerMigrateCommand,
  agent: async () => (await import('./agent.js')).registerAgentCommand,
  initialize: async () => (await import('./initialize.js')).registerInitializeCommand,
  'trust-policy': async () => (await import('./trust-policy.js')).registerTrustPolicyCommand,
  dev: async () => (await import('./dev.js')).registerDevCommand,
};

// `pod-identity <command> …` loads that command; anything else (help, --version, a typo) loads them all.
const invoked = process.argv[2];
for (const name of invoked !== undefined && invoked in COMMANDS ? [invoked] : Object.keys(COMMANDS)) {
  (await COMMANDS[name]!())(program);
}

program.parseAsync(process.argv).catch((error: unknown) => {
  console.error(`pod-identity: ${(error as Error).message}`);
  process.exit(1);
});
