/**
 * The baseline for `npm run bench`: the protocol subset the benchmark exercises, on raw `ws` with
 * no framework and no validation beyond JSON.parse, as lean as it can be written:
 *   - DMs with the sender copy, and the signaling relay (`webrtc_*`, `hangup`) to `toUser`;
 *   - rooms: every socket joins `?room=` (default `Lobby`) as ours does; `join_room` answers
 *     `room_joined`; a room `chat_message` from a member is serialized once and sent to every
 *     member, the sender included (src/core/hub.ts does the same);
 *   - matching: `user_available_webrtc` enters a pool (array + index, O(1) like src/core/pool.ts),
 *     `request_random_peer` picks a uniformly random other available user, takes both out of the
 *     pool, sends `assign_role` to both (requester impolite with its messageId, partner polite),
 *     else `no_peer_available`; pairs are remembered so a `hangup` ends them, a new match tells the
 *     old partner (`peer_left`) and a disconnect tells the partner (`peer_disconnected`).
 * Messages carry the same fields as ours (fromUser, toUser, createTime...), so both do comparable
 * work. Same start-up line as the real server, so the same launcher runs it.
 */
import { WebSocketServer, type WebSocket } from 'ws';

const port = Number(process.env.PORT ?? 8090);
const host = process.env.HOST ?? '127.0.0.1';
const SYSTEM = 'system';

interface Client {
  id: string;
  ws: WebSocket;
  rooms: Set<string>;
  partner: string | undefined;
}
interface Incoming {
  type?: string;
  toUser?: string;
  room?: string;
  messageId?: string;
  payload?: { currentPeerId?: string } & Record<string, unknown>;
  fromUser?: string;
  createTime?: string;
  incoming?: boolean;
}

const byId = new Map<string, Client>();
const rooms = new Map<string, Set<Client>>();
const pool: string[] = [];
const poolIndex = new Map<string, number>();

function poolAdd(id: string) {
  if (poolIndex.has(id)) return;
  poolIndex.set(id, pool.length);
  pool.push(id);
}
function poolDelete(id: string) {
  const at = poolIndex.get(id);
  if (at === undefined) return;
  const last = pool.pop()!;
  poolIndex.delete(id);
  if (at < pool.length) {
    pool[at] = last;
    poolIndex.set(last, at);
  }
}
/** A uniformly random pool member other than `a` and `b`: draw a rank, step over excluded slots. */
function poolPick(a: string, b: string | undefined): string | undefined {
  const skipped = [poolIndex.get(a), b === undefined || b === a ? undefined : poolIndex.get(b)]
    .filter((x): x is number => x !== undefined)
    .sort((x, y) => x - y);
  const eligible = pool.length - skipped.length;
  if (eligible <= 0) return undefined;
  let at = Math.floor(Math.random() * eligible);
  for (const position of skipped) if (at >= position) at++;
  return pool[at];
}

function join(client: Client, room: string) {
  let members = rooms.get(room);
  if (!members) rooms.set(room, (members = new Set()));
  members.add(client);
  client.rooms.add(room);
}

/** Ends `client`'s pair; the partner hears `hangup` with `reason` when one is given. */
function unpair(client: Client, reason?: string) {
  const partner = client.partner === undefined ? undefined : byId.get(client.partner);
  client.partner = undefined;
  if (!partner || partner.partner !== client.id) return;
  partner.partner = undefined;
  if (reason)
    partner.ws.send(
      JSON.stringify({
        type: 'hangup',
        fromUser: client.id,
        toUser: partner.id,
        payload: { reason },
        createTime: new Date().toISOString(),
      }),
    );
}

