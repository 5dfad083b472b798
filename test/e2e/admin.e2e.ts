/**
 * The operator page (`/admin`) in real Chromium against the Node server: it asks for the token and
 * refuses a wrong one, shows live figures with the right one (under the page's own
 * Content-Security-Policy: a violation fails the test), follows clients as they come, and keeps
 * the token in the tab only. Saves `test-results/admin.png`.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, uid } from '../contract/harness.ts';
import type { LaunchedServer } from '../contract/harness.ts';
import { launchNode } from '../contract/launchers.ts';
import { launchBrowser } from './browser.ts';

const TOKEN = 'operator-page-e2e-token';

describe('operator page on Node in Chromium', () => {
  let server: LaunchedServer;
  let browser: Browser;
  let page: Page;
  /** Console errors and uncaught exceptions (a CSP violation is one). */
  const problems: string[] = [];
  const clients: TestClient[] = [];

  beforeAll(async () => {
    [server, browser] = await Promise.all([launchNode({ ADMIN_TOKEN: TOKEN }), launchBrowser()]);
    const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
    page = await context.newPage();
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await browser?.close();
    await server?.stop();
  });

  const text = (id: string) => page.locator(`#${id}`).innerText();
  /** Waits until the page shows `expected` in `#id` (it polls the server every 1.5 s). */
  const shows = (id: string, expected: string) =>
    page.locator(`#${id}`, { hasText: new RegExp(`^${expected}$`) }).waitFor({ timeout: 10_000 });

  it('asks for the token and refuses a wrong one', async () => {
    await page.goto(`${server.baseUrl}/admin`);
    await page.locator('#token').waitFor({ state: 'visible' });
    expect(await page.locator('#dashboard').isVisible()).toBe(false);
    await page.fill('#token', 'not-the-operator-token');
    await page.click('button[type=submit]');
    await page.locator('#login-error', { hasText: 'That token was refused.' }).waitFor();
    expect(await page.locator('#dashboard').isVisible()).toBe(false);
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    // The browser logs the refused request itself; nothing else may go wrong.
    for (const problem of problems.splice(0)) expect(problem).toMatch(/401/);
  });

  it('shows live figures with the token, following clients as they come', async () => {
    await page.fill('#token', TOKEN);
    await page.click('button[type=submit]');
    await page.locator('#dashboard').waitFor({ state: 'visible' });
    expect(await page.locator('#login').isVisible()).toBe(false);
    expect(page.url()).toBe(`${server.baseUrl}/admin`);
    await shows('connections', '0');
    expect(await text('matches-per-minute')).toMatch(/^(…|0\.0)$/);

    const room = uid('busy');
    for (let i = 0; i < 3; i++) clients.push(await TestClient.open(server.baseUrl, { room }));
    await shows('connections', '3');
    await shows('rooms', '1');
    await expect.poll(() => text('top-rooms')).toContain(`${room}\t3`);

    // Two more, matched: a pair, a time to match in the chart, matches per minute above zero.
    const [x, y] = [await TestClient.open(server.baseUrl), await TestClient.open(server.baseUrl)];
    clients.push(x, y);
    y.send({ type: 'user_available_webrtc' });
    await y.roundTrip();
    x.send({ type: 'request_random_peer' });
    await Promise.all([x.nextOfType('assign_role'), y.nextOfType('assign_role')]);
    await shows('connections', '5');
    await shows('pairs', '1');
    await page.locator('#ttm-summary', { hasText: /^1 match,/ }).waitFor({ timeout: 10_000 });
    expect(await page.locator('#ttm-chart rect.bar').count()).toBe(10);
    await expect
      .poll(() => text('matches-per-minute'), { timeout: 10_000 })
      .not.toMatch(/^(…|0\.0)$/);
    expect(await text('history')).toMatch(/msgs$/);
    // A process alone has no node rows.
    expect(await page.locator('#nodes-section').isVisible()).toBe(false);

    await page.screenshot({ path: 'test-results/admin.png', fullPage: true });
    expect(problems).toEqual([]);
  });

  it('keeps the token for the tab only, and forgets it on request', async () => {
    await page.reload();
    await page.locator('#dashboard').waitFor({ state: 'visible' });
    await shows('connections', '5');
    const stored = await page.evaluate(() => Object.values(sessionStorage));
    expect(stored).toEqual([TOKEN]);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    await page.click('#forget');
    await page.locator('#token').waitFor({ state: 'visible' });
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    expect(problems).toEqual([]);
  });
});
