// A stand-in for a pod's network and files on a node, for the end-to-end test
// (root only): a network namespace joined to the test's own network namespace
// by a veth pair on a private /30 chosen so it overlaps no route of this
// machine, and a way to run a process inside it with a directory bind-mounted
// at a path of the pod (in a private mount namespace, so the host's
// filesystem is untouched). Nothing here routes beyond the pair.
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { registerNetns } from '../peers/processes.js';

export interface PodNetwork {
  /** network namespace name (ip netns) */
  name: string;
  /** address of the test's side of the pair: bind servers the pod must reach here */
  hostAddress: string;
  /** address of the namespace's side */
  podAddress: string;
  /** `ip netns exec <name>` + argv */
  exec(argv: string[]): string[];
  /** deletes the namespace (and with it both ends of the pair) */
  destroy(): void;
}

export function podNetworkMissingReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'network and mount namespaces need root';
  for (const [command, args] of [
    ['ip', ['netns', 'list']],
    ['unshare', ['--version']],
    ['mount', ['--version']],
  ] as const) {
    try {
      execFileSync(command, args, { stdio: 'ignore' });
    } catch {
      return `${command} (iproute2 / util-linux) is not available`;
    }
  }
  return undefined;
}

function toInt(address: string): number {
  return address.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

function fromInt(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

/** Whether two IPv4 prefixes (a.b.c.d/len) share any address. Pure. */
function prefixesOverlap(a: string, b: string): boolean {
  const range = (cidr: string): [number, number] => {
    const [address, bits = '32'] = cidr.split('/');
    const size = 2 ** (32 - Number(bits));
    const start = Math.floor(toInt(address!) / size) * size;
    return [start, start + size - 1];
  };
  const [aStart, aEnd] = range(a);
  const [bStart, bEnd] = range(b);
  return aStart <= bEnd && bStart <= aEnd;
}

/** Every IPv4 prefix this machine routes or owns (default routes aside). */
function prefixesInUse(): string[] {
  const routes = JSON.parse(execFileSync('ip', ['-j', '-4', 'route', 'show', 'table', 'all'], { encoding: 'utf8' })) as { dst: string }[];
  return routes.map((r) => r.dst).filter((dst) => dst !== 'default' && /^\d/.test(dst));
}

/** A /30 in 10.200.0.0/13 that overlaps nothing this machine routes. */
function freeSubnet(): string {
  const used = prefixesInUse();
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = toInt('10.200.0.0') + randomInt(0, 2 ** 19 / 4) * 4;
    const candidate = `${fromInt(base)}/30`;
    if (!used.some((prefix) => prefixesOverlap(prefix, candidate))) return candidate;
  }
  throw new Error('no free /30 in 10.200.0.0/13 for the test namespace');
}

export function createPodNetwork(prefix: string): PodNetwork {
  const id = randomBytes(3).toString('hex');
  const name = `${prefix}-${process.pid}-${id}`;
  const hostLink = `pi${id}h`;
  const podLink = `pi${id}p`;
  const subnet = freeSubnet();
  const base = toInt(subnet.split('/')[0]!);
  const hostAddress = fromInt(base + 1);
  const podAddress = fromInt(base + 2);
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let forget: (() => void) | undefined;
  const destroy = () => {
    // deleted even when the test process dies without cleaning up (processes.ts watchdog)
    forget?.();
    try {
      ip('link', 'del', hostLink);
    } catch {
      // went with the namespace
    }
  };
  try {
    ip('netns', 'add', name);
    forget = registerNetns(name);
    ip('link', 'add', hostLink, 'type', 'veth', 'peer', 'name', podLink, 'netns', name);
    ip('addr', 'add', `${hostAddress}/30`, 'dev', hostLink);
    ip('link', 'set', hostLink, 'up');
    ip('-n', name, 'link', 'set', 'lo', 'up');
    ip('-n', name, 'addr', 'add', `${podAddress}/30`, 'dev', podLink);
    ip('-n', name, 'link', 'set', podLink, 'up');
  } catch (error) {
    destroy();
    throw error;
  }
  return { name, hostAddress, podAddress, exec: (argv) => ['ip', 'netns', 'exec', name, ...argv], destroy };
}

/**
 * Shell run in a private mount namespace: bind-mounts $1 (read-only) at $2,
 * then execs the rest. When $2 does not exist, a tmpfs goes over its deepest
 * existing ancestor first, so nothing is created on the host.
 */
const MOUNT_AND_EXEC = `set -eu
src=$1; dst=$2; shift 2
base=$dst
while [ ! -d "$base" ]; do base=$(dirname "$base"); done
if [ "$base" != "$dst" ]; then
  mount -t tmpfs -o mode=0755,size=1m pod-files "$base"
  mkdir -p "$dst"
fi
mount --bind "$src" "$dst"
mount -o remount,bind,ro "$dst"
exec "$@"`;

export interface PodProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs argv inside the pod's network namespace with `directory` seen at
 * `mountPath`, with exactly `env` as its environment.
 */
export function runInPod(
  network: PodNetwork,
  mount: { directory: string; mountPath: string },
  argv: string[],
  env: Record<string, string>,
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<PodProcessResult> {
  const [command, ...args] = network.exec(['unshare', '--mount', '--propagation', 'private', 'sh', '-c', MOUNT_AND_EXEC, 'sh', mount.directory, mount.mountPath, ...argv]);
  return new Promise((resolve) => {
    execFile(command!, args, { env, cwd: options.cwd, timeout: options.timeoutMs ?? 60_000, maxBuffer: 8 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}
