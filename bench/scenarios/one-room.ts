/**
 * `one-room`: ONE room of S members placed evenly over the G gateways of a sharded Cloudflare
 * deployment (member k's userId is drawn so that `shardOf(userId, G)` is k mod G, and the
 * `x-aleatoria-gateway` header of its 101 says where it landed), all sending room `chat_message`s
 * at a fixed offered rate, round-robin. Every member receives every message, its own included, so
 * the expected deliveries are rate x S per second. What it loads is the room's one object: each
 * message is one `nextId` and one `broadcast` to it, then one `roomDeliver` per other gateway
 * with members (docs/cloudflare.md). bench/workerd-ceilings.ts steps the offered rate up.
 * Against a server without gateways (no header) the placement reads `none`.
 * Args: --members S --gateways G --rate MSGS_PER_S --tick MS --ms DURATION
 */
import { WebSocket } from 'ws';
import { shardOf } from '../../src/core/shard.ts';
import { intArg, run, urls } from './common.ts';
import { joinRoom, roomChatLoop } from './room.ts';

/** Opens `userId`'s socket and reads which gateway took it (the 101's `x-aleatoria-gateway`). */
function openOn(userId: string): Promise<{ ws: WebSocket; gateway: string }> {
  const ws = new WebSocket(`${urls[0]}?userId=${encodeURIComponent(userId)}`, {
    headers: { origin: 'https://www.aleatoria.chat' },
    perMessageDeflate: false,
    handshakeTimeout: 10_000,
  });
  let gateway = 'none';
  ws.once('upgrade', (response) => {
    const header = response.headers['x-aleatoria-gateway'];
    if (typeof header === 'string') gateway = header;
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, gateway }));
    ws.once('error', reject);
  });
}

/** `count` userIds, the k-th on gateway k mod `gateways` by the Worker's own hash. */
function placedIds(count: number, gateways: number): string[] {
  const ids: string[] = [];
  for (let n = 0; ids.length < count && n < count * gateways * 100; n++) {
    const id = `o${run}-${n}`;
    if (shardOf(id, gateways) === ids.length % gateways) ids.push(id);
  }
  if (ids.length < count) throw new Error('one-room: could not place the members');
  return ids;
}

export async function oneRoom() {
  const size = intArg('members', 50, 1, 2000);
  const gateways = intArg('gateways', 4, 1, 64);
  const perSecond = intArg('rate', 1000, 1, 100_000);
  const room = `ceiling-${run}`;
  const ids = placedIds(size, gateways);
  const members: Array<{ ws: WebSocket; gateway: string }> = [];
  for (let i = 0; i < ids.length; i += 50)
    members.push(...(await Promise.all(ids.slice(i, i + 50).map(openOn))));
  const placement: Record<string, number> = {};
  let misplaced = 0;
  for (const [k, { gateway }] of members.entries()) {
    placement[gateway] = (placement[gateway] ?? 0) + 1;
    if (gateway !== 'none' && gateway !== `gateway-${k % gateways}`) misplaced++;
  }
  for (let i = 0; i < members.length; i += 50)
    await Promise.all(members.slice(i, i + 50).map((m) => joinRoom(m.ws, room)));

  const result = await roomChatLoop(
    members.map((m) => ({ ws: m.ws, room })),
    perSecond,
  );
  return { ...result, members: size, expectedPerS: perSecond * size, placement, misplaced };
}
