/**
 * `npm run bench:calls`: sequential calls between two Chromium pages through the demo page's UI,
 * against a real Node server on loopback. For each call it measures, inside page A:
 *   request -> connected: from the `request_random_peer` frame leaving A's socket to A's
 *                         RTCPeerConnection reaching "connected";
 *   request -> video:     from the same frame to A's first remote video frame decoded.
 * Prints p50/p95 of both (the figures nobody publishes) and writes JSON under bench/results/.
 * Usage: npm run bench:calls [-- --calls 20]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { launchNode } from '../test/contract/launchers.ts';
import { launchBrowser, openPage, waitForCallStatus } from '../test/e2e/browser.ts';

const calls = Number(process.argv[process.argv.indexOf('--calls') + 1]) || 20;

/**
 * Installed before the page's own script: stamps the request frame and watches the call from
 * inside. Plain JavaScript text, since tsx's transform would add helpers the page does not have.
 */
const PROBE = `(() => {
  const probe = { requestAt: 0, connectedAt: 0, videoAt: 0 };
  window.__probe = probe;
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (typeof data === 'string' && data.includes('"request_random_peer"')) {
      probe.requestAt = performance.now();
      probe.connectedAt = 0;
      probe.videoAt = 0;
    }
    return send.call(this, data);
  };
  const watch = async () => {
    const pc = window.__aleatoria && window.__aleatoria.call && window.__aleatoria.call.pc;
    if (probe.requestAt && pc) {
      if (!probe.connectedAt && pc.connectionState === 'connected') probe.connectedAt = performance.now();
      if (probe.connectedAt && !probe.videoAt) {
        let frames = 0;
        (await pc.getStats()).forEach((r) => {
          if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded || 0;
        });
        if (frames > 0) probe.videoAt = performance.now();
      }
    }
    setTimeout(watch, 2);
  };
  watch();
})();`;

async function measure(page: Page): Promise<{ connectedMs: number; videoMs: number }> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const probe = await page.evaluate(
      () =>
        (
          window as unknown as {
            __probe: { requestAt: number; connectedAt: number; videoAt: number };
          }
        ).__probe,
    );
    if (probe.videoAt)
      return {
        connectedMs: probe.connectedAt - probe.requestAt,
        videoMs: probe.videoAt - probe.requestAt,
      };
    if (Date.now() > deadline)
      throw new Error(`call not connected with video within 20 s: ${JSON.stringify(probe)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};

const server = await launchNode({ LOG_LEVEL: 'warn' });
const browser = await launchBrowser();
try {
  const [a, b] = [await openPage(browser, 'about:blank'), await openPage(browser, 'about:blank')];
  for (const page of [a, b]) {
    await page.addInitScript({ content: PROBE });
    await page.goto(`${server.baseUrl}/`);
    await page.locator('#connection-status', { hasText: 'Connected' }).waitFor();
  }
  const results: Array<{ connectedMs: number; videoMs: number }> = [];
  for (let i = 0; i < calls; i++) {
    // B waits in the pool; A's request finds it. Both stop afterwards, so the next round starts clean.
    await b.locator('#start').click();
    await waitForCallStatus(b, 'Waiting for a stranger');
    await a.locator('#start').click();
    results.push(await measure(a));
    await a.locator('#stop').click();
    await waitForCallStatus(a, 'Stopped');
    await waitForCallStatus(b, 'The stranger left');
    await b.locator('#stop').click();
    await waitForCallStatus(b, 'Stopped');
  }
  const connected = results.map((r) => r.connectedMs);
  const video = results.map((r) => r.videoMs);
  const summary = {
    calls,
    machine: 'loopback, one Node server process, headless Chromium with fake devices',
    requestToConnectedMs: { p50: percentile(connected, 50), p95: percentile(connected, 95) },
    requestToVideoMs: { p50: percentile(video, 50), p95: percentile(video, 95) },
  };
  console.log(`\n| ${calls} sequential calls | p50 (ms) | p95 (ms) |\n|---|---|---|`);
  console.log(
    `| request -> connected | ${summary.requestToConnectedMs.p50.toFixed(1)} | ${summary.requestToConnectedMs.p95.toFixed(1)} |`,
  );
  console.log(
    `| request -> remote video decoded | ${summary.requestToVideoMs.p50.toFixed(1)} | ${summary.requestToVideoMs.p95.toFixed(1)} |`,
  );
  mkdirSync('bench/results', { recursive: true });
  const file = `bench/results/calls-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  writeFileSync(file, JSON.stringify({ ...summary, results }, null, 2));
  console.log(`\nwritten to ${file}`);
} finally {
  await browser.close();
  await server.stop();
}
