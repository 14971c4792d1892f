// The admin console over HTTP, as a browser without script sees it, against a
// real `pod-identity server` process: the session cookie's attributes (Secure
// under real TLS with the API's certificate), CSRF and origin checks on every
// change, sign-in throttling, and forms that refuse what the association API
// refuses with the API's own error name and message (asked of the API through
// @aws-sdk/client-eks).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CreatePodIdentityAssociationCommand,
  DescribePodIdentityAssociationCommand,
  EKSClient,
  ListTagsForResourceCommand,
  TagResourceCommand,
  UpdatePodIdentityAssociationCommand,
} from '@aws-sdk/client-eks';
import { ADMIN, freePort, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { consoleClient, noticeOf, type ConsoleClient, type SignedIn } from './console-client.js';

const ROLE = 'arn:aws:iam::111122223333:role/console-test';

/** What the API answers a call: its error name and message, or undefined when it succeeded. */
async function apiRefusal(call: Promise<unknown>): Promise<string | undefined> {
  try {
    await call;
    return undefined;
  } catch (error) {
    return `${(error as Error).name}: ${(error as Error).message}`;
  }
}

async function startWithConsole(config: Record<string, unknown> = {}): Promise<{ server: ServerProcess; consoleUrl: string; port: number }> {
  const port = await freePort();
  const server = await startServerProcess({ config: { consoleListen: `127.0.0.1:${port}`, ...config } });
  return { server, port, consoleUrl: `${'tls' in config ? 'https' : 'http'}://127.0.0.1:${port}` };
}

describe('admin console over plain HTTP', () => {
  let server: ServerProcess;
  let consoleUrl: string;
  let web: ConsoleClient;
  let eks: EKSClient;
  let admin: SignedIn;

  before(async () => {
    ({ server, consoleUrl } = await startWithConsole());
    // from 127.0.0.1: this describe signs in four times, within the throttle's burst of five
    web = consoleClient(consoleUrl);
    eks = new EKSClient({ endpoint: server.apiUrl, region: 'us-east-1', credentials: { ...ADMIN }, maxAttempts: 1 });
    admin = await web.signIn(ADMIN.accessKeyId, ADMIN.secretAccessKey);
  });
  after(async () => {
    eks?.destroy();
    await web?.close();
    await server?.stop();
  });

  test('signing in sets a session cookie: HttpOnly, SameSite=Strict, the configured lifetime, not Secure over plain HTTP', async () => {
    const attributes = admin.setCookie.split(';').map((a) => a.trim());
    assert.match(attributes[0]!, /^pod_identity_console=[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(attributes.slice(1).sort(), ['HttpOnly', 'Max-Age=900', 'Path=/', 'SameSite=Strict']);
    const page = await web.get('/associations', admin.cookie);
    assert.equal(page.status, 200);
    assert.match(page.text, new RegExp(`Signed in as <strong>${ADMIN.accessKeyId}</strong>`));
    assert.doesNotMatch(page.text, new RegExp(ADMIN.secretAccessKey), 'the console never shows a secret');
    assert.equal(page.headers['cache-control'], 'no-store');
    assert.match(String(page.headers['content-security-policy']), /default-src 'none'.*frame-ancestors 'none'/);
  });

  test('a wrong secret or an unknown key is refused without a cookie; no page opens without a session', async () => {
    for (const [id, secret] of [[ADMIN.accessKeyId, 'wrong'], ['AKIANOSUCHKEY', ADMIN.secretAccessKey]] as const) {
      const res = await web.post('/sign-in', { accessKeyId: id, secretAccessKey: secret });
      assert.equal(res.status, 401);
      assert.equal(res.setCookie, undefined);
      assert.doesNotMatch(res.text, new RegExp(secret));
    }
    const signedOut = await web.get('/associations');
    assert.equal(signedOut.status, 303);
    assert.equal(signedOut.headers.location, '/sign-in');
    assert.equal((await web.get('/events')).status, 401);
    assert.equal((await web.post('/associations', { cluster: 'demo', namespace: 'default', serviceAccount: 'x', roleArn: ROLE })).status, 401);
  });

  test('every change needs the session’s CSRF token and this console’s origin', async () => {
    const form = { cluster: 'demo', namespace: 'default', serviceAccount: 'csrf', roleArn: ROLE };
    const noToken = await web.post('/associations', form, { cookie: admin.cookie });
    assert.equal(noToken.status, 403);
    assert.match(noToken.text, /CSRF token is missing or out of date/);
    assert.equal((await web.post('/associations', { ...form, csrf: `${admin.csrf}x` }, { cookie: admin.cookie })).status, 403);
    // another session's token is not this one's
    const other = await web.signIn(ADMIN.accessKeyId, ADMIN.secretAccessKey);
    assert.equal((await web.post('/associations', { ...form, csrf: other.csrf }, { cookie: admin.cookie })).status, 403);
    assert.equal((await web.post('/associations', { ...form, csrf: admin.csrf }, { cookie: admin.cookie, origin: 'https://evil.example' })).status, 403);
    assert.equal((await web.post('/sign-out', {}, { cookie: other.cookie })).status, 403, 'signing out is a change too');
    const list = await eks.send(new DescribePodIdentityAssociationCommand({ clusterName: 'demo', associationId: 'a-00000000000000000' })).catch((e: Error) => e.name);
    assert.equal(list, 'ResourceNotFoundException');
    assert.equal(noticeOf((await web.get('/associations', admin.cookie)).text), undefined);
    assert.doesNotMatch((await web.get('/associations', admin.cookie)).text, /data-association=/, 'none of the refused changes happened');

    // the same change with the token and the console's own origin (a browser sends it) is made
    const made = await web.post('/associations', { ...form, csrf: admin.csrf }, { cookie: admin.cookie, origin: consoleUrl });
    assert.equal(made.status, 303);
    assert.match(String(made.headers.location), /^\/associations\/demo\/a-[a-z0-9]{17}\?done=created$/);
    // the x-csrf-token header serves as well as the form field
    const id = /a-[a-z0-9]{17}/.exec(String(made.headers.location))![0];
    assert.equal((await web.post(`/associations/demo/${id}/delete`, {}, { cookie: admin.cookie, headers: { 'x-csrf-token': admin.csrf } })).status, 303);
    const out = await web.post('/sign-out', { csrf: other.csrf }, { cookie: other.cookie });
    assert.equal(out.status, 303);
    assert.match(String(out.setCookie), /^pod_identity_console=; Path=\/; Max-Age=0; HttpOnly; SameSite=Strict$/);
    assert.equal((await web.get('/associations', other.cookie)).status, 303, 'a signed-out session opens nothing');
  });

  test('the forms refuse what the API refuses, with the API’s error name and message', async () => {
    const { association } = await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'default', serviceAccount: 'forms', roleArn: ROLE }));
    const { associationId, associationArn } = association!;
    const item = `/associations/demo/${associationId}`;
    const post = (path: string, form: Record<string, string>) => web.post(path, { ...form, csrf: admin.csrf }, { cookie: admin.cookie });

    const cases: { name: string; form: () => ReturnType<typeof post>; api: () => Promise<unknown>; status: number }[] = [
      {
        name: 'create: an existing (namespace, service account)',
        form: () => post('/associations', { cluster: 'demo', namespace: 'default', serviceAccount: 'forms', roleArn: ROLE }),
        api: () => eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'default', serviceAccount: 'forms', roleArn: ROLE })),
        status: 409,
      },
      {
        name: 'create: a namespace that is no DNS label',
        form: () => post('/associations', { cluster: 'demo', namespace: 'Not_A_Label', serviceAccount: 'x', roleArn: ROLE }),
        api: () => eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'Not_A_Label', serviceAccount: 'x', roleArn: ROLE, disableSessionTags: false })),
        status: 400,
      },
      {
        name: 'create: a cluster this server does not serve',
        form: () => post('/associations', { cluster: 'nope', namespace: 'default', serviceAccount: 'x', roleArn: ROLE }),
        api: () => eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'nope', namespace: 'default', serviceAccount: 'x', roleArn: ROLE })),
        status: 404,
      },
      {
        name: 'edit: a role ARN of no account',
        form: () => post(`${item}/update`, { roleArn: 'arn:aws:iam::123:role/r' }),
        api: () => eks.send(new UpdatePodIdentityAssociationCommand({ clusterName: 'demo', associationId, roleArn: 'arn:aws:iam::123:role/r', disableSessionTags: false, targetRoleArn: '', policy: '' })),
        status: 400,
      },
      {
        name: 'edit: a session policy with session tags on',
        form: () => post(`${item}/update`, { roleArn: ROLE, policy: '{"Version":"2012-10-17","Statement":[]}' }),
        api: () => eks.send(new UpdatePodIdentityAssociationCommand({ clusterName: 'demo', associationId, roleArn: ROLE, disableSessionTags: false, targetRoleArn: '', policy: '{"Version":"2012-10-17","Statement":[]}' })),
        status: 400,
      },
      {
        name: 'tag: a key in the aws: namespace',
        form: () => post(`${item}/tags`, { key: 'aws:owner', value: 'me' }),
        api: () => eks.send(new TagResourceCommand({ resourceArn: associationArn, tags: { 'aws:owner': 'me' } })),
        status: 400,
      },
      {
        name: 'tag: a key longer than 128 characters',
        form: () => post(`${item}/tags`, { key: 'k'.repeat(129), value: 'v' }),
        api: () => eks.send(new TagResourceCommand({ resourceArn: associationArn, tags: { ['k'.repeat(129)]: 'v' } })),
        status: 400,
      },
    ];
    for (const c of cases) {
      const page = await c.form();
      const expected = await apiRefusal(c.api());
      assert.ok(expected, `${c.name}: the API refuses it`);
      assert.equal(page.status, c.status, c.name);
      assert.equal(noticeOf(page.text), expected, c.name);
    }

    // and what the API accepts, the forms do: the API then shows it
    assert.equal((await post(`${item}/update`, { roleArn: `${ROLE}-2`, disableSessionTags: 'on', policy: '{"Version":"2012-10-17","Statement":[]}' })).status, 303);
    const updated = (await eks.send(new DescribePodIdentityAssociationCommand({ clusterName: 'demo', associationId }))).association!;
    assert.equal(updated.roleArn, `${ROLE}-2`);
    assert.equal(updated.disableSessionTags, true);
    assert.equal(updated.policy, '{"Version":"2012-10-17","Statement":[]}');
    assert.equal((await post(`${item}/tags`, { key: 'team', value: 'payments' })).status, 303);
    assert.deepEqual((await eks.send(new ListTagsForResourceCommand({ resourceArn: associationArn }))).tags, { team: 'payments' });
    const shown = await web.get(`${item}?done=tagged`, admin.cookie);
    assert.equal(noticeOf(shown.text), 'Tag added.');
    assert.match(shown.text, /<td><code>team<\/code><\/td><td><code>payments<\/code><\/td>/);
    assert.equal((await post(`${item}/untag`, { key: 'team' })).status, 303);
    assert.deepEqual((await eks.send(new ListTagsForResourceCommand({ resourceArn: associationArn }))).tags, {});
  });

  test('sign-in attempts past the limit are refused, then allowed after the window', { timeout: 40_000 }, async () => {
    // an address of its own: the throttle counts per client address
    const client = consoleClient(consoleUrl, { localAddress: '127.0.0.77' });
    try {
      for (let i = 1; i <= 5; i++) assert.equal((await client.post('/sign-in', { accessKeyId: ADMIN.accessKeyId, secretAccessKey: `guess-${i}` })).status, 401, `attempt ${i}`);
      const throttled = await client.post('/sign-in', { accessKeyId: ADMIN.accessKeyId, secretAccessKey: ADMIN.secretAccessKey });
      assert.equal(throttled.status, 429, 'past the limit even the right secret is refused');
      assert.equal(throttled.setCookie, undefined);
      const wait = Number(throttled.headers['retry-after']);
      assert.equal(wait, 12);
      assert.match(throttled.text, /Too many sign-in attempts\. Try again in 12 seconds\./);
      const elsewhere = consoleClient(consoleUrl, { localAddress: '127.0.0.78' });
      assert.equal((await elsewhere.post('/sign-in', { accessKeyId: ADMIN.accessKeyId, secretAccessKey: ADMIN.secretAccessKey })).status, 303, 'another address is not held back');
      await elsewhere.close();
      await new Promise((r) => setTimeout(r, wait * 1000 + 200));
      const allowed = await client.post('/sign-in', { accessKeyId: ADMIN.accessKeyId, secretAccessKey: ADMIN.secretAccessKey });
      assert.equal(allowed.status, 303, 'allowed again after the window');
      assert.match(String(allowed.setCookie), /^pod_identity_console=/);
      assert.equal((await client.post('/sign-in', { accessKeyId: ADMIN.accessKeyId, secretAccessKey: 'again' })).status, 429, 'one attempt per window after the burst');
    } finally {
      await client.close();
    }
  });
});

