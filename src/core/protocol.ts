/**
 * The wire protocol (`docs/protocol.md`: the original Go server's, with our decisions where it is
 * silent), defined once as valibot schemas. Client frames are parsed with {@link ClientMessage}; everything the server sends is
 * typed by {@link ServerMessage}. Every string is bounded here, so the hub never sees an
 * unbounded value.
 */
import * as v from 'valibot';
import { exceedsUtf8Bytes } from './frame.ts';

export {
  RefusalCode,
  ResponseErrorCode,
  SYSTEM_USER,
  ServerMessage,
} from './server-messages.ts';

/** Longest userId / peer id (DECISIONS.md: 1-128 characters). */
export const MAX_USER_ID_LENGTH = 128;
/** Longest room name (DECISIONS.md: 1-64 characters). */
export const MAX_ROOM_LENGTH = 64;
/** Longest chat content, in Unicode code points (DECISIONS.md: 1-4096 characters). */
export const MAX_CONTENT_CHARS = 4096;
/** Longest client messageId, and the reconnect token. */
export const MAX_MESSAGE_ID_LENGTH = 128;
export const MAX_TOKEN_LENGTH = 256;
/** SDP and ICE strings are bounded by the frame limit too; these keep each field sane on its own. */
export const MAX_SDP_BYTES = 60_000;
export const MAX_CANDIDATE_LENGTH = 2048;
/** A `hangup` payload may be any JSON value up to this size (DECISIONS.md). */
export const MAX_HANGUP_PAYLOAD_BYTES = 1024;

/** The room every connection joins when `?room=` is absent. */
export const DEFAULT_ROOM = 'Lobby';

// C0 controls, DEL and C1 controls: never part of an id or a room name.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

function countCodePoints(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    // A high surrogate followed by a low one is one character.
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    count++;
  }
  return count;
}

const noControlChars = v.check<string, string>(
  (text) => !CONTROL_CHARS.test(text),
  'must not contain control characters',
);

/** A user id as it appears in `?userId=`, `toUser`, `currentPeerId`. */
export const UserId = v.pipe(
  v.string(),
  v.minLength(1),
  v.maxLength(MAX_USER_ID_LENGTH),
  noControlChars,
);
export type UserId = v.InferOutput<typeof UserId>;

/** A room name, in `?room=` and in `room` fields. */
export const RoomName = v.pipe(
  v.string(),
  v.minLength(1),
  v.maxLength(MAX_ROOM_LENGTH),
  noControlChars,
);
export type RoomName = v.InferOutput<typeof RoomName>;

/** The secret a client picks at its first connect to take its own session over later. */
export const ReconnectToken = v.pipe(
  v.string(),
  v.minLength(1),
  v.maxLength(MAX_TOKEN_LENGTH),
  noControlChars,
);

export const ChatContent = v.pipe(
  v.string(),
  v.minLength(1),
  v.check(
    (text) => countCodePoints(text) <= MAX_CONTENT_CHARS,
    `at most ${MAX_CONTENT_CHARS} characters`,
  ),
);

// Go decoded a JSON null into a field's zero value, so old clients may send null for "absent".
const optionalField = <T extends v.GenericSchema>(schema: T) => v.nullish(schema);

/**
 * Fields every client message may carry. `fromUser`, `createTime` and `incoming` are accepted
 * (a Go client may echo them back) but never trusted: the server overwrites or drops them.
 */
const envelope = {
  fromUser: optionalField(v.pipe(v.string(), v.maxLength(MAX_USER_ID_LENGTH))),
  messageId: optionalField(v.pipe(v.string(), v.maxLength(MAX_MESSAGE_ID_LENGTH))),
  createTime: optionalField(v.pipe(v.string(), v.maxLength(64))),
  incoming: optionalField(v.boolean()),
} as const;

/** A payload that the server ignores: any object, or absent. */
const IgnoredPayload = optionalField(v.looseObject({}));

export const ChatMessage = v.pipe(
  v.object({
    type: v.literal('chat_message'),
    ...envelope,
    room: optionalField(RoomName),
    toUser: optionalField(UserId),
    // Extra payload fields are kept and relayed (DECISIONS.md: additions are backward compatible).
    payload: v.looseObject({ content: ChatContent }),
  }),
  v.check(
    (msg) => (msg.room == null) !== (msg.toUser == null),
    'exactly one of room or toUser is required',
  ),
);
export type ChatMessage = v.InferOutput<typeof ChatMessage>;

export const JoinRoom = v.object({
  type: v.literal('join_room'),
  ...envelope,
  room: RoomName,
  payload: IgnoredPayload,
});
export type JoinRoom = v.InferOutput<typeof JoinRoom>;

export const LeaveRoom = v.object({
  type: v.literal('leave_room'),
  ...envelope,
  room: RoomName,
  payload: IgnoredPayload,
});
export type LeaveRoom = v.InferOutput<typeof LeaveRoom>;

