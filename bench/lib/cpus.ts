// A machine split in two for the scenarios whose load would otherwise take
// the server's CPU (overload, eks-auth-tls): on a machine of two or more
// cores, the processes under test get core 0 to themselves, and the load (this
// process with autocannon, the storm driver) runs on the others, as if from
// another machine. Linux's affinity is set with util-linux's `taskset`
// (Node has no call for it); where there is one core, or BENCH_SPLIT_CORES=0,
// nothing is pinned and the scenario says so.
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';

export interface CoreSplit {
  /** the cores of the processes under test (taskset's list syntax) */
  server: string;
  /** the cores of the load */
  load: string;
}

let active: CoreSplit | undefined;

/** The split in force, if any: startProcess puts what it starts on `server`, the storm driver goes on `load`. */
export function coreSplit(): CoreSplit | undefined {
  return active;
}

/** `command args` run on `cores` when given (taskset execs the command: the pid is the command's). */
export function onCores(cores: string | undefined, command: string, args: string[]): [string, string[]] {
  return cores === undefined ? [command, args] : ['taskset', ['-c', cores, command, ...args]];
}

/** Every thread of process `pid` moved to `cores`. */
function pin(pid: number, cores: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cores, String(pid)], { stdio: 'ignore' });
}

/**
 * Runs `work` with the machine split (this process on the load's cores
 * meanwhile), or unsplit where it cannot be; `work` learns which.
 */
export async function withSplitCores<T>(work: (split: CoreSplit | undefined) => Promise<T>): Promise<T> {
  const cores = availableParallelism();
  if (cores < 2 || process.env.BENCH_SPLIT_CORES === '0') return work(undefined);
  const split: CoreSplit = { server: '0', load: cores === 2 ? '1' : `1-${cores - 1}` };
  pin(process.pid, split.load);
  active = split;
  try {
    return await work(split);
  } finally {
    active = undefined;
    pin(process.pid, `0-${cores - 1}`);
  }
}

/** The machine line's words for a split. */
export function describeSplit(split: CoreSplit | undefined): string {
  return split
    ? `server processes pinned to core ${split.server}, the load (autocannon in the bench process, the storm driver) to core${split.load.includes('-') ? 's' : ''} ${split.load}`
    : 'not pinned (one core, or BENCH_SPLIT_CORES=0): the load shares the server’s cores';
}
