/**
 * The hostile suite (issue 5): abuse over real sockets, while a bystander's session is watched.
 * Figures (RSS, bystander p99) are printed for the record; assertions use generous bounds, since
 * this machine is shared.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  TestClient,
  oneProcess,
  uidOn,
  uid,
  upgradeStatus,
  type ContractTarget,
  type LaunchedServer,
} from './harness.ts';

const MiB = 1024 * 1024;
const report = (line: string) => console.log(`[hostile] ${line}`);

/** DM round trips from `a` to `b`, in ms. */
async function dmLatencies(a: TestClient, b: TestClient, count: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    a.send({ type: 'chat_message', toUser: b.userId, payload: { content: `p${i}` } });
    await b.next((m) => m.type === 'chat_message' && m.payload.content === `p${i}`);
    times.push(performance.now() - started);
    a.queue.length = 0;
  }
  return times;
}
const p99 = (values: number[]) =>
  [...values].sort((x, y) => x - y)[Math.ceil(values.length * 0.99) - 1]!;

export function defineHostileSuite(target: ContractTarget) {
  describe(`hostile input on ${target.name}`, () => {
    let server: LaunchedServer;
    beforeAll(async () => {
      server = await target.launch({
        MAX_MESSAGE_BYTES: String(256 * 1024),
        RATE_LIMIT_PER_SECOND: '50',
        RATE_LIMIT_BURST: '100',
        RATE_LIMIT_CLOSE_AFTER_MS: '2000',
        MAX_CONNECTIONS_PER_IP: '100',
        SEND_QUEUE_MAX_BYTES: String(MiB),
      });
    });
    afterAll(() => server?.stop());

    it('closes a 2 MiB frame with 1009 while a bystander DM round trip still works', async () => {
      const [attacker, a, b] = [
        await TestClient.open(server.baseUrl),
        await TestClient.open(server.baseUrl),
        await TestClient.open(server.baseUrl),
      ];
      attacker.sendText(`{"type":"get_rooms","pad":"${'x'.repeat(2 * MiB)}"}`);
      expect((await attacker.closed).code).toBe(1009);
      await dmLatencies(a, b, 3);
      await Promise.all([a.close(), b.close()]);
    }, 30_000);

    it('answers 50,000-deep JSON and prototype keys with errors, polluting nothing', async () => {
      const a = await TestClient.open(server.baseUrl);
      a.sendText(`${'['.repeat(50_000)}${']'.repeat(50_000)}`);
      expect((await a.nextOfType('error_response')).payload.code).toBe('invalid_json');
      a.sendText(
        '{"type":"get_rooms","__proto__":{"isAdmin":true},"constructor":{"prototype":{"isAdmin":true}}}',
      );
      await a.nextOfType('rooms_list');
      a.sendText('{"__proto__":{"type":"get_rooms"}}');
      expect((await a.nextOfType('error_response')).payload.code).toBe('invalid_message');
      await a.close();
    });

    it('meets a 2,000 msg/s flood with rate_limited then 1008, and the bystander p99 stays bounded', async () => {
      const flood = uid('flood');
      const [a, b, flooder] = [
        await TestClient.open(server.baseUrl),
        await TestClient.open(server.baseUrl),
        await TestClient.open(server.baseUrl, { room: flood }),
      ];
      // 40 + 40 round trips stay inside the bystander's own burst of 100.
      const quiet = await dmLatencies(a, b, 40);
      const started = Date.now();
      const timer = setInterval(() => {
        if (flooder.ws.readyState === 1)
          for (let i = 0; i < 20; i++)
            flooder.send({ type: 'chat_message', room: flood, payload: { content: 'spam' } });
      }, 10);
      try {
        expect((await flooder.nextOfType('error')).payload.code).toBe('rate_limited');
        const loud = await dmLatencies(a, b, 40);
        const { code } = await flooder.closed;
        expect(target.capabilities.closeHandshakeUnderFlood ? [1008] : [1008, 1006]).toContain(
          code,
        );
        report(
          `${target.name}: bystander DM p99 ${p99(quiet).toFixed(2)} ms quiet, ${p99(loud).toFixed(2)} ms under a 2,000 msg/s flood; flooder closed after ${Date.now() - started} ms`,
        );
        expect(p99(loud)).toBeLessThan(p99(quiet) * 5 + 25);
      } finally {
        clearInterval(timer);
        await Promise.all([a.close(), b.close()]);
      }
    }, 30_000);

    it('answers 300 connections from one address with 429 past MAX_CONNECTIONS_PER_IP', async () => {
      const statuses: number[] = [];
      const open: TestClient[] = [];
      // The cap is per process (a cluster's nodes each count their own).
      const one = oneProcess(server);
      for (let i = 0; i < 300; i++) {
        try {
          open.push(await TestClient.open(one.baseUrl, { userId: uidOn(one, 'crowd') }));
          statuses.push(101);
        } catch (error) {
          statuses.push(Number(/(\d{3})/.exec(String(error))?.[1]));
        }
      }
      report(
        `${target.name}: 300 connections from one address: ${statuses.filter((s) => s === 101).length} accepted, ${statuses.filter((s) => s === 429).length} refused with 429`,
      );
      expect(statuses.filter((s) => s === 101).length).toBe(100);
      expect(statuses.filter((s) => s === 429).length).toBe(200);
      await Promise.all(open.map((client) => client.close()));
      expect(await upgradeStatus(server.baseUrl, { userId: uid() })).toBe(101);
    }, 60_000);

    it.runIf(target.capabilities.slowConsumerClose && target.capabilities.processMemory)(
      'drops a reader that stalls in a busy room, with server memory bounded',
      async () => {
        const busy = await target.launch({
          SEND_QUEUE_MAX_BYTES: String(MiB),
          RATE_LIMIT_PER_SECOND: '100000',
          RATE_LIMIT_BURST: '100000',
        });
        try {
          const room = uid('busy');
          const [sender, stalled] = [
            await TestClient.open(busy.baseUrl, { room }),
            await TestClient.open(busy.baseUrl, { room }),
          ];
          const rssBefore = busy.rss!();
          (stalled.ws as unknown as { _socket: { pause(): void } })._socket.pause();
          const content = 'x'.repeat(4000);
          let dropped = false;
          for (let round = 0; round < 100 && !dropped; round++) {
            for (let i = 0; i < 100; i++)
              sender.send({ type: 'chat_message', room, payload: { content } });
            sender.send({
              type: 'chat_message',
              toUser: stalled.userId,
              payload: { content: '?' },
            });
            const reply = await sender.next(
              (m) =>
                (m.type === 'chat_message' && m.toUser === stalled.userId) || m.type === 'error',
            );
            dropped = reply.type === 'error' && reply.payload.code === 'user_not_found';
            sender.queue.length = 0;
          }
          const rssAfter = busy.rss!();
          report(
            `${target.name}: stalled reader dropped: ${dropped}; server RSS ${(rssBefore / MiB).toFixed(1)} -> ${(rssAfter / MiB).toFixed(1)} MiB (SEND_QUEUE_MAX_BYTES 1 MiB)`,
          );
          expect(dropped).toBe(true);
          expect(rssAfter - rssBefore).toBeLessThan(64 * MiB);
          await sender.close();
        } finally {
          await busy.stop();
        }
      },
      60_000,
    );

    it.runIf(target.capabilities.processMemory)(
      'returns to near its baseline memory after 2,000 connect/disconnect cycles',
      async () => {
        const cycle = async (count: number) => {
          for (let done = 0; done < count; done += 50) {
            const batch = await Promise.all(
              Array.from({ length: 50 }, () =>
                TestClient.open(server.baseUrl, { userId: uid('cycle') }),
              ),
            );
            await Promise.all(batch.map((client) => client.close()));
          }
        };
        // The warm-up is as long as the run: what it measures is growth between two steady
        // states (a leak), not how far the heap expands before a lazy collector gives memory back
        // (Deno, and any node carrying a Redis client, expand for several thousand cycles).
        await cycle(2000);
        await new Promise((r) => setTimeout(r, 500));
        // Each process of a cluster on its own: the bound is per process.
        const processes = server.nodes ?? [server];
        const baseline = processes.map((node) => node.rss!());
        await cycle(2000);
        await new Promise((r) => setTimeout(r, 1000));
        const after = processes.map((node) => node.rss!());
        const mib = (bytes: number[]) => bytes.map((b) => (b / MiB).toFixed(1)).join(' + ');
        report(
          `${target.name}: server RSS ${mib(baseline)} MiB after warm-up, ${mib(after)} MiB after 2,000 connect/disconnect cycles`,
        );
        for (const [i, bytes] of after.entries())
          expect(bytes - baseline[i]!).toBeLessThan(48 * MiB);
        expect(await upgradeStatus(server.baseUrl, { userId: uid() })).toBe(101);
      },
      120_000,
    );
  });

  describe.runIf(target.capabilities.signalDrain)(`hostile shutdown on ${target.name}`, () => {
    it('closes 200 sockets with 1012 on SIGTERM and exits 0 in time', async () => {
      const server = await target.launch({
        SHUTDOWN_TIMEOUT_MS: '5000',
        MAX_CONNECTIONS_PER_IP: '0',
      });
      try {
        const clients: TestClient[] = [];
        for (let i = 0; i < 200; i += 50)
          clients.push(
            ...(await Promise.all(
              Array.from({ length: 50 }, () => TestClient.open(server.baseUrl)),
            )),
          );
        const closes = clients.map((client) => client.closed);
        const { code, elapsedMs } = await server.kill('SIGTERM');
        const codes = (await Promise.all(closes)).map((close) => close.code);
        report(`${target.name}: SIGTERM with 200 sockets: exit ${code} after ${elapsedMs} ms`);
        expect(codes.filter((c) => c === 1012)).toHaveLength(200);
        expect(code).toBe(0);
        expect(elapsedMs).toBeLessThan(6000);
      } finally {
        await server.stop();
      }
    }, 60_000);
  });
}
