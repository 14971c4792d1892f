// `pod-identity initialize`: the agent's init step (link-local addresses on pod-id-link0).
import type { Command } from 'commander';
import { AGENT_IPV4_CIDR, AGENT_IPV6_CIDR, AGENT_LINK, initializeLink } from '../agent/initialize.js';
import { CliError, oneLine } from './fail.js';
import { withExamples } from './options.js';

export function registerInitializeCommand(program: Command): void {
  withExamples(
    program
      .command('initialize')
      .description(`create the ${AGENT_LINK} interface with ${AGENT_IPV4_CIDR} and ${AGENT_IPV6_CIDR} (IPv6 when available) and their routes; safe to run again`)
      .addHelpText('after', '\nNeeds NET_ADMIN in the node network namespace (an init container with hostNetwork: true).'),
    'pod-identity initialize',
  ).action(async () => {
    let result;
    try {
      result = await initializeLink();
    } catch (error) {
      throw new CliError(oneLine(error));
    }
    for (const warning of result.warnings) console.error(`warning: ${warning}`);
    console.log(result.done.length > 0 ? `configured ${AGENT_LINK}: ${result.done.join('; ')}` : `${AGENT_LINK} already configured`);
  });
}
