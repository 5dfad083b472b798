/**
 * What the server sends, as valibot schemas: the error codes and every server message. Used to
 * type the hub's output, to publish `/protocol.json` and to check frames in tests.
 */
import * as v from 'valibot';

/** `fromUser` of messages that originate from the server itself. */
export const SYSTEM_USER = 'system';

/** Machine codes of `error_response` (the frame itself was bad). */
export const ResponseErrorCode = v.picklist([
  'invalid_json',
  'invalid_message',
  'unknown_type',
  'binary_not_supported',
]);
export type ResponseErrorCode = v.InferOutput<typeof ResponseErrorCode>;

/** Machine codes of `error` (a well-formed request the server refused). */
export const RefusalCode = v.picklist([
  'not_in_room',
  'user_not_found',
  'too_many_rooms',
  'rate_limited',
  'replaced',
  'user_id_taken',
  'unavailable',
]);
export type RefusalCode = v.InferOutput<typeof RefusalCode>;

const serverEnvelope = {
  fromUser: v.optional(v.string()),
  toUser: v.optional(v.string()),
  room: v.optional(v.string()),
  messageId: v.optional(v.string()),
  createTime: v.string(),
} as const;

/** A chat message as delivered, and as history hands it back. */
const ServerChatMessage = v.object({
  type: v.literal('chat_message'),
  ...serverEnvelope,
  /** The server's id (`history.ts`): orders the messages of a room or a pair. */
  id: v.optional(v.pipe(v.string(), v.regex(/^\d{16}$/))),
  payload: v.looseObject({ content: v.string() }),
  incoming: v.optional(v.boolean()),
});

const RoomAction = (action: 'joined' | 'left') =>
  v.object({ room: v.string(), action: v.literal(action) });

/** Every message the server sends. Used to type the hub's output and to check it in tests. */
export const ServerMessage = v.variant('type', [
  ServerChatMessage,
  v.object({
    type: v.literal('recent_messages'),
    ...serverEnvelope,
    payload: v.object({ room: v.string(), messages: v.array(ServerChatMessage) }),
  }),
  v.object({
    type: v.literal('direct_messages'),
    ...serverEnvelope,
    payload: v.object({ withUser: v.string(), messages: v.array(ServerChatMessage) }),
  }),
  v.object({ type: v.literal('room_joined'), ...serverEnvelope, payload: RoomAction('joined') }),
  v.object({ type: v.literal('room_left'), ...serverEnvelope, payload: RoomAction('left') }),
  v.object({
    type: v.literal('rooms_list'),
    ...serverEnvelope,
    payload: v.object({ rooms: v.array(v.string()) }),
  }),
  v.object({
    type: v.literal('assign_role'),
    ...serverEnvelope,
    payload: v.object({ role: v.picklist(['polite', 'impolite']), peerId: v.string() }),
  }),
  v.object({
    type: v.literal('no_peer_available'),
    ...serverEnvelope,
    payload: v.object({ message: v.string() }),
  }),
  v.object({
    type: v.literal('room_members'),
    ...serverEnvelope,
    payload: v.object({ room: v.string(), members: v.array(v.string()), count: v.number() }),
  }),
  v.object({
    type: v.literal('user_status'),
    ...serverEnvelope,
    payload: v.object({
      userId: v.string(),
      status: v.picklist(['online', 'offline', 'reconnecting']),
      timestamp: v.string(),
    }),
  }),
  v.object({
    type: v.literal('ice_servers'),
    ...serverEnvelope,
    payload: v.object({
      iceServers: v.array(
        v.object({
          urls: v.union([v.string(), v.array(v.string())]),
          username: v.optional(v.string()),
          credential: v.optional(v.string()),
        }),
      ),
      ttl: v.number(),
    }),
  }),
  v.object({
    type: v.literal('webrtc_offer'),
    ...serverEnvelope,
    payload: v.looseObject({ sdp: v.string() }),
  }),
  v.object({
    type: v.literal('webrtc_answer'),
    ...serverEnvelope,
    payload: v.looseObject({ sdp: v.string() }),
  }),
  v.object({
    type: v.literal('webrtc_candidate'),
    ...serverEnvelope,
    payload: v.nullable(v.looseObject({ candidate: v.unknown() })),
  }),
  v.object({ type: v.literal('hangup'), ...serverEnvelope, payload: v.optional(v.unknown()) }),
  v.object({
    type: v.literal('error_response'),
    ...serverEnvelope,
    messageId: v.pipe(v.string(), v.startsWith('err-')),
    payload: v.object({ error: v.string(), details: v.string(), code: ResponseErrorCode }),
  }),
  v.object({
    type: v.literal('error'),
    ...serverEnvelope,
    fromUser: v.literal(SYSTEM_USER),
    payload: v.object({ error: v.string(), code: RefusalCode }),
  }),
]);
export type ServerMessage = v.InferOutput<typeof ServerMessage>;
