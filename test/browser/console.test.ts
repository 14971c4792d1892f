// The admin console in a real headless Chromium (Debian's package, driven by
// playwright-core): a real server with two API workers (decisions made in the
// workers must reach the console in the primary) and a real agent process.
// The tests run in order on one page: sign-in, create, the live feed and its
// filters, the service-account page and the chart (which count what the
// earlier tests fetched), then edit and tag forms by keyboard.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { requirePeer } from '../peers/require.js';
import { ADMIN, freePort } from '../helpers/server-process.js';
import { getCredentials, ROLE_ARN, startAgentProcess, startControlPlane, type AgentProcess, type ControlPlane } from '../integration/agent-harness.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join('test-artifacts', 'console');
const skip = requirePeer('chromium', () => (existsSync(CHROMIUM) ? undefined : `${CHROMIUM} not found; run scripts/install-chromium.sh`));

describe('admin console in Chromium', { skip }, () => {
  let plane: ControlPlane;
  let agent: AgentProcess;
  let browser: Browser;
  let page: Page;
  let consoleUrl: string;

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const port = await freePort();
    consoleUrl = `http://127.0.0.1:${port}`;
    plane = await startControlPlane({ consoleListen: `127.0.0.1:${port}`, workers: 2 });
    agent = await startAgentProcess({ endpoint: plane.server.apiUrl });
    browser = await chromium.launch({ executablePath: CHROMIUM });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  });
  after(async () => {
    await browser?.close();
    await agent?.stop();
    await plane?.stop();
  });

  const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

  test('a wrong key is refused', async () => {
    await page.goto(consoleUrl);
    assert.match(page.url(), /\/sign-in$/);
    await page.fill('#accessKeyId', ADMIN.accessKeyId);
    await page.fill('#secretAccessKey', 'not-the-secret');
    await page.click('button[type=submit]');
    assert.match(await page.textContent('[role=alert]') ?? '', /not an admin key/);
    assert.equal(await page.locator('text=not-the-secret').count(), 0);
    await shot('sign-in-refused');
  });

  test('sign in, create an association and see it listed', async () => {
    await page.fill('#accessKeyId', ADMIN.accessKeyId);
    await page.fill('#secretAccessKey', ADMIN.secretAccessKey);
    await page.click('button[type=submit]');
    assert.match(page.url(), /\/associations$/);
    await page.fill('#c-namespace', 'default');
    await page.fill('#c-sa', 'app');
    await page.fill('#c-role', ROLE_ARN);
    await page.click('#create button[type=submit]');
    assert.match(await page.textContent('#notice') ?? '', /Association created/);
    await page.goto(`${consoleUrl}/associations`);
    assert.equal(await page.locator('#associations tbody tr').count(), 1);
    assert.match(await page.textContent('#associations tbody') ?? '', /agent-test-role/);
    await shot('associations');
  });

  test('a fetch through the agent appears in the live feed within 2 s, and a refused one after the delete', async () => {
    await page.goto(`${consoleUrl}/decisions`);
    await page.waitForSelector('#feed[data-live=connected]');
    const started = Date.now();
    const ok = await getCredentials(agent.url, await plane.token({ namespace: 'default', serviceAccount: 'app' }));
    assert.equal(ok.status, 200);
    await page.waitForSelector('#feed tbody tr[data-outcome=allowed]', { timeout: 2000 });
    console.log(`# decision in the feed ${Date.now() - started} ms after the fetch began`);
    // the replica (this host) and the API worker that decided
    const origin = (await page.textContent('#feed tbody tr[data-outcome=allowed] td:last-child')) ?? '';
    assert.ok(origin.startsWith(`${hostname()} · worker `), origin);
    assert.match(origin, / · worker \d$/);
    assert.ok(((await page.textContent('#scope')) ?? '').includes(`of this replica, ${hostname()} (each replica shows its own`), 'the page says whose decisions it shows');
    await shot('decisions');

    await page.goto(`${consoleUrl}/associations`);
    await page.click('#associations tbody a');
    page.once('dialog', (dialog) => void dialog.accept());
    await page.click('button.danger');
    assert.match(await page.textContent('#notice') ?? '', /Association deleted/);

    await page.goto(`${consoleUrl}/decisions`);
    await page.waitForSelector('#feed[data-live=connected]');
    const refused = await getCredentials(agent.url, await plane.token({ namespace: 'default', serviceAccount: 'app' }));
    assert.equal(refused.status, 404);
    const row = await page.waitForSelector('#feed tbody tr[data-outcome=denied]', { timeout: 2000 });
    assert.match((await row.textContent()) ?? '', /no_association/);
    await shot('decisions-refused');
    // rendered again, the chart holds both minutes' bars: the README's screenshot (docs/console.png is a copy)
    await page.goto(`${consoleUrl}/decisions`);
    await page.waitForSelector('#feed[data-live=connected]');
    await page.screenshot({ path: join(ARTIFACTS, 'console.png') });
  });

  test('a change without the CSRF token is refused', async () => {
    const cookie = (await page.context().cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
    const res = await fetch(`${consoleUrl}/associations`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ cluster: 'demo', namespace: 'default', serviceAccount: 'csrf', roleArn: ROLE_ARN }).toString(),
    });
    assert.equal(res.status, 403);
    await page.goto(`${consoleUrl}/associations`);
    assert.equal(await page.locator('#associations tbody tr').count(), 0);
  });

  test('the feed’s filters show only the matching decisions, as they happen and from the filter form', async () => {
    await plane.associate('default', 'other');
    await page.goto(`${consoleUrl}/decisions?outcome=denied`);
    await page.waitForSelector('#feed[data-live=connected]');
    assert.ok((await page.locator('#feed tbody tr').count()) > 0);
    assert.equal(await page.locator('#feed tbody tr:not([data-outcome=denied])').count(), 0, 'the page’s first rows are filtered');
    assert.equal((await getCredentials(agent.url, await plane.token({ namespace: 'default', serviceAccount: 'other' }))).status, 200);
    assert.equal((await getCredentials(agent.url, await plane.token({ namespace: 'default', serviceAccount: 'nobody' }))).status, 404);
    await page.waitForSelector('#feed tbody tr[data-outcome=denied]:has-text("nobody")', { timeout: 2000 });
    assert.equal(await page.locator('#feed tbody tr:not([data-outcome=denied])').count(), 0, 'the live feed is filtered: the issued one is not shown');

    // the filter form, by keyboard
    await page.focus('#d-sa');
    await page.keyboard.type('other');
    await page.selectOption('#d-outcome', 'allowed');
    await page.focus('#d-sa');
    await Promise.all([page.waitForURL(/serviceAccount=other/), page.keyboard.press('Enter')]);
    assert.match(page.url(), /outcome=allowed/);
    const rows = page.locator('#feed tbody tr');
    assert.equal(await rows.count(), 1);
    assert.equal(await rows.first().getAttribute('data-outcome'), 'allowed');
    assert.match((await rows.first().textContent()) ?? '', /other/);
    await shot('decisions-filtered');
  });

  test('the service-account page shows each one’s last success and last failure with its reason', async () => {
    await page.goto(`${consoleUrl}/service-accounts`);
    const row = (sa: string) => page.locator('#service-accounts tbody tr', { has: page.locator(`td:text-is("${sa}")`) });
    const cells = async (sa: string) => (await row(sa).locator('td').allTextContents()).map((t) => t.trim());
    const app = await cells('app');
    assert.deepEqual(app.slice(0, 3), ['demo', 'default', 'app']);
    assert.match(app[3]!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/, 'when it last got credentials');
    assert.equal(app[4], ROLE_ARN);
    assert.match(app[5]!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/, 'when it was last refused');
    assert.equal(app[6], 'no_association (ResourceNotFoundException)');
    const nobody = await cells('nobody');
    assert.equal(nobody[3], '—', 'never got credentials');
    assert.equal(nobody[6], 'no_association (ResourceNotFoundException)');
    const other = await cells('other');
    assert.equal(other[4], ROLE_ARN);
    assert.equal(other[5], '—', 'never refused');
    // filtered to one service account
    await page.goto(`${consoleUrl}/service-accounts?serviceAccount=other`);
    assert.equal(await page.locator('#service-accounts tbody tr').count(), 1);
    await shot('service-accounts');
  });

  test('the chart counts issued and refused credentials per minute, and refreshes itself', { timeout: 30_000 }, async () => {
    // so far: app and other issued, app and nobody refused
    const minutes = [new Date().toISOString().slice(11, 16)];
    await page.goto(`${consoleUrl}/decisions`);
    minutes.push(new Date().toISOString().slice(11, 16));
    const desc = () => page.textContent('#chart-desc');
    assert.match((await desc()) ?? '', / 2 issued, 2 refused\.$/);
    assert.ok((await page.locator('#chart rect.issued').count()) >= 1);
    assert.ok((await page.locator('#chart rect.refused').count()) >= 1);
    // each minute's bar pair is titled with its minute and counts, which add up to the totals
    const titles = await page.locator('#chart g title').allTextContents();
    assert.equal(titles.length, 30);
    const sums = titles.reduce(
      (sum, title) => {
        const m = /^\d\d:\d\d UTC: (\d+) issued, (\d+) refused$/.exec(title);
        assert.ok(m, title);
        return { issued: sum.issued + Number(m[1]), refused: sum.refused + Number(m[2]) };
      },
      { issued: 0, refused: 0 },
    );
    assert.deepEqual(sums, { issued: 2, refused: 2 });
    assert.ok(minutes.includes(titles.at(-1)!.slice(0, 5)), 'the last bar is this minute');
    assert.equal((await getCredentials(agent.url, await plane.token({ namespace: 'default', serviceAccount: 'other' }))).status, 200);
    // the script fetches /chart every 10 s
    await page.waitForSelector('#chart-desc:has-text(" 3 issued, 2 refused.")', { state: 'attached', timeout: 15_000 });
  });

  test('edit and tag an association by keyboard; a bad edit reads as the API words it', async () => {
    await page.goto(`${consoleUrl}/associations?serviceAccount=other`);
    await page.click('#associations tbody a');
    await page.fill('#e-role', 'arn:aws:iam::123:role/short-account');
    await page.focus('#e-role');
    await Promise.all([page.waitForURL(/\/update$/), page.keyboard.press('Enter')]);
    const refused = (await page.textContent('#notice[role=alert]')) ?? '';
    assert.match(refused, /^InvalidParameterException: roleArn must be an IAM role ARN/);
    await shot('association-refused');

    await page.fill('#e-role', `${ROLE_ARN}-2`);
    await page.focus('#e-role');
    await Promise.all([page.waitForURL(/done=updated/), page.keyboard.press('Enter')]);
    assert.equal(await page.textContent('#notice[role=status]'), 'Association saved.');
    assert.match((await page.textContent('dl.facts')) ?? '', /agent-test-role-2/);

    await page.focus('#t-key');
    await page.keyboard.type('team');
    await page.keyboard.press('Tab');
    await page.keyboard.type('payments');
    await Promise.all([page.waitForURL(/done=tagged/), page.keyboard.press('Enter')]);
    assert.equal(await page.textContent('#notice[role=status]'), 'Tag added.');
    assert.deepEqual((await page.locator('#tags tbody td code').allTextContents()), ['team', 'payments']);
    await page.focus('#t-key');
    await page.keyboard.type('aws:reserved');
    await Promise.all([page.waitForURL(/\/tags$/), page.keyboard.press('Enter')]);
    assert.match((await page.textContent('#notice[role=alert]')) ?? '', /^BadRequestException: /);
    await Promise.all([page.waitForURL(/done=untagged/), page.click('button[aria-label="Remove tag team"]')]);
    assert.equal(await page.textContent('#notice[role=status]'), 'Tag removed.');
    assert.equal(await page.locator('#tags').count(), 0);
  });
});