describe('admin console under TLS', () => {
  let server: ServerProcess;
  let consoleUrl: string;
  let port: number;
  let ca: string;

  before(async () => {
    ({ server, consoleUrl, port } = await startWithConsole({ tls: {} }));
    ca = readFileSync(join(server.dataDir, 'api-tls', 'ca.crt'), 'utf8');
  });
  after(() => server?.stop());

  test('is served over HTTPS with the API’s certificate, and its cookie is Secure', async () => {
    assert.match(consoleUrl, /^https:/);
    const web = consoleClient(consoleUrl, { ca });
    try {
      const admin = await web.signIn(ADMIN.accessKeyId, ADMIN.secretAccessKey);
      assert.deepEqual(admin.setCookie.split(';').map((a) => a.trim()).slice(1).sort(), ['HttpOnly', 'Max-Age=900', 'Path=/', 'SameSite=Strict', 'Secure']);
      assert.equal((await web.get('/associations', admin.cookie)).status, 200);
    } finally {
      await web.close();
    }
    // the API's CA, not just any: a client that trusts no extra CA refuses the certificate
    await assert.rejects(consoleClient(consoleUrl).get('/sign-in'), /certificate/);
    // and nothing is served in plain HTTP on that port
    await assert.rejects(consoleClient(`http://127.0.0.1:${port}`).get('/sign-in'));
  });
});
