// Peer processes (etcd, kube-apiserver, moto) that never outlive the test
// process. Each peer runs in its own process group, so a stop reaches anything
// it forked. Three layers of teardown:
//   1. stop(): SIGTERM to the group, SIGKILL after a grace period;
//   2. an 'exit' hook SIGKILLs every group still registered (a failed test,
//      an uncaught error, process.exit);
//   3. a detached watchdog shell polls this process once a second and, when it
//      is gone (SIGKILL, a runner time-out), kills the registered groups, runs
//      the registered cleanup scripts, removes the registered temp dirs and
//      deletes the registered network namespaces.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, GiveUp } from '../helpers/eventually.js';

export interface PeerProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** stdout and stderr so far, capped to the last 256 KiB */
  logs(): string;
  /** resolves with the exit code (or signal) once the process ended */
  readonly exited: Promise<number | NodeJS.Signals | null>;
  /** true while the process runs */
  running(): boolean;
  /** SIGTERM the group, SIGKILL it after graceMs; resolves once it ended */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnPeerOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

const LOG_CAP = 256 * 1024;
const groups = new Set<number>();
const dirs = new Set<string>();
const namespaces = new Set<string>();
const scripts = new Set<string>();
const registryFile = join(tmpdir(), `pod-identity-peers-${process.pid}.list`);
let watchdogStarted = false;
let exitHookInstalled = false;

function writeRegistry(): void {
  const lines = [
    ...[...groups].map((pgid) => `pgid ${pgid}`),
    ...[...scripts].map((path) => `script ${path}`),
    ...[...dirs].map((dir) => `dir ${dir}`),
    ...[...namespaces].map((name) => `netns ${name}`),
  ];
  if (lines.length === 0) {
    rmSync(registryFile, { force: true });
    return;
  }
  writeFileSync(registryFile, `${lines.join('\n')}\n`);
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group is already gone
  }
}

function onExit(): void {
  for (const pgid of groups) killGroup(pgid, 'SIGKILL');
  for (const path of scripts) runCleanupScript(path);
  scripts.clear();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  for (const name of namespaces) deleteNetns(name);
  namespaces.clear();
  groups.clear();
  dirs.clear();
  rmSync(registryFile, { force: true });
}

function ensureGuards(): void {
  if (!exitHookInstalled) {
    process.on('exit', onExit);
    exitHookInstalled = true;
  }
  if (watchdogStarted) return;
  watchdogStarted = true;
  // $0 = our pid, $1 = registry file. Only entries this process wrote are read.
  const script = [
    'while kill -0 "$0" 2>/dev/null; do sleep 1; done',
    '[ -f "$1" ] || exit 0',
    'while read -r kind value; do',
    '  case "$kind" in',
    '    pgid) kill -s KILL -- "-$value" 2>/dev/null ;;',
    '    script) sleep 0.2; sh "$value" >/dev/null 2>&1 ;;',
    '    dir) sleep 0.2; rm -rf -- "$value" ;;',
    '    netns) sleep 0.2; ip netns del "$value" 2>/dev/null ;;',
    '  esac',
    'done < "$1"',
    'rm -f -- "$1"',
  ].join('\n');
  const watchdog = spawn('sh', ['-c', script, String(process.pid), registryFile], { detached: true, stdio: 'ignore' });
  watchdog.unref();
}

/** Registers a temp dir to remove when this process ends without cleaning up. */
export function registerTempDir(dir: string): () => void {
  ensureGuards();
  dirs.add(dir);
  writeRegistry();
  return () => {
    dirs.delete(dir);
    writeRegistry();
    rmSync(dir, { recursive: true, force: true });
  };
}

function runCleanupScript(path: string): void {
  try {
    execFileSync('sh', [path], { stdio: 'ignore', timeout: 60_000 });
  } catch {
    // best effort: the script's owner checks what is left
  }
}

/**
 * Registers a shell script that undoes what a fixture set up (for what a
 * process group, a temp dir or a network namespace cannot express), run when
 * this process ends without cleaning up; the answer forgets it (the owner runs
 * it itself).
 */
export function registerCleanupScript(path: string): () => void {
  ensureGuards();
  scripts.add(path);
  writeRegistry();
  return () => {
    scripts.delete(path);
    writeRegistry();
  };
}

function deleteNetns(name: string): void {
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

/**
 * Registers a network namespace (ip netns) to delete when this process ends
 * without cleaning up; the answer deletes it now and forgets it.
 */
export function registerNetns(name: string): () => void {
  ensureGuards();
  namespaces.add(name);
  writeRegistry();
  return () => {
    namespaces.delete(name);
    writeRegistry();
    deleteNetns(name);
  };
}

/** Starts `command` in its own process group, guarded as described above. */
export function spawnPeer(name: string, command: string, args: string[], options: SpawnPeerOptions = {}): PeerProcess {
  ensureGuards();
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let log = '';
  const append = (chunk: Buffer) => {
    log += chunk.toString();
    if (log.length > LOG_CAP) log = log.slice(-LOG_CAP);
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  const pgid = child.pid;
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) => {
    child.once('exit', (code, signal) => {
      if (pgid !== undefined) {
        // a peer's own children die with it
        killGroup(pgid, 'SIGKILL');
        groups.delete(pgid);
        writeRegistry();
      }
      resolve(code ?? signal);
    });
    child.once('error', (error) => {
      append(Buffer.from(`spawn ${command} failed: ${error.message}\n`));
      resolve(null);
    });
  });
  if (pgid !== undefined) {
    groups.add(pgid);
    writeRegistry();
  }
  const running = () => child.exitCode === null && child.signalCode === null && pgid !== undefined;
  return {
    name,
    child,
    logs: () => log,
    exited,
    running,
    async stop(graceMs = 5_000) {
      if (pgid === undefined) return;
      if (running()) {
        killGroup(pgid, 'SIGTERM');
        const timer = setTimeout(() => killGroup(pgid, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      killGroup(pgid, 'SIGKILL');
      groups.delete(pgid);
      writeRegistry();
    },
  };
}

/** Waits until `ready()` resolves true, failing early when `peer` exits. */
export async function waitUntil(peer: PeerProcess, what: string, timeoutMs: number, ready: () => Promise<boolean>): Promise<void> {
  await eventually(
    `${peer.name}: ${what}`,
    async () => {
      if (!peer.running()) throw new GiveUp(`${peer.name} exited (${String(await peer.exited)})`);
      return ready();
    },
    { timeoutMs, context: () => `its log ends:\n${tail(peer.logs())}` },
  );
}

export function tail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}
