// The operator's mistakes, as they type them: each is one line on stderr, a
// non-zero exit and no stack trace — a bad endpoint URL, an endpoint that is
// not our API, missing keys, an invalid number, a missing file, and start-up
// failures (one line plus the structured log record).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLI, freePort, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with nothing AWS in its environment but what `env` adds. */
function cli(args: string[], env: Record<string, string> = {}): Promise<Outcome> {
  const home = mkdtempSync(join(tmpdir(), 'pod-identity-cli-home-'));
  const clean: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: home, AWS_EC2_METADATA_DISABLED: 'true', AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null', ...env };
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: clean, timeout: 30_000 }, (error, stdout, stderr) => {
      rmSync(home, { recursive: true, force: true });
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** The one plain line a failure prints (JSON log records aside), checked to carry no stack trace. */
function failureLine(outcome: Outcome, expectedCode = 1): string {
  assert.equal(outcome.code, expectedCode, `exit status (stderr: ${outcome.stderr})`);
  const lines = outcome.stderr.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('{'));
  assert.equal(lines.length, 1, `one line, got:\n${outcome.stderr}`);
  assert.doesNotMatch(outcome.stderr, /\n\s+at /, 'no stack trace');
  return lines[0]!;
}

const KEYS = { AWS_ACCESS_KEY_ID: 'AKIAADMINTEST', AWS_SECRET_ACCESS_KEY: 'admin-secret-for-tests' };

