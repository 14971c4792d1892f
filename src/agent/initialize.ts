// `pod-identity initialize`: puts the agent's link-local addresses on the node
// (the init container of the agent's DaemonSet), as the AWS agent does: a
// dummy interface `pod-id-link0` carrying 169.254.170.23/32 and, when the node
// has IPv6, fd00:ec2::23/128, brought up, with routes in the main table.
//
// Read the state (`ip -j`), plan the missing steps (pure), run them. Running
// it again changes nothing. IPv6 is optional: its failures are warnings.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';

export const AGENT_LINK = 'pod-id-link0';
export const AGENT_IPV4_CIDR = '169.254.170.23/32';
export const AGENT_IPV6_CIDR = 'fd00:ec2::23/128';

/** CAP_NET_ADMIN is capability number 12. */
const CAP_NET_ADMIN = 12n;

export class InitializeError extends Error {
  override name = 'InitializeError';
}

export interface LinkState {
  exists: boolean;
  up: boolean;
  /** "address/prefix" of every address on the link */
  addresses: string[];
  /** devices of main-table routes to exactly 169.254.170.23/32 */
  ipv4RouteDevices: string[];
  /** same for fd00:ec2::23/128; undefined when the node has no IPv6 */
  ipv6RouteDevices: string[] | undefined;
}

interface Step {
  /** arguments of `ip` */
  args: string[];
  /** tried when `args` fails: kernels built without the dummy driver get an empty bridge, which serves the same */
  fallback?: string[];
  /** IPv6 steps may fail without failing the whole */
  optional: boolean;
  description: string;
}

export interface Plan {
  steps: Step[];
  warnings: string[];
}

/** The steps that bring `state` to the configured link. Pure; throws InitializeError on a conflicting IPv4 route. */
export function planInitialize(state: LinkState): Plan {
  const steps: Step[] = [];
  const warnings: string[] = [];
  const foreignV4 = state.ipv4RouteDevices.filter((dev) => dev !== AGENT_LINK);
  if (foreignV4.length > 0) {
    throw new InitializeError(`a route to ${AGENT_IPV4_CIDR} already goes through ${foreignV4.join(', ')}; remove it (ip route del ${AGENT_IPV4_CIDR}) and run initialize again`);
  }
  if (!state.exists) {
    steps.push({
      args: ['link', 'add', AGENT_LINK, 'type', 'dummy'],
      fallback: ['link', 'add', AGENT_LINK, 'type', 'bridge'],
      optional: false,
      description: `create interface ${AGENT_LINK}`,
    });
  }
  if (!state.addresses.includes(AGENT_IPV4_CIDR)) {
    steps.push({ args: ['-4', 'addr', 'add', AGENT_IPV4_CIDR, 'dev', AGENT_LINK], optional: false, description: `add ${AGENT_IPV4_CIDR}` });
  }
  const ipv6 = state.ipv6RouteDevices !== undefined;
  if (!ipv6) warnings.push('IPv6 is not available on this node; only the IPv4 address is configured');
  // nodad: a tentative address cannot be bound, and nothing else can own this one
  if (ipv6 && !state.addresses.includes(AGENT_IPV6_CIDR)) {
    steps.push({ args: ['-6', 'addr', 'add', AGENT_IPV6_CIDR, 'dev', AGENT_LINK, 'nodad'], optional: true, description: `add ${AGENT_IPV6_CIDR}` });
  }
  if (!state.up) steps.push({ args: ['link', 'set', AGENT_LINK, 'up'], optional: false, description: `bring ${AGENT_LINK} up` });
  if (!state.ipv4RouteDevices.includes(AGENT_LINK)) {
    steps.push({ args: ['-4', 'route', 'replace', AGENT_IPV4_CIDR, 'dev', AGENT_LINK], optional: false, description: `route ${AGENT_IPV4_CIDR} to ${AGENT_LINK}` });
  }
  if (ipv6) {
    const foreignV6 = state.ipv6RouteDevices!.filter((dev) => dev !== AGENT_LINK);
    if (foreignV6.length > 0) {
      warnings.push(`a route to ${AGENT_IPV6_CIDR} already goes through ${foreignV6.join(', ')}; IPv6 route left alone`);
    } else if (!state.ipv6RouteDevices!.includes(AGENT_LINK)) {
      steps.push({ args: ['-6', 'route', 'replace', AGENT_IPV6_CIDR, 'dev', AGENT_LINK], optional: true, description: `route ${AGENT_IPV6_CIDR} to ${AGENT_LINK}` });
    }
  }
  return { steps, warnings };
}

