/**
 * Catching up on chat: every chat message reaches the app's `chat_message` handlers once, in the
 * order of its server `id`, across reconnects.
 *
 * A conversation is a room or the exchange with one user. For each one the SDK remembers the last
 * `id` it delivered (or, before any, the server time it started following it). After a reconnect
 * it asks the server's history for what came after, paging back with `before` until it reaches
 * that id, and delivers the missed messages in order. Live messages of a conversation that arrive
 * while it is being caught up are held and merged after the history: deduplicated by id, only ids
 * above the last delivered one. When the history does not reach back far enough it says so with
 * a {@link HistoryGap} rather than hide it.
 */
import type { ClientMessage, ServerMessage } from '../core/protocol.ts';
import {
  byId,
  createHistoryRequests,
  MAX_PAGE,
  type ChatMessage,
  type Conversation,
  type HistoryGap,
  type HistoryOptions,
  type HistoryPageOptions,
} from './history.ts';
import type { Requests } from './requests.ts';

export interface CatchUpDeps {
  userId: string;
  requests: Requests;
  send(message: ClientMessage): boolean;
  /** Hands a chat message to the app's `chat_message` handlers. */
  deliver(message: ChatMessage): void;
  reportGap(gap: HistoryGap): void;
  options?: HistoryOptions;
}

export interface CatchUp {
  /** The socket opened; the first time, `initialRoom` is the room the server put it in. */
  onOpen(initialRoom: string): void;
  onClose(): void;
  /** The client closed for good: pending `loadHistory` calls reject. */
  stop(): void;
  /** Offers a server frame; `true` when it was handled here (chat messages always are). */
  onFrame(message: ServerMessage): boolean;
  getRecentMessages(room: string, options?: HistoryPageOptions): Promise<ChatMessage[]>;
  getDirectMessages(withUser: string, options?: HistoryPageOptions): Promise<ChatMessage[]>;
  loadHistory(conversation: Conversation, options?: { limit?: number }): Promise<ChatMessage[]>;
}

interface Seed {
  limit: number;
  resolve(messages: ChatMessage[]): void;
  reject(error: Error): void;
}

interface State {
  readonly key: string;
  readonly target: Conversation;
  /** The newest id delivered to the app. */
  lastId: string | undefined;
  /** Before any id: the server time (`createTime`) from which messages count as missed. */
  since: string | undefined;
  /** `since` is the client's own clock, to be replaced by the server's first timestamp. */
  sinceGuessed: boolean;
  /** Messages may have been missed (a reconnect): hold live ones until caught up. */
  stale: boolean;
  /** A history request is under way. */
  busy: boolean;
  held: Map<string, ChatMessage>;
  seeds: Seed[];
  used: number;
}

/** Catch-ups under way at once: each holds its conversation's live messages, not the others'. */
const CONCURRENCY = 4;

const keyOf = (target: Conversation) =>
  'room' in target ? `r:${target.room}` : `d:${target.withUser}`;

