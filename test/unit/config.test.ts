import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { ConfigError, configFromEnv, envName, loadServerConfig, parseServerConfig } from '../../src/config/load.js';

test('defaults follow DESIGN §4', () => {
  const config = parseServerConfig({});
  assert.equal(config.listen, '127.0.0.1:8080');
  assert.equal(config.webhookListen, '127.0.0.1:9443');
  assert.equal(config.metricsListen, '127.0.0.1:9090');
  assert.equal(config.region, 'us-east-1');
  assert.equal(config.accountId, '000000000000');
  assert.equal(config.dataDir, './data');
  assert.equal(config.issuer.type, 'local');
  assert.equal(config.issuer.durationSeconds, 3600);
});

test('a bad value is one error naming the key', () => {
  assert.throws(() => parseServerConfig({ clusters: [{ name: 'bad name!', jwksFile: 'x' }] }), (e: Error) => {
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /clusters\.0\.name/);
    return true;
  });
  assert.throws(() => parseServerConfig({ listen: 'nowhere' }), /listen: expected host:port/);
  assert.throws(() => parseServerConfig({ accountId: '12' }), /accountId/);
  assert.throws(() => parseServerConfig({ issuer: { type: 'magic' } }), /issuer\.type/);
  assert.throws(() => parseServerConfig({ lisen: '1:2' }), /lisen|Unrecognized key/);
  assert.throws(() => parseServerConfig({ clusters: [{ name: 'a', jwksFile: 'x' }, { name: 'a', jwksFile: 'y' }] }), /duplicate cluster "a"/);
});

test('environment overrides the file and flags override both', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pi-config-'));
  const file = join(dir, 'c.yaml');
  writeFileSync(file, 'region: eu-west-1\nlisten: 127.0.0.1:1000\ndataDir: /from/file\n');
  const config = loadServerConfig({ file, env: { POD_IDENTITY_LISTEN: '127.0.0.1:2000', POD_IDENTITY_DATA_DIR: '/from/env' }, overrides: { dataDir: '/from/flag' } });
  assert.equal(config.region, 'eu-west-1');
  assert.equal(config.listen, '127.0.0.1:2000');
  assert.equal(config.dataDir, '/from/flag');
  assert.equal(envName('webhookListen'), 'POD_IDENTITY_WEBHOOK_LISTEN');
  assert.deepEqual(configFromEnv({ POD_IDENTITY_ADMINS: '[{accessKeyId: A, secretAccessKey: B}]' }), { admins: [{ accessKeyId: 'A', secretAccessKey: 'B' }] });
});

test('`pod-identity server` exits 2 with the key named on a bad config', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pi-config-'));
  const file = join(dir, 'c.yaml');
  writeFileSync(file, 'metricsListen: 99999\n');
  await assert.rejects(promisify(execFile)(process.execPath, ['dist/cli/main.js', 'server', '--config', file]), (e: { code: number; stderr: string }) => {
    assert.equal(e.code, 2);
    assert.match(e.stderr, /metricsListen/);
    return true;
  });
  await assert.rejects(promisify(execFile)(process.execPath, ['dist/cli/main.js', 'server', '--config', join(dir, 'missing.yaml')]), (e: { code: number; stderr: string }) => {
    assert.equal(e.code, 2);
    assert.match(e.stderr, /cannot read config file .*missing\.yaml: ENOENT/);
    return true;
  });
});