/** Whether /proc/self/status shows CAP_NET_ADMIN in the effective set. Pure. */
export function hasNetAdmin(procStatus: string): boolean {
  const match = /^CapEff:\s*([0-9a-f]+)$/m.exec(procStatus);
  if (!match) return true; // not Linux procfs: let `ip` decide
  return ((BigInt(`0x${match[1]}`) >> CAP_NET_ADMIN) & 1n) === 1n;
}

export class IpCommandError extends Error {
  override name = 'IpCommandError';
  constructor(
    readonly args: string[],
    readonly stderr: string,
    readonly exitCode: number | string | undefined,
  ) {
    super(`ip ${args.join(' ')} failed: ${stderr.trim() || `exit ${exitCode}`}`);
  }
}

type IpRunner = (args: string[]) => Promise<string>;

const runIp: IpRunner = (args) =>
  new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: 10_000 }, (error, stdout, stderr) => {
      if (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(new InitializeError('the `ip` command (iproute2) is not installed; the agent image needs it'));
          return;
        }
        reject(new IpCommandError(args, String(stderr), (error as NodeJS.ErrnoException).code));
        return;
      }
      resolve(String(stdout));
    });
  });

interface IpLink {
  ifname: string;
  flags?: string[];
  addr_info?: { local: string; prefixlen: number }[];
}

function parseJson<T>(text: string): T[] {
  const trimmed = text.trim();
  return trimmed === '' ? [] : (JSON.parse(trimmed) as T[]);
}

async function routeDevices(run: IpRunner, family: '-4' | '-6', cidr: string): Promise<string[]> {
  return parseJson<{ dev?: string }>(await run(['-j', family, 'route', 'show', 'table', 'main', 'exact', cidr])).map((r) => r.dev ?? '?');
}

async function readLinkState(run: IpRunner = runIp): Promise<LinkState> {
  const link = parseJson<IpLink>(await run(['-j', 'link', 'show'])).find((l) => l.ifname === AGENT_LINK);
  let addresses: string[] = [];
  if (link) {
    const detail = parseJson<IpLink>(await run(['-j', 'addr', 'show', 'dev', AGENT_LINK]))[0];
    addresses = (detail?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`);
  }
  let ipv6RouteDevices: string[] | undefined;
  try {
    ipv6RouteDevices = await routeDevices(run, '-6', AGENT_IPV6_CIDR);
  } catch {
    ipv6RouteDevices = undefined; // IPv6 disabled (no inet6 routing table)
  }
  return {
    exists: link !== undefined,
    up: link?.flags?.includes('UP') ?? false,
    addresses,
    ipv4RouteDevices: await routeDevices(run, '-4', AGENT_IPV4_CIDR),
    ipv6RouteDevices,
  };
}

export interface InitializeResult {
  /** what was changed; empty when everything was already in place */
  done: string[];
  warnings: string[];
}

export interface InitializeOptions {
  run?: IpRunner;
  /** contents of /proc/self/status (tests) */
  procStatus?: string;
}

function readProcStatus(): string {
  try {
    return readFileSync('/proc/self/status', 'utf8');
  } catch {
    return '';
  }
}

const NOT_PERMITTED =
  'pod-identity initialize needs the NET_ADMIN capability to create pod-id-link0: run it as root or, in Kubernetes, as an init container with securityContext.capabilities.add: ["NET_ADMIN"] and hostNetwork: true';

export async function initializeLink(options: InitializeOptions = {}): Promise<InitializeResult> {
  const run = options.run ?? runIp;
  if (!hasNetAdmin(options.procStatus ?? readProcStatus())) throw new InitializeError(NOT_PERMITTED);
  const plan = planInitialize(await readLinkState(run));
  const done: string[] = [];
  const warnings = [...plan.warnings];
  for (const step of plan.steps) {
    try {
      const usedFallback = await runStep(run, step);
      done.push(step.description);
      if (usedFallback) warnings.push(`${step.description}: \`ip ${step.args.join(' ')}\` failed, used \`ip ${step.fallback!.join(' ')}\` instead (kernel without the dummy driver?)`);
    } catch (error) {
      if (error instanceof IpCommandError && /Operation not permitted/i.test(error.stderr)) throw new InitializeError(`${NOT_PERMITTED} (${error.message.trim()})`);
      if (!step.optional) throw error;
      warnings.push(`${step.description}: ${(error as Error).message.trim()}`);
    }
  }
  return { done, warnings };
}

/** Runs the step; true when its fallback had to be used. */
async function runStep(run: IpRunner, step: Step): Promise<boolean> {
  try {
    await run(step.args);
    return false;
  } catch (error) {
    if (!step.fallback || !(error instanceof IpCommandError)) throw error;
    await run(step.fallback);
    return true;
  }
}
