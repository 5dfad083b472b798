/**
 * What each client message does: one `case` per type of `ClientMessage` (TypeScript refuses to
 * compile until a new type has one). Replies are built by `envelope.ts`; users, rooms and the
 * pool are reached through the seams, wherever they live.
 */
import type { Envelopes } from './envelope.ts';
import { createChat, NOT_IN_ROOM } from './chat.ts';
import type { HistoryStore } from './history.ts';
import type { HubOptions } from './hub-api.ts';
import type { Matching } from './matching.ts';
import type { Metrics } from './metrics.ts';
import type { ClientMessage, RefusalCode } from './protocol.ts';
import type { Asker, Keep, MaybePromise, RoomRegistry, UserDirectory } from './seams.ts';
import type { ConnId, Session } from './session.ts';
import { iceServersFor, type TurnOptions } from './turn.ts';

const NO_TURN: TurnOptions = {
  secret: undefined,
  turnUrls: [],
  stunUrls: [],
  ttlSeconds: 0,
  staticServers: [],
};

/** What a relayed offer, answer or candidate does once delivered: nothing (one function for all). */
const NOTHING_MORE = () => {};

export interface DispatchDeps {
  readonly options: HubOptions;
  readonly envelopes: Envelopes;
  readonly metrics: Metrics;
  readonly rooms: RoomRegistry;
  readonly users: UserDirectory;
  readonly matching: Matching;
  readonly history: HistoryStore;
  /** This process's sessions by userId. */
  readonly byUser: ReadonlyMap<string, Session>;
  now(): number;
  send(conn: ConnId, text: string): void;
  /** Answers `error {code}`, with the refused request's `messageId` when it had one. */
  refuse(session: Session, code: RefusalCode, error: string, messageId?: string): void;
  joinRoom(session: Session, room: string): void;
  leaveRoom(session: Session, room: string): void;
  /** Runs `fn` once `session`'s writes to shared state are acknowledged (`hub.ts`). */
  after(session: Session, fn: () => void): void;
  endPairOf(session: Session, reason?: string): void;
  later<T>(value: MaybePromise<T>, fn: (value: T) => void, asker?: Asker): void;
}

export function createDispatch(deps: DispatchDeps): (session: Session, msg: ClientMessage) => void {
  const {
    options,
    envelopes,
    metrics,
    rooms,
    users,
    matching,
    byUser,
    send,
    refuse,
    joinRoom,
    leaveRoom,
    after,
    endPairOf,
    later,
  } = deps;
  const chat = createChat({ ...deps, relay });

  /** Delivers a user-to-user frame; an unknown recipient gets the sender `error user_not_found`. */
  function relay(
    session: Session,
    toUser: string,
    text: string,
    messageId: string | undefined,
    delivered: () => void,
    keep?: Keep,
  ) {
    const found = users.deliver(toUser, text, keep);
    // This process's directory answers at once: judged here, without the closure and the asker
    // that waiting for a shared directory's answer takes (a relayed frame is the commonest).
    if (!(found instanceof Promise)) return relayed(session, found, messageId, delivered);
    later(found, (found) => relayed(session, found, messageId, delivered), { session, messageId });
  }

  function relayed(
    session: Session,
    found: boolean,
    messageId: string | undefined,
    delivered: () => void,
  ) {
    if (found) return delivered();
    metrics.inc('aleatoria_relays_to_unknown_total');
    refuse(session, 'user_not_found', 'That user is not connected.', messageId);
  }

  return function dispatch(session: Session, msg: ClientMessage) {
    const { conn, userId } = session;
    const messageId = msg.messageId ?? undefined;
    switch (msg.type) {
      case 'chat_message':
        return msg.room != null
          ? chat.room(session, msg.room, msg.payload, messageId)
          : chat.direct(session, msg.toUser!, msg.payload, messageId);
      case 'get_recent_messages':
        return chat.recent(session, msg);
      case 'get_direct_messages':
        return chat.conversation(session, msg);
      case 'join_room':
        if (!session.rooms.has(msg.room)) {
          if (session.rooms.size >= options.maxRoomsPerConnection) {
            return refuse(
              session,
              'too_many_rooms',
              `You are already in ${options.maxRoomsPerConnection} rooms. Leave one first.`,
              messageId,
            );
          }
          joinRoom(session, msg.room);
        }
        // Once the member hears the room from every process.
        return after(session, () =>
          send(
            conn,
            envelopes.system(
              'room_joined',
              userId,
              { room: msg.room, action: 'joined' },
              messageId,
              msg.room,
            ),
          ),
        );
      case 'leave_room':
        // Idempotent, as join_room is: the spec answers room_left, and a UI waits for it.
        if (session.rooms.has(msg.room)) leaveRoom(session, msg.room);
        return send(
          conn,
          envelopes.system(
            'room_left',
            userId,
            { room: msg.room, action: 'left' },
            messageId,
            msg.room,
          ),
        );
      case 'get_room_members': {
        const room = msg.room;
        if (!session.rooms.has(room)) {
          return refuse(session, 'not_in_room', NOT_IN_ROOM, messageId);
        }
        const limit = options.presenceListLimit ?? 100;
        const asker = { session, messageId };
        return later(
          rooms.count(room),
          (count) =>
            later(
              rooms.members(room, limit),
              (members) =>
                send(
                  conn,
                  envelopes.system(
                    'room_members',
                    userId,
                    { room, members, count },
                    messageId,
                    room,
                  ),
                ),
              asker,
            ),
          asker,
        );
      }
      case 'get_rooms':
        return send(
          conn,
          envelopes.system('rooms_list', userId, { rooms: [...session.rooms] }, messageId),
        );
      case 'user_available_webrtc':
        return matching.setAvailable(session, true);
      case 'user_unavailable_webrtc':
        return matching.setAvailable(session, false);
      case 'request_random_peer':
        return matching.request(session, msg.payload?.currentPeerId || undefined, messageId);
      case 'get_ice_servers':
        void iceServersFor(options.turn ?? NO_TURN, userId, deps.now()).then((reply) => {
          // Web Crypto is asynchronous: the user may have gone (or reconnected) meanwhile.
          if (byUser.get(userId) === session)
            send(session.conn, envelopes.system('ice_servers', userId, reply, messageId));
        });
        return;
      case 'webrtc_offer':
      case 'webrtc_answer':
      case 'webrtc_candidate':
        return relay(
          session,
          msg.toUser,
          envelopes.relay(msg.type, userId, msg.toUser, msg.payload, messageId),
          messageId,
          NOTHING_MORE,
        );
      case 'hangup':
        return relay(
          session,
          msg.toUser,
          envelopes.relay(msg.type, userId, msg.toUser, msg.payload, messageId),
          messageId,
          () => {
            if (session.partner === msg.toUser) endPairOf(session);
          },
        );
      default:
        msg satisfies never;
    }
  };
}