export function createCatchUp(deps: CatchUpDeps): CatchUp {
  const { userId, requests, send, deliver, reportGap } = deps;
  const catchUp = deps.options?.catchUp ?? true;
  const pageSize = Math.min(MAX_PAGE, deps.options?.pageSize ?? MAX_PAGE);
  const maxPages = deps.options?.maxPages ?? 50;
  const { getRecentMessages, getDirectMessages, fetchPage } = createHistoryRequests(
    requests,
    deps.options?.timeoutMs ?? 10_000,
  );
  const maxPartners = deps.options?.maxPartners ?? 50;

  const states = new Map<string, State>();
  /** Rooms the server confirmed on this socket (rooms_list, room_joined): catch-ups may ask for them. */
  const joined = new Set<string>();
  let connected = false;
  /** Counts closes: a request that outlives its socket is dropped, and asked again after the next open. */
  let connection = 0;
  let openedBefore = false;
  /** A `since` waits for the server's first timestamp. */
  let guessing = false;
  let running = 0;
  let tick = 0;

  const holding = (state: State) => state.stale || state.busy || state.seeds.length > 0;

  function track(target: Conversation, since?: string): State {
    const key = keyOf(target);
    let state = states.get(key);
    if (!state) {
      state = {
        key,
        target,
        lastId: undefined,
        since,
        sinceGuessed: false,
        stale: false,
        busy: false,
        held: new Map(),
        seeds: [],
        used: ++tick,
      };
      states.set(key, state);
      if ('withUser' in target) forgetOldPartners();
    }
    state.used = ++tick;
    return state;
  }

  function forgetOldPartners(): void {
    const partners = [...states.values()].filter((s) => 'withUser' in s.target && !holding(s));
    if (partners.length <= maxPartners) return;
    partners.sort((a, b) => a.used - b.used);
    for (const state of partners.slice(0, partners.length - maxPartners)) states.delete(state.key);
  }

  function forget(key: string): void {
    const state = states.get(key);
    if (!state) return;
    states.delete(key);
    for (const seed of state.seeds.splice(0)) seed.reject(new Error('left the conversation'));
  }

  function conversationOf(message: ChatMessage): Conversation {
    if (message.room !== undefined) return { room: message.room };
    const mine =
      message.incoming === false || (message.incoming === undefined && message.fromUser === userId);
    return { withUser: (mine ? message.toUser : message.fromUser) ?? '' };
  }

  function onChat(message: ChatMessage): void {
    const id = message.id;
    // A server without history gives no id: nothing to order by or to catch up.
    if (id === undefined) {
      deliver(message);
      return;
    }
    const state = track(conversationOf(message));
    if (state.lastId !== undefined && id <= state.lastId) return;
    if (holding(state)) {
      state.held.set(id, message);
      return;
    }
    state.lastId = id;
    deliver(message);
  }

  // ---- catching up ------------------------------------------------------------------------

  function pump(): void {
    if (!connected) return;
    for (const state of states.values()) {
      if (running >= CONCURRENCY) return;
      if (state.busy) continue;
      const eligible = !('room' in state.target) || joined.has(state.target.room);
      if (state.seeds.length > 0 || (state.stale && eligible)) void run(state);
    }
  }

  async function run(state: State): Promise<void> {
    state.busy = true;
    running++;
    const at = connection;
    const seeds = state.seeds.splice(0);
    try {
      await fill(state, seeds, at);
    } finally {
      running--;
      state.busy = false;
      pump();
    }
  }

  /**
   * Fetches what `state` missed and delivers it with the held live messages. Catching up: back to
   * `lastId` (or `since`), page after page. Seeding a conversation with nothing delivered yet: its
   * last `limit` messages.
   */
  async function fill(state: State, seeds: Seed[], at: number): Promise<void> {
    const bound = state.lastId;
    const seedOnly = bound === undefined && seeds.length > 0;
    const since = bound === undefined && !seedOnly ? state.since : undefined;
    if (bound === undefined && since === undefined && !seedOnly) {
      // Followed since no known point: nothing to measure a gap from.
      return finish(state, [], undefined, seeds);
    }
    const limit = seedOnly ? Math.max(...seeds.map((seed) => seed.limit)) : pageSize;
    const found: ChatMessage[] = [];
    let reached = seedOnly;
    let exhausted = false;
    let before: string | undefined;
    let serverTime: string | undefined;
    try {
      for (let pages = 0; ; ) {
        const page = await fetchPage(state.target, before, limit);
        if (abandoned(state, seeds, at)) return;
        serverTime ??= page.createTime;
        for (const message of page.messages) {
          const old =
            bound !== undefined
              ? message.id! <= bound
              : since !== undefined && Date.parse(message.createTime) < Date.parse(since);
          if (old) reached = true;
          else found.push(message);
        }
        pages++;
        if (seedOnly || reached) break;
        if (page.count < limit) {
          exhausted = true;
          break;
        }
        if (pages >= maxPages || page.messages.length === 0) break;
        before = page.messages.at(-1)!.id;
      }
    } catch (error) {
      if (abandoned(state, seeds, at)) return;
      const failed = error instanceof Error ? error : new Error(String(error));
      finish(state, [], seedOnly ? undefined : 'request_failed', []);
      for (const seed of seeds) seed.reject(failed);
      return;
    }
    // Without a last id, messages after `since` that are not there were never stored, unless the
    // pages ran out first.
    const complete = reached || (bound === undefined && exhausted);
    finish(state, found, complete ? undefined : 'history_incomplete', seeds);
    // Still nothing delivered: what came before the answer has been looked at.
    if (state.lastId === undefined && serverTime !== undefined) state.since = serverTime;
  }

  /**
   * Whether a fetch for `state` lost its purpose: the socket closed (asked again after the next
   * open, seeds included) or the conversation was left.
   */
  function abandoned(state: State, seeds: Seed[], at: number): boolean {
    if (states.get(state.key) !== state) {
      for (const seed of seeds) seed.reject(new Error('left the conversation'));
      return true;
    }
    if (at === connection) return false;
    state.seeds.unshift(...seeds);
    return true;
  }

  /** Delivers `found` and the held live messages in id order, after the gap if there is one. */
  function finish(
    state: State,
    found: ChatMessage[],
    gapReason: HistoryGap['reason'] | undefined,
    seeds: Seed[],
  ): void {
    const bound = state.lastId;
    const merged = new Map<string, ChatMessage>();
    for (const message of [...found, ...state.held.values()]) {
      if (bound === undefined || message.id! > bound) merged.set(message.id!, message);
    }
    const ordered = [...merged.values()].sort(byId);
    state.held.clear();
    state.stale = false;
    if (gapReason) {
      const gap: HistoryGap = { reason: gapReason };
      if ('room' in state.target) gap.room = state.target.room;
      else gap.withUser = state.target.withUser;
      if (bound !== undefined) gap.afterId = bound;
      else if (state.since !== undefined) gap.since = state.since;
      if (ordered[0]) gap.beforeId = ordered[0].id!;
      reportGap(gap);
    }
    for (const message of ordered) {
      state.lastId = message.id;
      deliver(message);
    }
    for (const seed of seeds) seed.resolve(ordered);
  }

  return {
    onOpen(initialRoom) {
      connected = true;
      joined.clear();
      if (openedBefore) {
        if (catchUp) for (const state of states.values()) state.stale = true;
        // Which rooms this session is in decides which can be caught up: the answer comes as rooms_list.
        send({ type: 'get_rooms' });
      } else {
        // The room the server puts a new connection in: followed from now, by the server's clock
        // as soon as a frame brings it.
        const state = track({ room: initialRoom }, new Date().toISOString());
        state.sinceGuessed = guessing = state.lastId === undefined;
      }
      openedBefore = true;
      pump();
    },
    onClose() {
      connected = false;
      connection++;
      joined.clear();
      // No frame came: the client's clock is all there is.
      guessing = false;
      for (const state of states.values()) state.sinceGuessed = false;
    },
    stop() {
      for (const state of states.values()) {
        for (const seed of state.seeds.splice(0)) seed.reject(new Error('client closed'));
      }
    },
    onFrame(message) {
      if (guessing) {
        guessing = false;
        for (const state of states.values()) {
          if (state.sinceGuessed) state.since = message.createTime;
          state.sinceGuessed = false;
        }
      }
      switch (message.type) {
        case 'chat_message':
          onChat(message);
          return true;
        case 'room_joined':
          joined.add(message.payload.room);
          track({ room: message.payload.room }, message.createTime);
          pump();
          return false;
        case 'room_left':
          joined.delete(message.payload.room);
          forget(keyOf({ room: message.payload.room }));
          return false;
        case 'rooms_list': {
          joined.clear();
          for (const room of message.payload.rooms) {
            joined.add(room);
            track({ room }, message.createTime);
          }
          for (const state of [...states.values()]) {
            // A room the server says this session is not in, and that is not waiting to be
            // rejoined after a reconnect.
            if ('room' in state.target && !joined.has(state.target.room) && !holding(state))
              forget(state.key);
          }
          pump();
          return false;
        }
        default:
          return false;
      }
    },
    getRecentMessages,
    getDirectMessages,
    loadHistory(conversation, options = {}) {
      const state = track(conversation);
      return new Promise((resolve, reject) => {
        const limit = Math.min(MAX_PAGE, Math.max(1, Math.floor(options.limit ?? 50)));
        state.seeds.push({ limit, resolve, reject });
        pump();
      });
    },
  };
}
