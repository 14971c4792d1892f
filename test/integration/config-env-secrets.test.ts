// Keys and the database URL from the environment, as the Helm chart's
// existingSecret values give them (secretKeyRefs into POD_IDENTITY_ADMINS,
// POD_IDENTITY_NODES, POD_IDENTITY_DATABASE_URL): the running server takes
// them over the file's, and a malformed one stops it without the secret in
// its output.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { signRequest } from '../../src/lib/sigv4.js';
import { ADMIN, CLI, NODE, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const ENV_ADMIN = { accessKeyId: 'AKIAADMINFROMSECRET', secretAccessKey: 'admin-secret-from-a-kubernetes-secret' };
const ENV_NODE = { accessKeyId: 'AKIANODEFROMSECRET', secretAccessKey: 'node-secret-from-a-kubernetes-secret' };

/** What the chart writes for a node key from an existing Secret, after Kubernetes expanded its $(VAR) references. */
const chartNodes = (key: typeof ENV_NODE) => `[{"accessKeyId":"${key.accessKeyId}","secretAccessKey":"${key.secretAccessKey}","clusters":["demo"]}]`;

describe('server keys from POD_IDENTITY_* variables (the chart’s existingSecret)', () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServerProcess({
      env: { POD_IDENTITY_ADMINS: JSON.stringify([ENV_ADMIN]), POD_IDENTITY_NODES: chartNodes(ENV_NODE) },
    });
  });
  after(async () => {
    await server?.stop();
  });

  const list = async (credentials: typeof ADMIN) => {
    const url = new URL(`${server.apiUrl}/clusters/demo/pod-identity-associations`);
    return fetch(url, { headers: await signRequest({ method: 'GET', url }, { credentials, region: 'us-east-1', service: 'eks' }) });
  };
  const assumeRole = async (credentials: typeof NODE) => {
    const url = new URL(`${server.apiUrl}/clusters/demo/assume-role-for-pod-identity`);
    const body = JSON.stringify({ token: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln' });
    const headers = await signRequest({ method: 'POST', url, body, headers: { 'content-type': 'application/json' } }, { credentials, region: 'us-east-1', service: 'eks-auth' });
    return fetch(url, { method: 'POST', headers, body });
  };

  test('the admin key of the environment calls the association API; the file’s, replaced, does not', async () => {
    assert.equal((await list(ENV_ADMIN)).status, 200);
    const refused = await list(ADMIN);
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get('x-amzn-errortype'), 'UnrecognizedClientException');
  });

  test('the node key of the environment reaches token verification; the file’s is unknown', async () => {
    const known = await assumeRole(ENV_NODE);
    assert.equal(known.headers.get('x-amzn-errortype'), 'InvalidTokenException', 'signed by a known node key, refused for its token only');
    assert.equal((await assumeRole(NODE)).headers.get('x-amzn-errortype'), 'UnrecognizedClientException');
  });

  test('no secret of the environment is in the server’s logs', () => {
    assert.match(server.logs(), /server started/);
    for (const secret of [ENV_ADMIN.secretAccessKey, ENV_NODE.secretAccessKey]) assert.ok(!server.logs().includes(secret), 'a secret was logged');
  });
});

describe('a malformed secret in the environment', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pi-env-secrets-'));
    writeFileSync(join(dir, 'config.yaml'), 'dataDir: ./data\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const run = async (env: Record<string, string>) => {
    try {
      await promisify(execFile)(process.execPath, [CLI, 'server', '--config', join(dir, 'config.yaml')], { env: { ...process.env, ...env }, cwd: dir, timeout: 20_000 });
    } catch (error) {
      return error as { code: number; stderr: string };
    }
    assert.fail('the server started');
  };

  test('a secret key holding a quote breaks the YAML: exit 2 naming the variable and position, never quoting the value', async () => {
    const secret = 'se"cret-with-a-quote';
    const failed = await run({ POD_IDENTITY_NODES: chartNodes({ accessKeyId: 'AKIANODE', secretAccessKey: secret }) });
    assert.equal(failed.code, 2);
    assert.match(failed.stderr, /POD_IDENTITY_NODES: not valid YAML\/JSON at line 1, column \d+ \(\w+\)/);
    assert.ok(!failed.stderr.includes('cret-with'), failed.stderr);
  });

  test('a database URL that is not PostgreSQL’s: exit 2 naming the key, never the URL', async () => {
    const failed = await run({ POD_IDENTITY_DATABASE_URL: 'mysql://user:db-password-value@db/pi' });
    assert.equal(failed.code, 2);
    assert.match(failed.stderr, /databaseUrl: expected postgres/);
    assert.ok(!failed.stderr.includes('db-password-value'), failed.stderr);
  });
});
