// The README's quick start, as a new user does it: start `pod-identity dev`
// (what `npm start` runs after building), then run in a shell exactly the
// steps it prints, with the AWS CLI from the peers' venv as `aws`.
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { CLI, freePort } from '../helpers/server-process.js';
import { pythonPeersMissingReason, venvBinary } from '../peers/python.js';
import { requirePeer } from '../peers/require.js';

const skip = requirePeer('aws cli', pythonPeersMissingReason);

test('npm start, then the printed steps give `aws sts get-caller-identity` the assumed role', { skip, timeout: 120_000 }, async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'pod-identity-quickstart-'));
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
    const steps = printed.slice(printed.indexOf('PI="node'));
    assert.match(steps, /associations create/);
    assert.match(steps, /dev token/);

    // A fresh shell with nothing AWS in its environment; `aws` is the venv's AWS CLI.
    const { stdout } = await promisify(execFile)('bash', ['-e', '-c', steps], {
      cwd,
      env: { PATH: `${dirname(venvBinary('aws'))}:${process.env.PATH}`, HOME: cwd, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
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
  }
});
