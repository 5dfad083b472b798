/**
 * The server's chat history as the SDK asks for it: `get_recent_messages` (a room's last messages,
 * newest first) and `get_direct_messages` (this user's conversation with another, oldest first),
 * each answer matched to its request by `messageId`. Every chat message the server delivers
 * carries an `id`: 16 digits, so the ids of one room or one pair compare as strings in the order
 * they were delivered (`docs/protocol.md`). `catch-up.ts` builds on these.
 */
import type { ServerMessage } from '../core/protocol.ts';
import type { Requests } from './requests.ts';

/** A chat message as the server delivers it (and as its history hands it back). */
export type ChatMessage = Extract<ServerMessage, { type: 'chat_message' }>;

/** A room, or the direct conversation with one user. */
export type Conversation = { room: string } | { withUser: string };

/** One page of history: at most `limit` (1-100, the server's default 50) messages before `before`. */
export interface HistoryPageOptions {
  limit?: number;
  /** A message `id`, or an RFC 3339 time: only older messages. */
  before?: string;
  /** How long to wait for the answer (default: the client's history `timeoutMs`). */
  timeoutMs?: number;
}

/** Messages the SDK could not recover: some between `afterId` (or `since`) and `beforeId` may be lost. */
export interface HistoryGap {
  /** The conversation: its room, or the other user of a direct conversation. */
  room?: string;
  withUser?: string;
  /** The last message delivered before the gap; absent when none had been (then `since` is set). */
  afterId?: string;
  /** The server time from which the conversation was followed, when no message had been delivered. */
  since?: string;
  /** The first message delivered after the gap; absent when none followed it. */
  beforeId?: string;
  /**
   * `history_incomplete`: the server's history does not reach back that far (trimmed to
   * `HISTORY_LIMIT`, expired, or `HISTORY=off`). `request_failed`: no answer came in time.
   */
  reason: 'history_incomplete' | 'request_failed';
}

/** Tuning of the history; every field has a default. */
export interface HistoryOptions {
  /** Fetch what was missed after each reconnect (default `true`). */
  catchUp?: boolean;
  /** Messages asked for per request while catching up (default 100, the server's maximum). */
  pageSize?: number;
  /** Requests per conversation and catch-up; past them the rest is reported as a gap (default 50). */
  maxPages?: number;
  /** How long to wait for each history answer, in ms (default 10000). */
  timeoutMs?: number;
  /** Direct conversations followed at most, the least recently active forgotten first (default 50). */
  maxPartners?: number;
}

/** The most messages the server returns per request (`docs/protocol.md`). */
export const MAX_PAGE = 100;

/** Orders chat messages by server id, oldest first (every message passed has an id). */
export const byId = (a: ChatMessage, b: ChatMessage) =>
  a.id! < b.id! ? -1 : a.id! > b.id! ? 1 : 0;

export interface HistoryRequests {
  getRecentMessages(room: string, page?: HistoryPageOptions): Promise<ChatMessage[]>;
  getDirectMessages(withUser: string, page?: HistoryPageOptions): Promise<ChatMessage[]>;
  /**
   * One page before `before`, newest first whatever the conversation, messages without an id
   * left out; `count` is how many the server sent, `createTime` when it answered.
   */
  fetchPage(
    target: Conversation,
    before: string | undefined,
    limit: number,
  ): Promise<{ messages: ChatMessage[]; count: number; createTime: string }>;
}

/** History requests over `requests`; their answers go to the promises only (`consume`). */
export function createHistoryRequests(requests: Requests, timeoutMs: number): HistoryRequests {
  const recent = (room: string, page: HistoryPageOptions) =>
    requests.request(
      (messageId) => ({
        type: 'get_recent_messages',
        room,
        payload: { limit: page.limit, before: page.before },
        messageId,
      }),
      'recent_messages',
      { timeoutMs: page.timeoutMs ?? timeoutMs, consume: true },
    );
  const direct = (withUser: string, page: HistoryPageOptions) =>
    requests.request(
      (messageId) => ({
        type: 'get_direct_messages',
        payload: { withUser, limit: page.limit, before: page.before },
        messageId,
      }),
      'direct_messages',
      { timeoutMs: page.timeoutMs ?? timeoutMs, consume: true },
    );
  return {
    getRecentMessages: (room, page = {}) =>
      recent(room, page).then((reply) => reply.payload.messages),
    getDirectMessages: (withUser, page = {}) =>
      direct(withUser, page).then((reply) => reply.payload.messages),
    async fetchPage(target, before, limit) {
      const reply =
        'room' in target
          ? await recent(target.room, { limit, before })
          : await direct(target.withUser, { limit, before });
      const messages = reply.payload.messages.filter((m) => m.id !== undefined).sort(byId);
      return {
        messages: messages.reverse(),
        count: reply.payload.messages.length,
        createTime: reply.createTime,
      };
    },
  };
}
