// A console session ends at console.sessionSeconds, however much it is used:
// after that its cookie opens no page, its CSRF token makes no change, and its
// live feed is closed. The server runs in this process so that the lifetime
// can be 2 s (the config's minimum, 60 s, would make a slow test): everything
// else is the real server, store and HTTP.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { parseServerConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/lib/logger.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { ADMIN, writeUnusedJwks } from '../helpers/server-process.js';
import { consoleClient, type ConsoleClient } from './console-client.js';

const LIFETIME_SECONDS = 2;

let dir: string;
let server: RunningServer;
let web: ConsoleClient;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'console-expiry-'));
  const config = parseServerConfig({
    listen: '127.0.0.1:0',
    webhookListen: '127.0.0.1:0',
    metricsListen: '127.0.0.1:0',
    consoleListen: '127.0.0.1:0',
    dataDir: join(dir, 'data'),
    admins: [{ ...ADMIN }],
    clusters: [{ name: 'demo', issuer: 'https://kubernetes.default.svc', jwksFile: writeUnusedJwks(join(dir, 'jwks.json')) }],
  });
  server = await startServer({ ...config, console: { sessionSeconds: LIFETIME_SECONDS } }, { logger: createLogger({ level: 'silent' }) });
  web = consoleClient(server.consoleUrl!);
});
after(async () => {
  await web?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('after console.sessionSeconds the cookie is refused, its CSRF token changes nothing, and its live feed ends', async () => {
  const signedInAt = Date.now();
  const admin = await web.signIn(ADMIN.accessKeyId, ADMIN.secretAccessKey);
  assert.match(admin.setCookie, new RegExp(`Max-Age=${LIFETIME_SECONDS};`), 'the browser is told the same lifetime');
  const events = await request(`${server.consoleUrl}/events`, { headers: { cookie: admin.cookie } });
  assert.equal(events.statusCode, 200);
  assert.match(String(events.headers['content-type']), /^text\/event-stream/);
  // used within its lifetime, the session is not extended
  assert.equal((await web.get('/decisions', admin.cookie)).status, 200);
  await events.body.text();
  const streamEndedAfter = Date.now() - signedInAt;
  // it ends when the session does (not at the next heartbeat, 15 s on): no earlier, and well before that
  assert.ok(streamEndedAfter >= LIFETIME_SECONDS * 1000 && streamEndedAfter < LIFETIME_SECONDS * 1000 + 5000, `the live feed ended with the session (${streamEndedAfter} ms)`);
  await new Promise((r) => setTimeout(r, 100));

  const page = await web.get('/associations', admin.cookie);
  assert.equal(page.status, 303);
  assert.equal(page.headers.location, '/sign-in');
  const change = await web.post('/associations', { csrf: admin.csrf, cluster: 'demo', namespace: 'default', serviceAccount: 'late', roleArn: 'arn:aws:iam::111122223333:role/r' }, { cookie: admin.cookie });
  assert.equal(change.status, 401);
  assert.match(change.text, /Your session has ended/);
  assert.equal((await web.get('/events', admin.cookie)).status, 401);
  assert.equal((await server.store.list('demo', { limit: 100 })).length, 0, 'the late change was not made');
  // signing in again opens a new session
  const again = await web.signIn(ADMIN.accessKeyId, ADMIN.secretAccessKey);
  assert.equal((await web.get('/associations', again.cookie)).status, 200);
});
