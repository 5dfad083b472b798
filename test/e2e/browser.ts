/**
 * Real headless Chromium (Debian's package) driven by playwright-core: the flags that work on
 * this machine, fake camera and microphone, and helpers to read the demo page's state.
 */
import { chromium, type Browser, type Page } from 'playwright-core';
import { mkdirSync } from 'node:fs';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const SCREENSHOTS = 'test-results/screenshots';

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection',
  // Background tabs must keep decoding video like a focused one.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
}

/** A page in a context of its own: its own sessionStorage, so its own userId. */
export async function openPage(browser: Browser, url: string, userId?: string): Promise<Page> {
  const context = await browser.newContext({
    permissions: ['camera', 'microphone'],
    viewport: { width: 1100, height: 800 },
  });
  // The page resumes the identity its tab kept (src/web/session.ts): this one, when given.
  if (userId !== undefined)
    await context.addInitScript((id) => {
      sessionStorage.setItem('aleatoria.userId', id);
      sessionStorage.setItem('aleatoria.token', `token-${id}-0123456789abcdef`);
    }, userId);
  const page = await context.newPage();
  page.on('pageerror', (error) => console.error(`[page error] ${error.message}`));
  await page.goto(url);
  return page;
}

export async function screenshot(page: Page, name: string) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: `${SCREENSHOTS}/${name}.png`, fullPage: true });
}

export const callStatus = (page: Page) => page.locator('#call-status').innerText();

/** Waits until #call-status contains `text`; returns how long that took. */
export async function waitForCallStatus(
  page: Page,
  text: string,
  timeoutMs = 15_000,
): Promise<number> {
  const started = Date.now();
  await page.locator('#call-status', { hasText: text }).waitFor({ timeout: timeoutMs });
  return Date.now() - started;
}

/** This page's userId and, in a call, its peer's. */
export function identity(page: Page): Promise<{ userId: string; peerId: string | undefined }> {
  return page.evaluate(() => {
    const hooks = (
      window as unknown as {
        __aleatoria: { client: { userId: string }; call?: { peerId: string } };
      }
    ).__aleatoria;
    return { userId: hooks.client.userId, peerId: hooks.call?.peerId };
  });
}

/** Remote video frames decoded by the page's current call (inbound-rtp, kind video). */
export function framesDecoded(page: Page): Promise<number> {
  return page.evaluate(async () => {
    const hooks = (window as unknown as { __aleatoria: { call?: { pc: RTCPeerConnection } } })
      .__aleatoria;
    const pc = hooks.call?.pc;
    if (!pc) return 0;
    let frames = 0;
    (await pc.getStats()).forEach(
      (report: { type: string; kind?: string; framesDecoded?: number }) => {
        if (report.type === 'inbound-rtp' && report.kind === 'video')
          frames += report.framesDecoded ?? 0;
      },
    );
    return frames;
  });
}

/** Polls `framesDecoded` from the test (waitForFunction does not await async predicates). */
export async function waitForFrames(page: Page, minimum = 1, timeoutMs = 15_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const frames = await framesDecoded(page);
    if (frames >= minimum) return frames;
    if (Date.now() > deadline)
      throw new Error(`no remote video decoded within ${timeoutMs} ms (frames: ${frames})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
