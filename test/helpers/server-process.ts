// Starts `pod-identity server` (the built CLI) as a real child process with a
// config in a fresh temp dir, waits until /readyz answers, and always stops it.
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { eventually } from './eventually.js';

export const CLI = resolve('dist/cli/main.js');

export const ADMIN = { accessKeyId: 'AKIAADMINTEST', secretAccessKey: 'admin-secret-for-tests' };
export const NODE = { accessKeyId: 'AKIANODETEST', secretAccessKey: 'node-secret-for-tests' };

const UNUSED_KEY = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });

/** A JWKS with one key nobody signs with, for a cluster whose tokens a test never sends (the server refuses a JWKS without a usable key). */
export function writeUnusedJwks(path: string): string {
  writeFileSync(path, JSON.stringify({ keys: [{ ...UNUSED_KEY, kid: 'unused', use: 'sig', alg: 'ES256' }] }));
  return path;
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

export interface ServerProcess {
  apiUrl: string;
  metricsUrl: string;
  webhookUrl: string;
  dataDir: string;
  configPath: string;
  child: ChildProcess;
  /** everything the process wrote to stderr so far */
  logs(): string;
  /** SIGTERM, wait for exit, remove the temp dir (and the data in it) */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit; the data stays for a restart (remove() cleans up) */
  kill(): Promise<void>;
  /** remove the temp dir */
  remove(): void;
}

export interface ServerProcessOptions {
  /** merged over the defaults (admin + node keys, cluster "demo" with a jwks file) */
  config?: Record<string, unknown>;
  /** reuse a data directory (restart tests) */
  dataDir?: string;
  env?: Record<string, string>;
  /** wait for /healthz instead of /readyz: for a server meant to start not ready (an unreachable dependency) */
  untilAlive?: boolean;
}

export async function waitForHttp(url: string, timeoutMs = 15_000, isReady: (status: number) => boolean = (s) => s === 200): Promise<void> {
  await eventually(
    `${url} answering`,
    async () => {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (!isReady(res.status)) throw new Error(`status ${res.status}`);
      return true;
    },
    { timeoutMs },
  );
}

/** A product process started by a test: its output, its exit, and ways to end it. */
export interface TestProcess {
  child: ChildProcess;
  /** everything the process wrote to stdout and stderr so far */
  logs(): string;
  /** SIGTERM, wait for exit; the exit code */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit */
  kill(): Promise<void>;
  /** resolves with `ready`; rejects (and kills the process) when `ready` fails or the process exits first */
  untilReady(ready: Promise<void>, what: string): Promise<void>;
}

/** Spawns a process whose output is kept, and which is killed if the test process dies first. */
export function spawnTestProcess(command: string, args: string[], env: Record<string, string | undefined> = {}): TestProcess {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)));
  // Never leave a process behind, even when the test process dies.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const running = () => child.exitCode === null && child.signalCode === null;
  const end = async (signal: NodeJS.Signals) => {
    if (running()) {
      child.kill(signal);
      await exited;
    }
    process.off('exit', killOnExit);
  };
  return {
    child,
    logs: () => output,
    async stop() {
      await end('SIGTERM');
      return child.exitCode;
    },
    kill: () => end('SIGKILL'),
    async untilReady(ready, what) {
      try {
        await Promise.race([
          ready,
          exited.then((code) => {
            throw new Error(`${what} exited with ${code} before it was ready:\n${output}`);
          }),
        ]);
      } catch (error) {
        child.kill('SIGKILL');
        throw error;
      }
    },
  };
}

/**
 * A port freePort() found free can be taken again before the server binds it
 * (by another test's server, or as the local port of any loopback
 * connection), so a start that fails with EADDRINUSE on ports chosen here is
 * tried again on new ones.
 */
export async function startServerProcess(options: ServerProcessOptions = {}): Promise<ServerProcess> {
  const portsChosenHere = !['listen', 'webhookListen', 'metricsListen'].some((key) => options.config && key in options.config);
  for (let attempt = 1; ; attempt++) {
    try {
      return await startServerOnce(options);
    } catch (error) {
      if (attempt >= 3 || !portsChosenHere || !(error as Error).message.includes('EADDRINUSE')) throw error;
    }
  }
}

async function startServerOnce(options: ServerProcessOptions): Promise<ServerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'pod-identity-test-'));
  const dataDir = options.dataDir ?? join(dir, 'data');
  const [apiPort, webhookPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const jwksPath = join(dir, 'jwks.json');
  writeUnusedJwks(jwksPath);
  const config = {
    listen: `127.0.0.1:${apiPort}`,
    webhookListen: `127.0.0.1:${webhookPort}`,
    metricsListen: `127.0.0.1:${metricsPort}`,
    dataDir,
    logLevel: 'info',
    admins: [{ ...ADMIN }],
    nodes: [{ ...NODE }],
    clusters: [{ name: 'demo', issuer: 'https://kubernetes.default.svc', jwksFile: jwksPath }],
    ...options.config,
  };
  const configPath = join(dir, 'config.yaml');
  writeFileSync(configPath, stringify(config));
  const server = spawnTestProcess(process.execPath, [CLI, 'server', '--config', configPath], options.env);

  const apiUrl = `${'tls' in config ? 'https' : 'http'}://127.0.0.1:${config.listen.split(':').pop()}`;
  const metricsUrl = `http://127.0.0.1:${config.metricsListen.split(':').pop()}`;
  const webhookUrl = `https://127.0.0.1:${config.webhookListen.split(':').pop()}`;
  try {
    await server.untilReady(waitForHttp(`${metricsUrl}/${options.untilAlive ? 'healthz' : 'readyz'}`), 'server');
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    apiUrl,
    metricsUrl,
    webhookUrl,
    dataDir,
    configPath,
    child: server.child,
    logs: server.logs,
    async stop() {
      const code = await server.stop();
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
    kill: server.kill,
  };
}
