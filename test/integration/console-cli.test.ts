// The console from the command line: `pod-identity server --console-listen`
// (the flag over the config file; its help has an example) and
// `pod-identity dev`, which serves the console on a free port and prints its
// URL and the admin key to sign in with.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { eventually, GiveUp } from '../helpers/eventually.js';
import { ADMIN, CLI, freePort, spawnTestProcess, waitForHttp, writeUnusedJwks } from '../helpers/server-process.js';
import { consoleClient } from './console-client.js';

test('server --help shows --console-listen with an example', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'server', '--help']);
  assert.match(stdout, /--console-listen <host:port>\s+admin console listener/);
  assert.match(stdout, /pod-identity server --config \S+ --console-listen 127\.0\.0\.1:8443/);
});

test('server --console-listen turns the console on over a config file that has none', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'console-flag-'));
  const [api, webhook, metrics, consolePort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const configPath = join(dir, 'config.yaml');
  writeFileSync(
    configPath,
    stringify({
      listen: `127.0.0.1:${api}`,
      webhookListen: `127.0.0.1:${webhook}`,
      metricsListen: `127.0.0.1:${metrics}`,
      dataDir: join(dir, 'data'),
      admins: [{ ...ADMIN }],
      clusters: [{ name: 'demo', issuer: 'https://kubernetes.default.svc', jwksFile: writeUnusedJwks(join(dir, 'jwks.json')) }],
    }),
  );
  const server = spawnTestProcess(process.execPath, [CLI, 'server', '--config', configPath, '--console-listen', `127.0.0.1:${consolePort}`]);
  const web = consoleClient(`http://127.0.0.1:${consolePort}`);
  try {
    await server.untilReady(waitForHttp(`http://127.0.0.1:${metrics}/readyz`), 'server');
    const admin = await web.signIn(ADMIN.accessKeyId, ADMIN.secretAccessKey);
    const clusters = await web.get('/clusters', admin.cookie);
    assert.equal(clusters.status, 200);
    assert.match(clusters.text, /arn:aws:eks:us-east-1:000000000000:cluster\/demo/);
    assert.match(server.logs(), new RegExp(`"console":"http://127\\.0\\.0\\.1:${consolePort}"`), 'the start line names the console');
  } finally {
    await web.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dev serves the console on a free port and prints its URL and the key to sign in with', { timeout: 60_000 }, async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'console-dev-'));
  const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
  const dev = spawnTestProcess(process.execPath, [CLI, 'dev', '--listen', `127.0.0.1:${ports[0]}`, '--webhook-listen', `127.0.0.1:${ports[1]}`, '--metrics-listen', `127.0.0.1:${ports[2]}`, '--agent-port', String(ports[3]), '--state-dir', join(cwd, '.pod-identity')]);
  try {
    const banner = eventually(
      'dev printed its banner',
      () => {
        if (dev.logs().includes('aws sts get-caller-identity')) return true;
        if (dev.child.exitCode !== null) throw new GiveUp(`dev exited with ${dev.child.exitCode}`);
        return false;
      },
      { timeoutMs: 30_000, context: () => dev.logs() },
    );
    await dev.untilReady(banner.then(() => undefined), 'dev');
    const line = /^ {2}admin console\s+(http:\/\/127\.0\.0\.1:(\d+)) {2}\(sign in with access key ID (\S+) and secret (\S+)\)$/m.exec(dev.logs());
    assert.ok(line, dev.logs());
    assert.ok(!ports.includes(Number(line[2])), 'a port of its own');
    const state = JSON.parse(readFileSync(join(cwd, '.pod-identity', 'dev-state.json'), 'utf8')) as { keys: { admin: { accessKeyId: string; secretAccessKey: string } } };
    assert.equal(line[3], state.keys.admin.accessKeyId);
    const web = consoleClient(line[1]!);
    try {
      const admin = await web.signIn(line[3]!, line[4]!);
      assert.match((await web.get('/clusters', admin.cookie)).text, /cluster\/dev/);
    } finally {
      await web.close();
    }
  } finally {
    await dev.stop();
    rmSync(cwd, { recursive: true, force: true });
  }
});
