/**
 * `room`: R rooms of S members each (`join_room`, answered `room_joined`); all members together
 * send room `chat_message`s at a fixed offered rate, round-robin so each sends rate / (R x S) per
 * second. Every member receives every message of its room, its own included, as our hub and the
 * baseline both broadcast. Reports deliveries/s and send -> member latency over all deliveries.
 * Args: --rooms R --members S --rate MSGS_PER_S --tick MS --ms DURATION
 */
import type { WebSocket } from 'ws';
import { intArg, openAll, openLoop, run } from './common.ts';

export function joinRoom(ws: WebSocket, room: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no room_joined for ${room}`)), 10_000);
    const onMessage = (data: Buffer) => {
      if (!data.includes('"room_joined"')) return;
      clearTimeout(timer);
      ws.off('message', onMessage);
      resolve();
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify({ type: 'join_room', room }));
  });
}

export async function room() {
  const rooms = intArg('rooms', 10, 1, 1000);
  const size = intArg('members', 50, 1, 1000);
  const perSecond = intArg('rate', 1000, 1, 100_000);
  if (rooms * size > 20_000) throw new Error('room: at most 20,000 members in all');
  const ids = Array.from({ length: rooms * size }, (_, i) => `m${run}${i}`);
  const members = (await openAll(ids)).map((ws, i) => ({ ws, room: `bench-${run}-${i % rooms}` }));
  for (let i = 0; i < members.length; i += 100)
    await Promise.all(members.slice(i, i + 100).map((m) => joinRoom(m.ws, m.room)));

  const result = await roomChatLoop(members, perSecond);
  return { ...result, expectedPerS: perSecond * size };
}

/**
 * Room messages at `perSecond`, open loop, each member in turn sending to its room; resolves with
 * the latency and rate `openLoop` measured over every member's deliveries.
 */
export function roomChatLoop(
  members: readonly { ws: WebSocket; room: string }[],
  perSecond: number,
) {
  let next = 0;
  let seq = 0;
  return openLoop(
    members.map((m) => m.ws),
    perSecond,
    () => {
      const member = members[next]!;
      next = (next + 1) % members.length;
      member.ws.send(
        JSON.stringify({
          type: 'chat_message',
          room: member.room,
          messageId: `${performance.now()}`,
          payload: { content: `hello ${seq++}` },
        }),
      );
    },
  );
}
