/**
 * Requests the server answers with a reply carrying the request's `messageId`: sent with a fresh
 * id, settled by the first reply of the expected type with that id, rejected on timeout or when
 * the socket closes (a reply to a frame sent on a dropped socket may never come).
 */
import type { ClientMessage, ServerMessage } from '../core/protocol.ts';
import { randomToken } from './token.ts';

/** A request the server answered with `error`: `code` is its machine code (`not_in_room`...). */
export class RequestRefused extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'RequestRefused';
  }
}

type Reply<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>;

export interface RequestOptions {
  timeoutMs: number;
  /**
   * `true`: the reply is the request's alone and goes to no `on()` handler (replies to what the
   * SDK asks for itself). `false`: handlers of its type see it too.
   */
  consume: boolean;
}

export interface Requests {
  /**
   * Sends `build(messageId)`; resolves with the reply of `type` that carries that `messageId`.
   * Rejects with `not connected` when nothing could be sent.
   */
  request<T extends ServerMessage['type']>(
    build: (messageId: string) => ClientMessage,
    type: T,
    options: RequestOptions,
  ): Promise<Reply<T>>;
  /** Offers a server frame; `true` when it answered a request that consumes its reply. */
  settle(message: ServerMessage): boolean;
  /** Rejects every pending request: their socket is gone. */
  rejectAll(reason: string): void;
}

interface Pending {
  type: string;
  consume: boolean;
  resolve(message: ServerMessage): void;
  reject(error: Error): void;
}

export function createRequests(send: (message: ClientMessage) => boolean): Requests {
  const pending = new Map<string, Pending>();
  // One random prefix per client, then a counter: unique without a CSPRNG call per request.
  const prefix = `sdk-${randomToken(4)}-`;
  let counter = 0;

  return {
    request(build, type, { timeoutMs, consume }) {
      const messageId = `${prefix}${(++counter).toString(36)}`;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(messageId);
          reject(new Error(`no ${type} reply`));
        }, timeoutMs);
        const settle = (fn: () => void) => {
          clearTimeout(timer);
          pending.delete(messageId);
          fn();
        };
        pending.set(messageId, {
          type,
          consume,
          resolve: (message) => settle(() => resolve(message as Reply<typeof type>)),
          reject: (error) => settle(() => reject(error)),
        });
        if (!send(build(messageId))) pending.get(messageId)?.reject(new Error('not connected'));
      });
    },
    settle(message) {
      const waiting = message.messageId === undefined ? undefined : pending.get(message.messageId);
      if (!waiting) return false;
      // The server refused the request (`not_in_room`, `rate_limited`...): it names the request.
      if (message.type === 'error') {
        waiting.reject(new RequestRefused(message.payload.code, message.payload.error));
        return waiting.consume;
      }
      if (waiting.type !== message.type) return false;
      waiting.resolve(message);
      return waiting.consume;
    },
    rejectAll(reason) {
      for (const waiting of [...pending.values()]) waiting.reject(new Error(reason));
    },
  };
}
