/**
 * Every frame the server writes, built in one place: `type` first (the outbox reads the type off
 * the text for its metrics without parsing it), `createTime` stamped by the server, and the
 * system's own messages from `fromUser: "system"` to the one they answer.
 */
import {
  type RefusalCode,
  type ResponseErrorCode,
  SYSTEM_USER,
  type ServerMessage,
} from './protocol.ts';

type Payload<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>['payload'];

/** Server messages that answer a user on the system's behalf. */
export type SystemType =
  | 'recent_messages'
  | 'direct_messages'
  | 'room_members'
  | 'room_joined'
  | 'room_left'
  | 'rooms_list'
  | 'assign_role'
  | 'no_peer_available'
  | 'ice_servers';
/** Messages relayed from one user to another as sent (signaling). */
export type RelayType = 'webrtc_offer' | 'webrtc_answer' | 'webrtc_candidate' | 'hangup';

export interface Envelopes {
  /** `createTime` for the current instant (RFC 3339, milliseconds, UTC). */
  timestamp(): string;
  system<T extends SystemType>(
    type: T,
    toUser: string,
    payload: Payload<T>,
    messageId?: string,
    room?: string,
  ): string;
  /** A well-formed request the server refused: `error {error, code}`, with the request's `messageId`. */
  refusal(toUser: string, code: RefusalCode, error: string, messageId?: string): string;
  /** A frame that did not fit the protocol: `error_response {error, details, code}`. */
  errorResponse(toUser: string, code: ResponseErrorCode, error: string, details: string): string;
  relay(
    type: RelayType,
    fromUser: string,
    toUser: string,
    payload: unknown,
    messageId: string | undefined,
  ): string;
  /** The server's own hangup on a user's behalf (the pair ended without it saying so). */
  hangup(fromUser: string, toUser: string, reason: string): string;
  /** `userId` came into or left `room`, for its other members. */
  userStatus(room: string, userId: string, status: 'online' | 'offline'): string;
  /** `userId`'s socket dropped mid-call (`reconnecting`) or is back (`online`), for its partner. */
  partnerStatus(toUser: string, userId: string, status: 'online' | 'reconnecting'): string;
  /**
   * `recent_messages` or `direct_messages`: `payload` with `messages`, the stored frames spliced in
   * as they are (never parsed and serialized again).
   */
  history<T extends 'recent_messages' | 'direct_messages'>(
    type: T,
    toUser: string,
    payload: Omit<Payload<T>, 'messages'>,
    messageId: string | undefined,
    room: string | undefined,
    messages: readonly string[],
  ): string;
  /** A room chat message with its server `id`, one text for every member, the sender included. */
  roomChat(
    fromUser: string,
    room: string,
    payload: unknown,
    messageId: string | undefined,
    id: string,
  ): string;
  /**
   * A direct chat message as the recipient gets it (`incoming:true`, the last field); the sender's
   * copy is {@link senderCopy} of the same text.
   */
  directChat(
    fromUser: string,
    toUser: string,
    payload: unknown,
    messageId: string | undefined,
    id: string,
  ): string;
}

const INCOMING_TRUE = '"incoming":true}';
const INCOMING_FALSE = '"incoming":false}';

/** The sender's copy of a {@link Envelopes.directChat} text, without serializing it again. */
export const senderCopy = (text: string) =>
  `${text.slice(0, -INCOMING_TRUE.length)}${INCOMING_FALSE}`;

const MAX_DETAILS_LENGTH = 200;
/** Where {@link Envelopes.history} splices the stored frames in: a key cannot occur inside a string. */
const NO_MESSAGES = '"messages":[]';

export function createEnvelopes(now: () => number): Envelopes {
  // Under load many messages share a millisecond: format each one once.
  let stampedAt = NaN;
  let stamp = '';
  let errorSeq = 0;
  const timestamp = () => {
    const at = now();
    if (at !== stampedAt) {
      stampedAt = at;
      stamp = new Date(at).toISOString();
    }
    return stamp;
  };
  const encode = (message: ServerMessage) => JSON.stringify(message);

  const system: Envelopes['system'] = (type, toUser, payload, messageId, room) =>
    encode({
      type,
      fromUser: SYSTEM_USER,
      toUser,
      room,
      payload,
      messageId,
      createTime: timestamp(),
    } as ServerMessage);

  return {
    timestamp,
    system,
    history(type, toUser, payload, messageId, room, messages) {
      const text = system(type, toUser, { ...payload, messages: [] } as never, messageId, room);
      const at = text.indexOf(NO_MESSAGES);
      return `${text.slice(0, at)}"messages":[${messages.join(',')}]${text.slice(at + NO_MESSAGES.length)}`;
    },
    refusal: (toUser, code, error, messageId) =>
      encode({
        type: 'error',
        fromUser: SYSTEM_USER,
        toUser,
        payload: { error, code },
        messageId,
        createTime: timestamp(),
      }),
    errorResponse(toUser, code, error, details) {
      errorSeq = (errorSeq + 1) % Number.MAX_SAFE_INTEGER;
      return encode({
        type: 'error_response',
        toUser,
        messageId: `err-${now().toString(36)}-${errorSeq.toString(36)}`,
        payload: { error, details: details.slice(0, MAX_DETAILS_LENGTH), code },
        createTime: timestamp(),
      });
    },
    // Verbatim: `null` (end of candidates, an empty hangup) stays null; an absent payload stays absent.
    relay: (type, fromUser, toUser, payload, messageId) =>
      encode({
        type,
        fromUser,
        toUser,
        payload,
        messageId,
        createTime: timestamp(),
      } as ServerMessage),
    hangup: (fromUser, toUser, reason) =>
      encode({ type: 'hangup', fromUser, toUser, payload: { reason }, createTime: timestamp() }),
    userStatus(room, userId, status) {
      const createTime = timestamp();
      const payload = { userId, status, timestamp: createTime };
      return encode({ type: 'user_status', fromUser: SYSTEM_USER, room, payload, createTime });
    },
    partnerStatus(toUser, userId, status) {
      const createTime = timestamp();
      const payload = { userId, status, timestamp: createTime };
      return encode({ type: 'user_status', fromUser: SYSTEM_USER, toUser, payload, createTime });
    },
    roomChat: (fromUser, room, payload, messageId, id) =>
      encode({
        type: 'chat_message',
        fromUser,
        room,
        payload,
        messageId,
        createTime: timestamp(),
        id,
      } as ServerMessage),
    directChat: (fromUser, toUser, payload, messageId, id) =>
      encode({
        type: 'chat_message',
        fromUser,
        toUser,
        payload,
        messageId,
        createTime: timestamp(),
        id,
        incoming: true,
      } as ServerMessage),
  };
}
