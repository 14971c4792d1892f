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
    const deadline = Date.now() + 30_000;
    while (!printed.includes('aws sts get-caller-identity')) {
      if (Date.now() > deadline || dev.exitCode !== null) assert.fail(`dev did not print its steps:\n${printed}\n${logs}`);
      await new Promise((r) => setTimeout(r, 100));
    }
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
