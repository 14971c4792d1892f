// The `pod-identity` program: every subcommand, one module each, registered
// on one commander program with the shared help rules (cli/options.ts).
import { Command } from 'commander';
import { VERSION } from '../lib/version.js';
import { configureHelp } from './options.js';

/**
 * Each subcommand's module, loaded only when needed: a long-running process
 * (the agent on every node) then holds just its own code, not the server's,
 * the SDK clients' and the stores' (about 20 MiB of resident memory).
 */
const COMMANDS: Record<string, () => Promise<(program: Command) => void>> = {
  server: async () => (await import('./server.js')).registerServerCommand,
  agent: async () => (await import('./agent.js')).registerAgentCommand,
  initialize: async () => (await import('./initialize.js')).registerInitializeCommand,
  dev: async () => (await import('./dev.js')).registerDevCommand,
  associations: async () => (await import('./associations.js')).registerAssociationsCommand,
  'webhook-config': async () => (await import('./webhook-config.js')).registerWebhookConfigCommand,
  identities: async () => (await import('./identities.js')).registerIdentitiesCommand,
  'trust-policy': async () => (await import('./trust-policy.js')).registerTrustPolicyCommand,
  migrate: async () => (await import('./migrate.js')).registerMigrateCommand,
  doctor: async () => (await import('./doctor.js')).registerDoctorCommand,
};

export function isCommand(name: string | undefined): name is string {
  return name !== undefined && Object.prototype.hasOwnProperty.call(COMMANDS, name);
}

/** The program with `only` registered, or every command (for help, --version and typos). */
export async function buildProgram(only?: string): Promise<Command> {
  const program = new Command()
    .name('pod-identity')
    .description('EKS Pod Identity, open and self-hostable: control plane, node agent and tools')
    .version(VERSION)
    // A subcommand's options are its own: `dev token --state-dir X` is token's flag, not dev's.
    .enablePositionalOptions()
    .showSuggestionAfterError();
  configureHelp(program);
  for (const name of isCommand(only) ? [only] : Object.keys(COMMANDS)) (await COMMANDS[name]!())(program);
  return program;
}
