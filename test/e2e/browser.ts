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
  // Background tabs must keep decoding video like a focused one.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

/** Lets WebRTC gather candidates on 127.0.0.1, the only address of the test's namespace. */
const LOOPBACK = '--allow-loopback-in-peer-connection';

/**
 * `loopback: false` leaves 127.0.0.1 out of ICE: media then only flows over the non-loopback
 * interfaces there are (see `network.ts`), while the page and its WebSocket stay on loopback.
 */
export function launchBrowser(options: { loopback?: boolean } = {}): Promise<Browser> {
  const args = options.loopback === false ? FLAGS : [...FLAGS, LOOPBACK];
  return chromium.launch({ executablePath: CHROMIUM, args, headless: true });
}

/** The `type`s and payloads of every WebSocket frame each page received, in order. */
const received = new WeakMap<Page, { type: string; payload: unknown }[]>();

/** Frames of `type` the page received on any of its sockets so far. */
export function framesOfType(page: Page, type: string): { type: string; payload: unknown }[] {
  return (received.get(page) ?? []).filter((frame) => frame.type === type);
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
  // Read off the wire (CDP), not through the SDK: what reached the page, whatever the SDK does.
  const frames: { type: string; payload: unknown }[] = [];
  received.set(page, frames);
  page.on('websocket', (socket) =>
    socket.on('framereceived', ({ payload }) => {
      try {
        const frame = JSON.parse(String(payload)) as { type: string; payload: unknown };
        frames.push({ type: frame.type, payload: frame.payload });
      } catch {
        // Not JSON: nothing the protocol sends.
      }
    }),
  );
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

/**
 * Starts recording every text #call-status shows; the returned function reads them, in order, so
 * a test can see a state that came and went between two polls.
 */
export async function watchCallStatus(page: Page): Promise<() => Promise<string[]>> {
  await page.evaluate(() => {
    const status = document.getElementById('call-status')!;
    const seen: string[] = [status.textContent ?? ''];
    (window as unknown as { __callStatuses: string[] }).__callStatuses = seen;
    new MutationObserver(() => {
      const text = status.textContent ?? '';
      if (seen.at(-1) !== text) seen.push(text);
    }).observe(status, { childList: true, characterData: true, subtree: true });
  });
  return () =>
    page.evaluate(() => [...(window as unknown as { __callStatuses: string[] }).__callStatuses]);
}

/** The local address the current call's media flows from (its selected candidate pair). */
export function mediaAddress(page: Page): Promise<string | undefined> {
  return page.evaluate(async () => {
    const pc = (window as unknown as { __aleatoria: { call?: { pc: RTCPeerConnection } } })
      .__aleatoria.call?.pc;
    if (!pc) return undefined;
    const stats = await pc.getStats();
    let address: string | undefined;
    stats.forEach((report: { type: string; selectedCandidatePairId?: string }) => {
      if (report.type !== 'transport' || !report.selectedCandidatePairId) return;
      const pair = stats.get(report.selectedCandidatePairId) as { localCandidateId: string };
      address = (stats.get(pair.localCandidateId) as { address?: string }).address;
    });
    return address;
  });
}
