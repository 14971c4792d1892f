// The README's quick start, as a new user does it: start `pod-identity dev`
// (what scripts/start runs after building), then run in another shell, in
// another directory, exactly the steps it prints, with the AWS CLI from the
// peers' venv as `aws` and no Node.js of the project's on PATH.
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { eventually, GiveUp } from '../helpers/eventually.js';
import { CLI, freePort } from '../helpers/server-process.js';
import { pythonPeersMissingReason, venvBinary } from '../peers/python.js';
import { requirePeer } from '../peers/require.js';

const skip = requirePeer('aws cli', pythonPeersMissingReason);

test('dev, then the printed steps run from another directory give `aws sts get-caller-identity` the assumed role', { skip, timeout: 120_000 }, async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'pod-identity-quickstart-'));
  const elsewhere = mkdtempSync(join(tmpdir(), 'pod-identity-second-shell-'));
  const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
  const dev = spawn(
    process.execPath,
    [CLI, 'dev', '--listen', `127.0.0.1:${ports[0]}`, '--webhook-listen', `127.0.0.1:${ports[1]}`, '--metrics-listen', `127.0.0.1:${ports[2]}`, '--agent-port', String(ports[3])],
    { cwd, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const killDev = () => dev.kill('SIGKILL');
  process.once('exit', killDev);
  try {
    let printed = '';
    dev.stdout!.on('data', (chunk: Buffer) => (printed += chunk.toString()));
    let logs = '';
    dev.stderr!.on('data', (chunk: Buffer) => (logs += chunk.toString()));
    await eventually(
      'dev printed its steps',
      () => {
        if (printed.includes('aws sts get-caller-identity')) return true;
        if (dev.exitCode !== null) throw new GiveUp(`dev exited with ${dev.exitCode}`);
        return false;
      },
      { timeoutMs: 30_000, context: () => `${printed}\n${logs}` },
    );
    const steps = printed.slice(printed.indexOf('PI="'));
    assert.match(steps, /associations create/);
    assert.match(steps, /dev token/);

    // A fresh shell elsewhere, with nothing AWS in its environment and only the
    // system's own tools on PATH; `aws` is the venv's AWS CLI.
    const { stdout } = await promisify(execFile)('bash', ['-e', '-c', steps], {
      cwd: elsewhere,
      env: { PATH: `${dirname(venvBinary('aws'))}:/usr/local/bin:/usr/bin:/bin`, HOME: elsewhere },
      timeout: 60_000,
    });
    const identity = JSON.parse(stdout.slice(stdout.lastIndexOf('{\n'))) as { Arn: string; Account: string };
    assert.match(identity.Arn, /^arn:aws:sts::111122223333:assumed-role\/demo\/eks-dev-demo-/);
    assert.equal(identity.Account, '111122223333');
  } finally {
    dev.kill('SIGTERM');
    await new Promise((r) => (dev.exitCode !== null ? r(undefined) : dev.once('exit', r)));
    process.off('exit', killDev);
    rmSync(cwd, { recursive: true, force: true });
    rmSync(elsewhere, { recursive: true, force: true });
  }
});

test('dev token refuses a directory that holds no dev state, naming it', async () => {
  const empty = mkdtempSync(join(tmpdir(), 'pod-identity-no-dev-'));
  try {
    const result = await promisify(execFile)(process.execPath, [CLI, 'dev', 'token', '--state-dir', empty, '--namespace', 'default', '--service-account', 'demo']).then(
      () => assert.fail('dev token should have failed'),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(result.code, 1);
    const lines = result.stderr.trim().split('\n');
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0]!, new RegExp(`${empty} holds no dev state`));
    assert.deepEqual(readdirSync(empty), [], 'nothing was written');
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

/**
 * `pod-identity dev` on free ports in `cwd`; resolves with what it printed
 * once its steps are there. A port found free can be taken by another test
 * before dev binds it: a start that fails with EADDRINUSE is tried on new ports.
 */
async function startDev(cwd: string, stateDir?: string) {
  for (let attempt = 1; ; attempt++) {
    const started = await startDevOnce(cwd, stateDir);
    if (attempt >= 3 || started.printed() !== '' || !started.logs().includes('EADDRINUSE')) return started;
  }
}

async function startDevOnce(cwd: string, stateDir?: string) {
  const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
  const args = [CLI, 'dev', '--listen', `127.0.0.1:${ports[0]}`, '--webhook-listen', `127.0.0.1:${ports[1]}`, '--metrics-listen', `127.0.0.1:${ports[2]}`, '--agent-port', String(ports[3])];
  const dev = spawn(process.execPath, stateDir ? [...args, '--state-dir', stateDir] : args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const killDev = () => dev.kill('SIGKILL');
  process.once('exit', killDev);
  let printed = '';
  let logs = '';
  dev.stdout!.on('data', (chunk: Buffer) => (printed += chunk.toString()));
  dev.stderr!.on('data', (chunk: Buffer) => (logs += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => dev.once('exit', (code) => resolve(code)));
  // its steps, or its exit (a refused start, or a port taken: startDev tries again)
  await eventually('dev printed its steps or exited', () => printed.includes('aws sts get-caller-identity') || dev.exitCode !== null, {
    timeoutMs: 30_000,
    context: () => `${printed}\n${logs}`,
  }).catch(async (error: unknown) => {
    dev.kill('SIGKILL');
    await exited;
    process.off('exit', killDev);
    throw error;
  });
  return {
    dev,
    printed: () => printed,
    logs: () => logs,
    exited,
    async kill() {
      dev.kill('SIGKILL');
      await exited;
      process.off('exit', killDev);
    },
  };
}

test('the banner lists every listener, and a second dev on the same state directory is refused until the first is gone', async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'pod-identity-dev-lock-'));
  const first = await startDev(cwd);
  try {
    const banner = first.printed();
    const listeners = [...banner.matchAll(/(https?:\/\/127\.0\.0\.1:\d+)\S*/g)].map((m) => m[0]);
    for (const name of ['EKS API', 'agent ', 'agent metrics', 'admission webhook', 'metrics ']) assert.match(banner, new RegExp(`^  ${name}`, 'm'), banner);
    const agentMetrics = /agent metrics and probes\s+(\S+)\/metrics, (\S+)\/readyz/.exec(banner);
    assert.ok(agentMetrics, banner);
    assert.match(await (await fetch(`${agentMetrics[1]}/metrics`)).text(), /pod_identity_agent_/);
    assert.equal((await fetch(`${agentMetrics[2]}/readyz`)).status, 200);
    assert.ok(listeners.length >= 6, listeners.join(' '));

    const second = await startDev(cwd);
    const code = await second.exited;
    assert.equal(code, 1);
    const lines = second.logs().trim().split('\n').filter((l) => !l.startsWith('{'));
    assert.equal(lines.length, 1, second.logs());
    assert.match(lines[0]!, new RegExp(`another pod-identity dev \\(pid ${first.dev.pid}\\) is running on ${join(cwd, '.pod-identity')}`));

    // A crashed dev leaves its lock behind; the next one takes it over.
    await first.kill();
    const third = await startDev(cwd);
    try {
      assert.match(third.printed(), /pod-identity dev is running/, third.logs());
    } finally {
      await third.kill();
    }
  } finally {
    await first.kill();
    rmSync(cwd, { recursive: true, force: true });
  }
});

