// The Python peers' virtual environment (scripts/install-python-peers.sh):
// moto_server, boto3 and the AWS CLI. Commands run with an environment that
// cannot reach outside this machine: no shared AWS config or credentials
// files, and no EC2 instance-metadata lookups.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { INSTALL_PYTHON_PEERS, venvDir } from './paths.js';

export function venvBinary(name: 'python' | 'aws' | 'moto_server'): string {
  return join(venvDir(), 'bin', name);
}

/** Why the Python peers cannot run here, or undefined when they can. */
export function pythonPeersMissingReason(): string | undefined {
  const missing = (['python', 'aws', 'moto_server'] as const).filter((name) => !existsSync(venvBinary(name)));
  if (missing.length > 0) return `${missing.join(', ')} not found in ${venvDir()}; run ${INSTALL_PYTHON_PEERS}`;
  return undefined;
}

/** Environment for AWS clients in child processes: only what the caller passes, plus isolation. */
export function isolatedAwsEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    LANG: 'C.UTF-8',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_REGION: 'us-east-1',
    PYTHONDONTWRITEBYTECODE: '1',
    ...extra,
  };
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** merged over isolatedAwsEnv() */
  env?: Record<string, string>;
  input?: string;
  timeoutMs?: number;
  /** resolve with a non-zero exit instead of throwing */
  allowFailure?: boolean;
}

function run(command: string, args: string[], options: RunOptions): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      { env: isolatedAwsEnv(options.env), timeout: options.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        if (error && !options.allowFailure) {
          reject(new Error(`${command} ${args.join(' ').slice(0, 200)} failed (${error.code ?? error.signal}): ${stderr || error.message}`, { cause: error }));
        } else {
          resolve({ code, stdout, stderr });
        }
      },
    );
    child.stdin?.end(options.input ?? '');
  });
}

/** Runs a Python program (source text) with the venv's interpreter; `args` land in sys.argv[1:]. */
export function runPython(source: string, args: string[] = [], options: RunOptions = {}): Promise<CommandResult> {
  return run(venvBinary('python'), ['-c', source, ...args], options);
}

/** Runs the AWS CLI (v1, from the venv). */
export function runAwsCli(args: string[], options: RunOptions = {}): Promise<CommandResult> {
  return run(venvBinary('aws'), args, options);
}
