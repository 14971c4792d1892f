// What every scenario does with processes: start the built CLI (or any node
// script) and wait until it says it is ready, stop it, and read how much CPU
// and memory it used from /proc (Linux), which stays right when other work
// shares the machine.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { coreSplit, onCores } from './cpus.js';

/** The built CLI the scenarios run (`npm run build` first); BENCH_CLI overrides. */
const CLI = resolve(process.env.BENCH_CLI ?? 'dist/cli/main.js');

/** The node binary the product processes (server, agent) run on; BENCH_NODE overrides (e.g. another major). */
const NODE = process.env.BENCH_NODE || process.execPath;

/** A build of the product to run: its CLI and the node that runs it. */
export interface Build {
  cli: string;
  node: string;
}

/** The build the scenarios measure: CLI (BENCH_CLI) on NODE (BENCH_NODE). */
export const CURRENT_BUILD: Build = { cli: CLI, node: NODE };

/**
 * Spawns `<node> <args>` (this process's node unless told) and waits until
 * its stdout or stderr contains `ready`; under withSplitCores, on the server's core.
 */
export function startProcess(args: string[], env: Record<string, string>, ready: string, timeoutMs = 30_000, node = process.execPath): Promise<ChildProcess> {
  const [command, commandArgs] = onCores(coreSplit()?.server, node, args);
  const child = spawn(command, commandArgs, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  // killed with this process; the hook goes with the child, so that scenarios starting many processes do not pile hooks up
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  child.once('close', () => process.removeListener('exit', kill));
  return new Promise((resolveStart, reject) => {
    let log = '';
    const timer = setTimeout(() => reject(new Error(`not ready in ${timeoutMs / 1000} s: ${args.join(' ')}\n${log}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      if (log.length < 1_000_000) log += chunk.toString();
      if (log.includes(ready)) {
        clearTimeout(timer);
        resolveStart(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code}: ${args.join(' ')}\n${log}`));
    });
  });
}

/**
 * A scenario's ceiling: bare node:http (or node:https with the given key and
 * certificate files) in its own process, answering every request with `body`
 * as JSON — what the machine can do with no work of ours in the way. With
 * `workers` above 1, that many processes behind one listener (node:cluster),
 * the shape of a server with API workers. With `burnMicros`, each request
 * first keeps the CPU busy that long: a stand-in for a request's own work, to
 * ask the machine what latency any server of that cost gets.
 */
const CEILING_SERVER = `
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
const workers = Number(process.env.WORKERS);
if (workers > 1 && cluster.isPrimary) {
  let listening = 0;
  cluster.on('listening', () => ++listening === workers && console.log('ready'));
  for (let i = 0; i < workers; i++) cluster.fork();
  process.on('SIGTERM', () => { for (const w of Object.values(cluster.workers)) w.kill(); process.exit(0); });
} else {
const body = Buffer.from(process.env.BODY, 'base64');
const headers = ['content-type', 'application/json', 'content-length', String(body.length)];
const burnMs = Number(process.env.BURN_MICROS) / 1000;
const burn = () => { const until = performance.now() + burnMs; while (performance.now() < until); };
const handler = (req, res) => { if (burnMs > 0) burn(); res.writeHead(200, headers); res.end(body); };
const server = process.env.TLS_KEY
  ? (await import('node:https')).createServer({ key: readFileSync(process.env.TLS_KEY), cert: readFileSync(process.env.TLS_CERT) }, handler)
  : (await import('node:http')).createServer(handler);
server.listen(Number(process.env.PORT), '127.0.0.1', () => cluster.isPrimary && console.log('ready'));
}
`;

export interface CeilingOptions {
  tls?: { keyFile: string; certFile: string };
  /** processes behind the listener (default 1) */
  workers?: number;
  /** busy CPU time spent on each request before answering, in µs (default 0) */
  burnMicros?: number;
}

export function startCeilingServer(port: number, body: Buffer, options: CeilingOptions = {}): Promise<ChildProcess> {
  const { tls, workers = 1, burnMicros = 0 } = options;
  const env: Record<string, string> = { BODY: body.toString('base64'), PORT: String(port), WORKERS: String(workers), BURN_MICROS: String(burnMicros) };
  if (tls) Object.assign(env, { TLS_KEY: tls.keyFile, TLS_CERT: tls.certFile });
  // a file, not `-e`: node:cluster forks the script it was started with
  const script = join(mkdtempSync(join(tmpdir(), 'bench-ceiling-')), 'ceiling.mjs');
  writeFileSync(script, CEILING_SERVER);
  return startProcess([script], env, 'ready');
}

/** SIGTERM, then wait for the exit. */
export async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.removeAllListeners('exit');
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
}

/** CPU time a process has used so far, user and system (kernel: syscalls, network stack), in ms (clock ticks of 10 ms). */
export function cpuSplitMs(pid: number): { user: number; system: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { user: Number(fields[11]) * 10, system: Number(fields[12]) * 10 };
}

/** The live child processes of a process (e.g. the server's API workers). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** user+system CPU time a process and its live children have used so far, in ms. */
export function cpuMs(pid: number): number {
  const { user, system } = cpuSplitMs(pid);
  return user + system + childrenOf(pid).reduce((sum, child) => sum + cpuMs(child), 0);
}

/** Resident memory of a process now, in MiB (VmRSS). */
export function rssMiB(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