function requestRandomPeer(client: Client, msg: Incoming) {
  const chosen = poolPick(client.id, msg.payload?.currentPeerId || undefined);
  const partner = chosen === undefined ? undefined : byId.get(chosen);
  const createTime = new Date().toISOString();
  if (!partner) {
    client.ws.send(
      JSON.stringify({
        type: 'no_peer_available',
        fromUser: SYSTEM,
        toUser: client.id,
        payload: { message: 'No peer available at the moment. Please try again later.' },
        messageId: msg.messageId,
        createTime,
      }),
    );
    return;
  }
  poolDelete(client.id);
  poolDelete(partner.id);
  if (client.partner !== partner.id) {
    unpair(client, 'peer_left');
    unpair(partner, 'peer_left');
  }
  client.partner = partner.id;
  partner.partner = client.id;
  client.ws.send(
    JSON.stringify({
      type: 'assign_role',
      fromUser: SYSTEM,
      toUser: client.id,
      payload: { role: 'impolite', peerId: partner.id },
      messageId: msg.messageId,
      createTime,
    }),
  );
  partner.ws.send(
    JSON.stringify({
      type: 'assign_role',
      fromUser: SYSTEM,
      toUser: partner.id,
      payload: { role: 'polite', peerId: client.id },
      createTime,
    }),
  );
}

function handle(client: Client, msg: Incoming) {
  switch (msg.type) {
    case 'join_room': {
      if (typeof msg.room !== 'string') return;
      join(client, msg.room);
      client.ws.send(
        JSON.stringify({
          type: 'room_joined',
          fromUser: SYSTEM,
          toUser: client.id,
          room: msg.room,
          payload: { room: msg.room, action: 'joined' },
          messageId: msg.messageId,
          createTime: new Date().toISOString(),
        }),
      );
      return;
    }
    case 'user_available_webrtc':
      poolAdd(client.id);
      return;
    case 'user_unavailable_webrtc':
      poolDelete(client.id);
      return;
    case 'request_random_peer':
      requestRandomPeer(client, msg);
      return;
    case 'chat_message':
      if (msg.room != null) {
        const members = rooms.get(msg.room);
        if (!members || !client.rooms.has(msg.room)) return;
        // Once per broadcast, the sender included.
        const text = JSON.stringify({
          type: 'chat_message',
          fromUser: client.id,
          room: msg.room,
          payload: msg.payload,
          messageId: msg.messageId,
          createTime: new Date().toISOString(),
        });
        for (const member of members) member.ws.send(text);
        return;
      }
      break;
    case 'hangup':
      if (msg.toUser !== undefined && client.partner === msg.toUser) unpair(client);
      break;
  }
  // Direct messages and the signaling relay.
  const to = msg.toUser === undefined ? undefined : byId.get(msg.toUser);
  if (!to) return;
  msg.fromUser = client.id;
  msg.createTime = new Date().toISOString();
  if (msg.type === 'chat_message') {
    msg.incoming = true;
    to.ws.send(JSON.stringify(msg));
    msg.incoming = false;
    client.ws.send(JSON.stringify(msg));
  } else {
    to.ws.send(JSON.stringify(msg));
  }
}

const wss = new WebSocketServer({ port, host, maxPayload: 65536, perMessageDeflate: false });
wss.on('connection', (ws, request) => {
  const query = new URL(request.url ?? '/', 'http://x').searchParams;
  const client: Client = {
    id: query.get('userId') ?? '',
    ws,
    rooms: new Set(),
    partner: undefined,
  };
  byId.set(client.id, client);
  join(client, query.get('room') ?? 'Lobby');
  ws.on('close', () => {
    if (byId.get(client.id) !== client) return;
    byId.delete(client.id);
    for (const room of client.rooms) {
      const members = rooms.get(room)!;
      members.delete(client);
      if (members.size === 0) rooms.delete(room);
    }
    poolDelete(client.id);
    unpair(client, 'peer_disconnected');
  });
  ws.on('message', (data) => {
    let msg: Incoming;
    try {
      msg = JSON.parse(data.toString());
    } catch {
      return;
    }
    if (msg !== null && typeof msg === 'object') handle(client, msg);
  });
});
wss.on('listening', () => {
  const address = wss.address();
  console.log(
    `HTTP server started on :${address !== null && typeof address === 'object' ? address.port : port}`,
  );
});
process.on('SIGTERM', () => process.exit(0));
