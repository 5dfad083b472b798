/**
 * The random video chat, end to end, through the demo page's own UI in real headless Chromium:
 * real getUserMedia (fake devices), real RTCPeerConnections over loopback, a real server.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { LaunchedServer } from '../contract/harness.ts';
import {
  framesDecoded,
  framesOfType,
  identity,
  launchBrowser,
  mediaAddress,
  openPage,
  screenshot,
  waitForCallStatus,
  waitForFrames,
  watchCallStatus,
} from './browser.ts';
import {
  addMediaNetwork,
  canChangeNetwork,
  moveMediaNetwork,
  removeMediaNetwork,
} from './network.ts';
import { startSocketProxy, type SocketProxy } from './socket-proxy.ts';

/**
 * The server's call resume window in this suite: long enough for a dropped page to come back
 * (the SDK retries within 500 ms), short enough to wait out in a test.
 */
const CALL_RESUME_MS = 4000;

export interface E2ETarget {
  name: string;
  launch(env: Record<string, string>): Promise<LaunchedServer>;
  /** Only the two-page call (the other scenarios run on Node). */
  callOnly?: boolean;
  /** The userIds of the two callers of the first call (default: the page's own guests). */
  callers?: readonly [string, string];
}

export function defineE2ESuite(target: E2ETarget) {
  describe(`demo page on ${target.name}`, () => {
    let server: LaunchedServer;
    let browser: Browser;
    const pages: Page[] = [];
    const slug = target.name.toLowerCase().replace(/[^a-z]+/g, '-');

    beforeAll(async () => {
      [server, browser] = await Promise.all([
        target.launch({ LOG_LEVEL: 'warn', CALL_RESUME_MS: String(CALL_RESUME_MS) }),
        launchBrowser(),
      ]);
    });
    afterAll(async () => {
      await browser?.close();
      await server?.stop();
    });
    afterEach(async () => {
      await Promise.all(pages.splice(0).map((page) => page.context().close()));
    });

    /** A page of `through` (a browser, a proxy in front of the server), connected. */
    const open = async (
      userId?: string,
      through: { browser?: Browser; proxy?: SocketProxy } = {},
    ) => {
      const base = through.proxy?.baseUrl ?? server.baseUrl;
      const page = await openPage(through.browser ?? browser, `${base}/`, userId);
      pages.push(page);
      await page
        .locator('#connection-status', { hasText: 'Connected' })
        .waitFor({ timeout: 15_000 });
      return page;
    };

    /**
     * Both pages' self-views play, within the hold's 1 s limit once the stranger's video is there
     * (`playing` follows the first decoded frame by a moment).
     */
    const selfViewsBack = (a: Page, b: Page) =>
      expect
        .poll(async () => [await selfViewPlaying(a), await selfViewPlaying(b)], { timeout: 1500 })
        .toEqual([true, true]);
    /** Whether the page's self-view is drawing the camera (src/web/self-view.ts). */
    const selfViewPlaying = (page: Page) =>
      page.evaluate(() => {
        const video = document.getElementById('local-video') as HTMLVideoElement;
        const stream = video.srcObject;
        return (
          stream instanceof MediaStream &&
          stream.getVideoTracks().some((track) => track.readyState === 'live') &&
          !video.paused
        );
      });

    /** Both press Start; resolves once both see a connected call with remote video decoded. */
    async function call(a: Page, b: Page) {
      await a.locator('#start').click();
      await waitForCallStatus(a, 'Waiting for a stranger');
      // Held only while a call is set up (at most 1 s): waiting in the pool, it shows at once.
      await expect.poll(() => selfViewPlaying(a), { timeout: 500 }).toBe(true);
      await b.locator('#start').click();
      await Promise.all([waitForCallStatus(a, 'Connected'), waitForCallStatus(b, 'Connected')]);
      await Promise.all([waitForFrames(a), waitForFrames(b)]);
    }

    it('connects two pages that press Start, with remote video decoded on both sides', async () => {
      const [a, b] = [await open(target.callers?.[0]), await open(target.callers?.[1])];
      await screenshot(a, `${slug}-01-ready`);
      await call(a, b);
      const [idA, idB] = [await identity(a), await identity(b)];
      expect(idA.peerId).toBe(idB.userId);
      expect(idB.peerId).toBe(idA.userId);
      if (target.callers) expect([idA.userId, idB.userId]).toStrictEqual([...target.callers]);
      // Held while the call was set up, back once the stranger's video is there.
      await selfViewsBack(a, b);
      await screenshot(a, `${slug}-02-in-call-a`);
      await screenshot(b, `${slug}-03-in-call-b`);
    }, 60_000);

    it('shows the Lobby chat, the stranger chat, who is there and how many are online again after a reload mid-chat', async () => {
      const [a, b] = [await open(), await open()];
      await call(a, b);
      const [idA, idB] = [await identity(a), await identity(b)];
      const say = async (page: Page, box: 'chat' | 'lobby', text: string) => {
        await page.locator(`#${box}-input`).fill(text);
        await page.locator(`#${box}-send`).click();
      };
      await say(a, 'chat', 'hello from a');
      await b
        .locator('#chat-log .chat-line[data-from="stranger"]', { hasText: 'hello from a' })
        .waitFor({ timeout: 5000 });
      await say(b, 'chat', 'hello from b');
      await say(b, 'lobby', 'lobby from b');
      await say(a, 'lobby', 'lobby from a');
      await b
        .locator('#lobby-log .chat-line', { hasText: 'lobby from a' })
        .waitFor({ timeout: 5000 });
      await a
        .locator('#chat-log .chat-line[data-from="stranger"]', { hasText: 'hello from b' })
        .waitFor({ timeout: 5000 });

      await a.reload();
      await a.locator('#connection-status', { hasText: 'Connected' }).waitFor({ timeout: 15_000 });
      expect((await identity(a)).userId).toBe(idA.userId);
      const lines = (page: Page, log: string) =>
        page
          .locator(`#${log} .chat-line`)
          .evaluateAll((found) =>
            found.map(
              (line) =>
                `${(line as HTMLElement).dataset.from}: ${line.querySelector('.text')?.textContent}`,
            ),
          );
      await a
        .locator('#chat-log .chat-line', { hasText: 'hello from b' })
        .waitFor({ timeout: 5000 });
      await a
        .locator('#lobby-log .chat-line', { hasText: 'lobby from a' })
        .waitFor({ timeout: 5000 });
      expect(await lines(a, 'chat-log')).toEqual(['me: hello from a', 'stranger: hello from b']);
      const lobby = await lines(a, 'lobby-log');
      expect(lobby.slice(-2)).toEqual([
        `${idB.userId}: lobby from b`,
        `${idA.userId}: lobby from a`,
      ]);
      expect(new Set(lobby).size).toBe(lobby.length);
      // Presence: both pages in the Lobby, and the online count from /stats.
      await a
        .locator(`#room-members .member[data-user="${idB.userId}"]`)
        .waitFor({ timeout: 5000 });
      await a
        .locator(`#room-members .member[data-user="${idA.userId}"]`)
        .waitFor({ timeout: 5000 });
      await expect
        .poll(async () => Number(await a.locator('#online-count').getAttribute('data-count')), {
          timeout: 5000,
        })
        .toBeGreaterThanOrEqual(2);
      await screenshot(a, `${slug}-08-after-reload`);

      // A newcomer sees the Lobby's recent messages, and is seen by the others as it arrives.
      const c = await open();
      const idC = await identity(c);
      await c
        .locator('#lobby-log .chat-line', { hasText: 'lobby from a' })
        .waitFor({ timeout: 5000 });
      await a
        .locator(`#room-members .member[data-user="${idC.userId}"]`)
        .waitFor({ timeout: 5000 });
      await expect
        .poll(async () => Number(await a.locator('#online-count').getAttribute('data-count')), {
          timeout: 5000,
        })
        .toBeGreaterThanOrEqual(3);
    }, 60_000);

    /** Frames of the page's current call decoded so far, then waits for `more` beyond them. */
    async function keepsDecoding(page: Page, more = 30) {
      await waitForFrames(page, (await framesDecoded(page)) + more, 10_000);
    }

    const hangups = (page: Page) => framesOfType(page, 'hangup');

    it("ends the partner's call within 1 s when a tab is closed (a clean close: no resume window)", async () => {
      const [a, b] = [await open(), await open()];
      await call(a, b);
      const closedAt = Date.now();
      await b.context().close();
      await waitForCallStatus(a, 'The stranger left', 5000);
      expect(Date.now() - closedAt).toBeLessThan(1000);
      expect(hangups(a).map((frame) => frame.payload)).toEqual([{ reason: 'peer_disconnected' }]);
    }, 60_000);

    describe('when a signaling socket drops without a close frame', () => {
      let proxy: SocketProxy;
      beforeEach(async () => {
        proxy = await startSocketProxy(server.baseUrl);
      });
      afterEach(async () => {
        await proxy.close();
      });

      it('keeps the call: video flows on, the partner sees the stranger reconnecting then connected, and signaling flows again', async () => {
        const [a, b] = [await open(undefined, { proxy }), await open()];
        await call(a, b);
        const statusesOfB = await watchCallStatus(b);
        proxy.hold();
        proxy.cutWebSocket();
        await waitForCallStatus(b, 'Stranger reconnecting', 5000);
        await a
          .locator('#connection-status', { hasText: 'Reconnecting' })
          .waitFor({ timeout: 5000 });
        // Media is peer to peer: it does not wait for the signaling socket.
        await Promise.all([keepsDecoding(a), keepsDecoding(b)]);
        await screenshot(b, `${slug}-09-stranger-reconnecting`);

        proxy.release();
        await a
          .locator('#connection-status', { hasText: 'Connected' })
          .waitFor({ timeout: 10_000 });
        await waitForCallStatus(b, 'Connected', 5000);
        expect(proxy.webSockets).toBe(2);
        await Promise.all([keepsDecoding(a), keepsDecoding(b)]);
        expect(await statusesOfB()).toEqual(['Connected', 'Stranger reconnecting…', 'Connected']);
        expect(await a.locator('#call-status').innerText()).toBe('Connected');

        // The pair goes on: a renegotiation from the side that dropped reaches the other and back.
        const offersToB = framesOfType(b, 'webrtc_offer').length;
        const answersToA = framesOfType(a, 'webrtc_answer').length;
        await a.evaluate(() =>
          (
            window as unknown as { __aleatoria: { call: { pc: RTCPeerConnection } } }
          ).__aleatoria.call.pc.restartIce(),
        );
        await expect
          .poll(() => framesOfType(a, 'webrtc_answer').length, { timeout: 5000 })
          .toBeGreaterThan(answersToA);
        expect(framesOfType(b, 'webrtc_offer').length).toBeGreaterThan(offersToB);
        await Promise.all([keepsDecoding(a), keepsDecoding(b)]);
        expect([...hangups(a), ...hangups(b)]).toEqual([]);
      }, 60_000);

      it(`hangs up the partner when the dropped side is not back within CALL_RESUME_MS (${CALL_RESUME_MS} ms), not before`, async () => {
        const [a, b] = [await open(undefined, { proxy }), await open()];
        await call(a, b);
        proxy.hold();
        const cutAt = Date.now();
        proxy.cutWebSocket();
        await waitForCallStatus(b, 'Stranger reconnecting', 5000);
        await waitForCallStatus(b, 'The stranger left', CALL_RESUME_MS + 5000);
        const waited = Date.now() - cutAt;
        expect(waited).toBeGreaterThanOrEqual(CALL_RESUME_MS - 250);
        expect(waited).toBeLessThan(CALL_RESUME_MS + 2000);
        expect(hangups(b).map((frame) => frame.payload)).toEqual([{ reason: 'peer_disconnected' }]);
        proxy.release();
      }, 60_000);
    });

    it('restarts ICE by itself when the network under the call changes, and the video comes back', async () => {
      // Media over a veth network only (no loopback candidates), the page and WebSocket over lo.
      expect(canChangeNetwork(), 'run inside scripts/isolated.sh, as npm run test:e2e does').toBe(
        true,
      );
      addMediaNetwork('10.99.0.1');
      const isolated = await launchBrowser({ loopback: false });
      try {
        const [a, b] = [
          await open(undefined, { browser: isolated }),
          await open(undefined, { browser: isolated }),
        ];
        await call(a, b);
        expect(await mediaAddress(a)).toBe('10.99.0.1');
        const [statusesOfA, statusesOfB] = [await watchCallStatus(a), await watchCallStatus(b)];
        const streams = () =>
          Promise.all(
            [a, b].map((page) =>
              page.evaluate(() => {
                const video = document.getElementById('remote-video') as HTMLVideoElement;
                const hooks = (
                  window as unknown as { __aleatoria: { call?: { remoteStream: MediaStream } } }
                ).__aleatoria;
                return video.srcObject !== null && video.srcObject === hooks.call?.remoteStream;
              }),
            ),
          );
        const changedAt = Date.now();
        moveMediaNetwork('10.99.0.1', '10.99.0.2');
        // Chromium notices the dead path in about 6 s; the restart then takes well under a second,
        // too short for waitFor to be sure to see it, so the recorded history is read instead.
        await expect
          .poll(async () => (await statusesOfA()).includes('Reconnecting the call…'), {
            timeout: 15_000,
          })
          .toBe(true);
        await Promise.all([
          waitForCallStatus(a, 'Connected', 20_000),
          waitForCallStatus(b, 'Connected', 20_000),
        ]);
        console.log(`[${target.name}] ICE restart recovered in ${Date.now() - changedAt} ms`);
        await Promise.all([keepsDecoding(a), keepsDecoding(b)]);
        expect(await mediaAddress(a)).toBe('10.99.0.2');
        expect(await streams()).toEqual([true, true]);
        for (const statuses of [await statusesOfA(), await statusesOfB()])
          expect(statuses).toContain('Reconnecting the call…');
        expect([...hangups(a), ...hangups(b)]).toEqual([]);
      } finally {
        await isolated.close();
        removeMediaNetwork();
      }
    }, 90_000);

    if (target.callOnly) return;

    it('delivers text chat inside the call', async () => {
      const [a, b] = [await open(), await open()];
      await call(a, b);
      await a.locator('#chat-input').fill('hello stranger');
      await a.locator('#chat-send').click();
      await b
        .locator('#chat-log .chat-line[data-from="stranger"]', { hasText: 'hello stranger' })
        .waitFor({ timeout: 5000 });
      await a
        .locator('#chat-log .chat-line[data-from="me"]', { hasText: 'hello stranger' })
        .waitFor({ timeout: 5000 });
      await screenshot(b, `${slug}-04-chat`);
    }, 60_000);

    it('Next matches A with the waiting C, never again with B, and B sees the stranger left', async () => {
      const [a, b, c] = [await open(), await open(), await open()];
      await call(a, b);
      const idB = await identity(b);
      await c.locator('#start').click();
      await waitForCallStatus(c, 'Waiting for a stranger');
      await a.locator('#next').click();
      await waitForCallStatus(b, 'The stranger left');
      await Promise.all([waitForCallStatus(a, 'Connected'), waitForCallStatus(c, 'Connected')]);
      const [idA, idC] = [await identity(a), await identity(c)];
      expect(idA.peerId).toBe(idC.userId);
      expect(idA.peerId).not.toBe(idB.userId);
      await Promise.all([waitForFrames(a), waitForFrames(c)]);
      await selfViewsBack(a, c);
      await screenshot(b, `${slug}-05-stranger-left`);
    }, 60_000);

    it('carries room chat between two pages in the Lobby', async () => {
      const [a, b] = [await open(), await open()];
      const idA = await identity(a);
      await a.locator('#lobby-input').fill('hi lobby');
      await a.locator('#lobby-send').click();
      await b
        .locator(`#lobby-log .chat-line[data-from="${idA.userId}"]`, { hasText: 'hi lobby' })
        .waitFor({ timeout: 5000 });
      await screenshot(b, `${slug}-06-lobby`);
    }, 30_000);

    it('tells the user plainly when the server does not allow the page origin', async () => {
      const strict = await target.launch({ ALLOWED_ORIGINS: 'https://www.aleatoria.chat' });
      try {
        const page = await openPage(
          browser,
          `${server.baseUrl}/?server=${encodeURIComponent(`${strict.baseUrl.replace('http', 'ws')}/ws`)}`,
        );
        pages.push(page);
        await page
          .locator('#errors .error', { hasText: 'not allowed' })
          .waitFor({ timeout: 10_000 });
        await screenshot(page, `${slug}-07-origin-refused`);
      } finally {
        await strict.stop();
      }
    }, 60_000);
  });
}