export const GetRooms = v.object({
  type: v.literal('get_rooms'),
  ...envelope,
  payload: IgnoredPayload,
});
export type GetRooms = v.InferOutput<typeof GetRooms>;

export const UserAvailable = v.object({
  type: v.literal('user_available_webrtc'),
  ...envelope,
  payload: IgnoredPayload,
});
export type UserAvailable = v.InferOutput<typeof UserAvailable>;

export const UserUnavailable = v.object({
  type: v.literal('user_unavailable_webrtc'),
  ...envelope,
  payload: IgnoredPayload,
});
export type UserUnavailable = v.InferOutput<typeof UserUnavailable>;

export const RequestRandomPeer = v.object({
  type: v.literal('request_random_peer'),
  ...envelope,
  payload: optionalField(
    v.looseObject({ currentPeerId: optionalField(v.union([UserId, v.literal('')])) }),
  ),
});
export type RequestRandomPeer = v.InferOutput<typeof RequestRandomPeer>;

const SessionDescription = v.looseObject({
  type: optionalField(v.picklist(['offer', 'answer', 'pranswer', 'rollback'])),
  sdp: v.pipe(v.string(), v.maxBytes(MAX_SDP_BYTES)),
});

export const WebRtcOffer = v.object({
  type: v.literal('webrtc_offer'),
  ...envelope,
  toUser: UserId,
  payload: SessionDescription,
});
export type WebRtcOffer = v.InferOutput<typeof WebRtcOffer>;

export const WebRtcAnswer = v.object({
  type: v.literal('webrtc_answer'),
  ...envelope,
  toUser: UserId,
  payload: SessionDescription,
});
export type WebRtcAnswer = v.InferOutput<typeof WebRtcAnswer>;

const CandidateString = v.pipe(v.string(), v.maxLength(MAX_CANDIDATE_LENGTH));
const SdpMid = optionalField(v.pipe(v.string(), v.maxLength(256)));
const SdpMLineIndex = optionalField(
  v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535)),
);
const UsernameFragment = optionalField(v.pipe(v.string(), v.maxLength(256)));

/** An `RTCIceCandidateInit`, as `candidate.toJSON()` gives it. */
const IceCandidateInit = v.looseObject({
  candidate: optionalField(CandidateString),
  sdpMid: SdpMid,
  sdpMLineIndex: SdpMLineIndex,
  usernameFragment: UsernameFragment,
});

export const WebRtcCandidate = v.object({
  type: v.literal('webrtc_candidate'),
  ...envelope,
  toUser: UserId,
  // `payload: null` is what `send({..., payload: e.candidate})` gives at the end of gathering.
  payload: v.nullable(
    v.looseObject({
      // The spec's `interface{}`: clients send the init object, the bare string, or null/"" at end-of-candidates.
      // The init object first: it is what browsers send, and a union stops at the first match.
      candidate: v.nullish(v.union([IceCandidateInit, CandidateString])),
      sdpMid: SdpMid,
      sdpMLineIndex: SdpMLineIndex,
      usernameFragment: UsernameFragment,
    }),
  ),
});
export type WebRtcCandidate = v.InferOutput<typeof WebRtcCandidate>;

/** The most characters a number takes in JSON (`-0.0000012345678901234567`); NaN is `null`. */
const MAX_NUMBER_JSON_LENGTH = 25;

/**
 * An upper bound of the UTF-8 bytes `JSON.stringify(value)` takes, added up without building the
 * text, for the values `JSON.parse` makes (null, booleans, numbers, strings, arrays and plain
 * objects); Infinity for anything else (`toJSON`, a class instance, undefined, a function, a
 * bigint...) and as soon as the bound passes `budget`. Each string counts 6 bytes a UTF-16 unit
 * (a `\uXXXX` escape; no character takes more) plus its quotes, each member or item its comma.
 */
function jsonBytesAtMost(value: unknown, budget: number): number {
  switch (typeof value) {
    case 'string':
      return 2 + 6 * value.length;
    case 'number':
      return MAX_NUMBER_JSON_LENGTH;
    case 'boolean':
      return 5;
    case 'object': {
      if (value === null) return 4;
      if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return Infinity;
      // `[]` or `{}`, then each item or member, its comma included. Every level takes bytes of
      // the budget, so a deep value (or a cycle) ends the walk long before the stack would.
      let bytes = 2;
      if (bytes > budget) return Infinity;
      if (Array.isArray(value)) {
        for (const item of value) {
          bytes += 1 + jsonBytesAtMost(item, budget - bytes - 1);
          if (bytes > budget) return Infinity;
        }
        return bytes;
      }
      const prototype = Object.getPrototypeOf(value);
      if (prototype !== Object.prototype && prototype !== null) return Infinity;
      // Inherited keys too, though JSON.stringify writes own keys only: a bound may count more.
      for (const key in value) {
        const member = (value as Record<string, unknown>)[key];
        bytes += 1 + (2 + 6 * key.length) + 1 + jsonBytesAtMost(member, budget - bytes - 1);
        if (bytes > budget) return Infinity;
      }
      return bytes;
    }
    default:
      return Infinity;
  }
}

