// The admin console in a real headless Chromium (Debian's package, driven by
// playwright-core): a real server with two API workers (decisions made in the
// workers must reach the console in the primary) and a real agent process.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
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
    assert.match(await page.textContent('#feed tbody tr[data-outcome=allowed]') ?? '', /worker-\d/);
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
});
