// `pod-identity initialize`: the agent's init step (link-local addresses on pod-id-link0).
import type { Command } from 'commander';
import { AGENT_IPV4_CIDR, AGENT_IPV6_CIDR, AGENT_LINK, initializeLink } from '../agent/initialize.js';

export function registerInitializeCommand(program: Command): void {
  program
    .command('initialize')
    .description(`create the ${AGENT_LINK} interface with ${AGENT_IPV4_CIDR} and ${AGENT_IPV6_CIDR} (IPv6 when available) and their routes; safe to run again`)
    .addHelpText('after', '\nNeeds NET_ADMIN in the node network namespace (an init container with hostNetwork: true).')
    .action(async () => {
      try {
        const result = await initializeLink();
        for (const warning of result.warnings) console.error(`warning: ${warning}`);
        console.log(result.done.length > 0 ? `configured ${AGENT_LINK}: ${result.done.join('; ')}` : `${AGENT_LINK} already configured`);
      } catch (error) {
        console.error(`pod-identity initialize: ${(error as Error).message}`);
        process.exit(1);
      }
    });
}