/**
 * The `hangup` payload rule: at most {@link MAX_HANGUP_PAYLOAD_BYTES} of JSON. Every hangup of a
 * call comes through here, and nearly all are a short reason: those are accepted on an upper
 * bound of their size, without serializing them only to measure the text. Whatever the bound
 * does not settle is measured on `JSON.stringify`'s own output, as it always was, so the verdict
 * (and what throws: a bigint, a cycle) is the same either way.
 */
function hangupPayloadFits(value: unknown): boolean {
  return (
    jsonBytesAtMost(value, MAX_HANGUP_PAYLOAD_BYTES) <= MAX_HANGUP_PAYLOAD_BYTES ||
    !exceedsUtf8Bytes(JSON.stringify(value), MAX_HANGUP_PAYLOAD_BYTES)
  );
}

export const Hangup = v.object({
  type: v.literal('hangup'),
  ...envelope,
  toUser: UserId,
  // Any JSON (object, string, null...): clients of the original send a bare reason string too.
  payload: v.optional(
    v.custom<unknown>(hangupPayloadFits, `at most ${MAX_HANGUP_PAYLOAD_BYTES} bytes of JSON`),
  ),
});
export type Hangup = v.InferOutput<typeof Hangup>;

/** Asks for STUN/TURN servers (with fresh TURN credentials); answered by `ice_servers`. */
export const GetIceServers = v.object({
  type: v.literal('get_ice_servers'),
  ...envelope,
  payload: IgnoredPayload,
});
export type GetIceServers = v.InferOutput<typeof GetIceServers>;

/** Asks who is in a room the sender is in; answered by `room_members`. */
export const GetRoomMembers = v.object({
  type: v.literal('get_room_members'),
  ...envelope,
  room: RoomName,
  payload: IgnoredPayload,
});
export type GetRoomMembers = v.InferOutput<typeof GetRoomMembers>;

/** Most messages one history request returns (DECISIONS.md: 1-100, default 50). */
export const MAX_HISTORY_PAGE = 100;
export const DEFAULT_HISTORY_PAGE = 50;

/** RFC 3339 with a zone, as `createTime` is written: `2026-12-03T04:05:06.789Z`. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;

/** Where a page of history ends: a message's server id, or a time. */
const HistoryCursor = v.union([
  v.pipe(v.string(), v.regex(/^\d{16}$/)),
  v.pipe(
    v.string(),
    v.regex(RFC3339),
    v.check((text) => !Number.isNaN(Date.parse(text)), 'must be a valid time'),
  ),
]);

const historyPage = {
  limit: optionalField(
    v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(MAX_HISTORY_PAGE)),
  ),
  before: optionalField(HistoryCursor),
} as const;

/** Asks for a room's last chat messages, newest first; answered by `recent_messages`. */
export const GetRecentMessages = v.object({
  type: v.literal('get_recent_messages'),
  ...envelope,
  room: RoomName,
  payload: optionalField(v.looseObject(historyPage)),
});
export type GetRecentMessages = v.InferOutput<typeof GetRecentMessages>;

/** Asks for the sender's conversation with `withUser`, oldest first; answered by `direct_messages`. */
export const GetDirectMessages = v.object({
  type: v.literal('get_direct_messages'),
  ...envelope,
  payload: v.looseObject({ withUser: UserId, ...historyPage }),
});
export type GetDirectMessages = v.InferOutput<typeof GetDirectMessages>;

/** Every message a client may send, discriminated by `type`. */
export const ClientMessage = v.variant('type', [
  ChatMessage,
  JoinRoom,
  LeaveRoom,
  GetRooms,
  UserAvailable,
  UserUnavailable,
  RequestRandomPeer,
  WebRtcOffer,
  WebRtcAnswer,
  WebRtcCandidate,
  Hangup,
  GetIceServers,
  GetRoomMembers,
  GetRecentMessages,
  GetDirectMessages,
]);
export type ClientMessage = v.InferOutput<typeof ClientMessage>;

/**
 * Each client message's schema by its `type`: validating with the one that applies gives the same
 * result as `ClientMessage`, without trying every option's discriminator first.
 */
export const CLIENT_MESSAGE_SCHEMAS: ReadonlyMap<string, (typeof ClientMessage.options)[number]> =
  new Map(
    ClientMessage.options.map((option) => [
      ('pipe' in option ? option.pipe[0] : option).entries.type.literal,
      option,
    ]),
  );