describe('CLI mistakes are one line and a non-zero exit', () => {
  let server: ServerProcess;
  let plain: Server;
  let plainUrl: string;
  before(async () => {
    server = await startServerProcess();
    plain = createServer((_req, res) => res.end('hello, I am not an AWS API\n'));
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    plainUrl = `http://127.0.0.1:${(plain.address() as { port: number }).port}`;
  });
  after(async () => {
    await server?.stop();
    plain?.close();
  });

  test('an endpoint without http:// says how to write it', async () => {
    const line = failureLine(await cli(['associations', 'list', '-c', 'demo', '--endpoint', '127.0.0.1:8080'], KEYS));
    assert.match(line, /--endpoint.*expected a URL such as http:\/\/127\.0\.0\.1:8080 \(add http:\/\/ in front of 127\.0\.0\.1:8080\)/);
  });

  test("the server's metrics port is not its API", async () => {
    const line = failureLine(await cli(['associations', 'list', '-c', 'demo', '--endpoint', server.metricsUrl], KEYS));
    assert.match(line, new RegExp(`^pod-identity associations: ${server.metricsUrl} is not a pod-identity API listener`));
  });

  test('a server that is not an AWS API at all', async () => {
    const line = failureLine(await cli(['associations', 'describe', '-c', 'demo', '--association-id', 'a-0123456789abcdefg', '--endpoint', plainUrl], KEYS));
    assert.match(line, /is not a pod-identity API listener: it answered HTTP 200/);
  });

  test('nothing listening: cannot reach', async () => {
    const line = failureLine(await cli(['associations', 'list', '-c', 'demo', '--endpoint', `http://127.0.0.1:${await freePort()}`], KEYS));
    assert.match(line, /cannot reach http:\/\/127\.0\.0\.1:\d+: connection refused/);
  });

  test('no keys: says where dev printed them', async () => {
    const line = failureLine(await cli(['associations', 'list', '-c', 'demo', '--endpoint', server.apiUrl]));
    assert.match(line, /^pod-identity associations: no AWS keys to sign with: pass --access-key-id and --secret-access-key/);
    assert.match(line, /dev-state\.json/);
  });

  test('an error the server answers is said as it is', async () => {
    const line = failureLine(await cli(['associations', 'describe', '-c', 'demo', '--association-id', 'a-0123456789abcdefg', '--endpoint', server.apiUrl], KEYS));
    assert.match(line, /^pod-identity associations: ResourceNotFoundException: /);
  });

  test('invalid numbers', async () => {
    assert.match(failureLine(await cli(['dev', 'token', '-n', 'a', '-s', 'b', '--expiration-seconds', 'abc'])), /--expiration-seconds.*'abc' is invalid\. expected an integer from 600/);
    assert.match(failureLine(await cli(['agent', '-c', 'demo', '--port', 'eighty'])), /--port.*'eighty' is invalid\. expected an integer from 0 to 65535/);
    assert.match(failureLine(await cli(['migrate', '--from', 'sqlite:x', '--to', 'postgres://x/y', '--batch-size', '0'])), /--batch-size.*expected an integer from 1 to 2000/);
  });

  test('missing files', async () => {
    // A configuration that cannot be read is a configuration error: exit 2, as for a bad value.
    assert.match(failureLine(await cli(['server', '--config', '/nonexistent/config.yaml']), 2), /^pod-identity server: cannot read config file \/nonexistent\/config\.yaml: ENOENT/);
    assert.match(failureLine(await cli(['webhook-config', '--service', 'a/b', '--ca-file', '/nonexistent/ca.pem'])), /no such file: \/nonexistent\/ca\.pem/);
    assert.match(failureLine(await cli(['dev', '--kubeconfig', '/nonexistent/kubeconfig'])), /no such file: \/nonexistent\/kubeconfig/);
    assert.match(failureLine(await cli(['migrate', '--from', 'sqlite:/nonexistent/associations.db', '--to', 'postgres://u:p@127.0.0.1:1/db'])), /no SQLite store at \/nonexistent\/associations\.db/);
  });

  test('webhook-config when the server keeps the caBundle itself (webhook.certificateSecret): exit 2 naming where it is', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pod-identity-cli-'));
    try {
      const config = join(dir, 'config.yaml');
      writeFileSync(
        config,
        'clusters: [{name: demo, kubeconfig: in-cluster}]\nwebhook: {certificateSecret: {namespace: pi, secretName: pi-webhook-tls, caConfigMap: pi-ca, webhookConfiguration: pi}}\n',
      );
      assert.match(failureLine(await cli(['webhook-config', '--config', config, '--service', 'pi/pi-server']), 2), /the server writes the caBundle of pi itself \(its CA is in ConfigMap pi\/pi-ca\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a principal that is not an ARN', async () => {
    assert.match(failureLine(await cli(['trust-policy', '--role-arn', 'arn:aws:iam::111122223333:role/x', '--principal-arn', 'x'])), /--principal-arn.*expected an ARN/);
  });

  test('a bad configuration value exits 2 naming the key', async () => {
    const line = failureLine(await cli(['server', '--listen', 'nowhere']), 2);
    assert.match(line, /^pod-identity server: invalid configuration: listen: expected host:port/);
  });

  test('start-up failures: one line, plus the log record', async () => {
    const taken = new URL(server.apiUrl).port;
    const agent = await cli(['agent', '-c', 'demo', '-b', '127.0.0.1', '--allow-loopback', '-p', taken, '--probe-port', '0', '--metrics-port', '0']);
    assert.match(failureLine(agent), /^pod-identity agent: cannot start: cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
    const record = JSON.parse(agent.stderr.split('\n').find((l) => l.startsWith('{'))!) as { level: number; msg: string; reason: string };
    assert.deepEqual([record.level, record.msg], [60, 'agent failed to start']);
    assert.match(record.reason, /EADDRINUSE/);

    const dir = mkdtempSync(join(tmpdir(), 'pod-identity-cli-server-'));
    try {
      const started = await cli(['server', '--listen', `127.0.0.1:${taken}`, '--webhook-listen', `127.0.0.1:${await freePort()}`, '--metrics-listen', `127.0.0.1:${await freePort()}`, '--data-dir', dir]);
      assert.match(failureLine(started), /^pod-identity server: cannot start: .*EADDRINUSE/);
      assert.ok(started.stderr.split('\n').some((l) => l.startsWith('{') && (JSON.parse(l) as { msg: string }).msg === 'server failed to start'), started.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a server with no clusters says that, not that several are configured', async () => {
    const empty = await startServerProcess({ config: { clusters: [] } });
    try {
      await new Promise((r) => setTimeout(r, 300));
      assert.match(empty.logs(), /the admission webhook serves no cluster \(no cluster is configured\)/);
      assert.doesNotMatch(empty.logs(), /several/);
    } finally {
      await empty.stop();
    }
  });
});
