/**
 * Chat and its history: room and direct messages, each named by the history store (`history.ts`)
 * before it goes out and kept once delivered, and the two requests that read them back
 * (`get_recent_messages`, `get_direct_messages`).
 */
import type { Envelopes } from './envelope.ts';
import { senderCopy } from './envelope.ts';
import {
  type HistoryStore,
  ID_DIGITS,
  idAt,
  UNNAMED,
  pairConversation,
  roomConversation,
} from './history.ts';
import type { Metrics } from './metrics.ts';
import {
  DEFAULT_HISTORY_PAGE,
  type GetDirectMessages,
  type GetRecentMessages,
  type RefusalCode,
} from './protocol.ts';
import type { Asker, Keep, MaybePromise, RoomRegistry } from './seams.ts';
import type { ConnId, Session } from './session.ts';

export const NOT_IN_ROOM = 'You are not in that room. Join the room first.';

export interface ChatDeps {
  readonly envelopes: Envelopes;
  readonly metrics: Metrics;
  readonly rooms: RoomRegistry;
  readonly history: HistoryStore;
  now(): number;
  send(conn: ConnId, text: string): void;
  /** Answers `error {code}`, with the refused request's `messageId` when it had one. */
  refuse(session: Session, code: RefusalCode, error: string, messageId?: string): void;
  /**
   * Delivers `text` to `toUser` (kept in history with it, if `keep`), or tells the sender
   * `user_not_found`; `delivered` on success.
   */
  relay(
    session: Session,
    toUser: string,
    text: string,
    messageId: string | undefined,
    delivered: () => void,
    keep?: Keep,
  ): void;
  later<T>(value: MaybePromise<T>, fn: (value: T) => void, asker?: Asker): void;
}

export interface Chat {
  room(session: Session, room: string, payload: unknown, messageId: string | undefined): void;
  direct(session: Session, toUser: string, payload: unknown, messageId: string | undefined): void;
  recent(session: Session, msg: GetRecentMessages): void;
  conversation(session: Session, msg: GetDirectMessages): void;
}

/**
 * A page's upper bound: a server id as is, a time as the first id of its millisecond (none for a
 * time past what an id can name: a longer string would compare below every id).
 */
function cursor(before: string | null | undefined): string | undefined {
  if (before == null || /^\d+$/.test(before)) return before ?? undefined;
  const id = idAt(Date.parse(before));
  return id.length > ID_DIGITS ? undefined : id;
}

export function createChat(deps: ChatDeps): Chat {
  const { envelopes, metrics, rooms, history, send, refuse, later } = deps;

  return {
    room(session, room, payload, messageId) {
      if (!session.rooms.has(room)) return refuse(session, 'not_in_room', NOT_IN_ROOM, messageId);
      const conversation = roomConversation(room);
      later(
        history.nextId(conversation, deps.now()),
        (id) => {
          const text = envelopes.roomChat(session.userId, room, payload, messageId, id);
          const reached = rooms.broadcast(room, text, undefined, {
            conversation,
            message: { id, text },
          });
          metrics.inc('aleatoria_messages_out_total', 'chat_message', reached);
        },
        { session, messageId },
      );
    },
    direct(session, toUser, payload, messageId) {
      const conversation = pairConversation(session.userId, toUser);
      if (history.namesWhenKept) {
        // Named by the step that delivers and keeps it; the sender's copy once it is.
        const text = envelopes.directChat(session.userId, toUser, payload, messageId, UNNAMED);
        const keep: Keep = { conversation, message: { id: UNNAMED, text } };
        const copy = () => send(session.conn, senderCopy(keep.message.text));
        return deps.relay(session, toUser, text, messageId, copy, keep);
      }
      later(
        history.nextId(conversation, deps.now()),
        (id) => {
          const text = envelopes.directChat(session.userId, toUser, payload, messageId, id);
          deps.relay(session, toUser, text, messageId, () => send(session.conn, senderCopy(text)), {
            conversation,
            message: { id, text },
          });
        },
        { session, messageId },
      );
    },
    recent(session, msg) {
      const { userId, conn } = session;
      const room = msg.room;
      if (!session.rooms.has(room))
        return refuse(session, 'not_in_room', NOT_IN_ROOM, msg.messageId ?? undefined);
      const limit = msg.payload?.limit ?? DEFAULT_HISTORY_PAGE;
      const before = cursor(msg.payload?.before);
      const messageId = msg.messageId ?? undefined;
      later(
        history.read(roomConversation(room), before, limit, deps.now()),
        (found) =>
          send(
            conn,
            envelopes.history(
              'recent_messages',
              userId,
              { room },
              messageId,
              room,
              found.map((message) => message.text),
            ),
          ),
        { session, messageId },
      );
    },
    conversation(session, msg) {
      const { userId, conn } = session;
      const { withUser } = msg.payload;
      const limit = msg.payload.limit ?? DEFAULT_HISTORY_PAGE;
      const before = cursor(msg.payload.before);
      // Stored as its recipient got it: the requester's own messages become its sender's copies.
      const own = `{"type":"chat_message","fromUser":${JSON.stringify(userId)},`;
      const conversation = pairConversation(userId, withUser);
      const messageId = msg.messageId ?? undefined;
      later(
        history.read(conversation, before, limit, deps.now()),
        (found) => {
          const texts: string[] = [];
          for (let i = found.length - 1; i >= 0; i--) {
            const { text } = found[i]!;
            texts.push(text.startsWith(own) ? senderCopy(text) : text);
          }
          send(
            conn,
            envelopes.history('direct_messages', userId, { withUser }, messageId, undefined, texts),
          );
        },
        { session, messageId },
      );
    },
  };
}
