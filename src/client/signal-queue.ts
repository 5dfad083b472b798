/**
 * The signaling a call sends, held while the client's socket is down and sent in order once it is
 * open again. A call outlives a blip of its signaling socket (the server keeps the pair for
 * `CALL_RESUME_MS`), and what it wants to say meanwhile, an ICE-restart offer and its candidates,
 * must not be lost: a restart offer that never arrives leaves both sides waiting for nothing.
 */
import type { AleatoriaClient } from './client.ts';
import type { ClientMessage } from '../core/protocol.ts';

/**
 * How many messages wait at most. One negotiation is a description and a few candidates per
 * network; past this the oldest candidates go first, as ICE finds peer-reflexive paths without
 * them while a lost description stalls negotiation.
 */
export const MAX_QUEUED_SIGNALS = 64;

export interface SignalQueueOptions {
  client: Pick<AleatoriaClient, 'send' | 'onStatus'>;
  /** Queued messages for which this says true when their turn comes are dropped unsent. */
  isStale?: (message: ClientMessage) => boolean;
  limit?: number;
}

export interface SignalQueue {
  /** Sends `message` now, or after what is already waiting once the socket is open again. */
  send(message: ClientMessage): void;
  /** How many messages wait. */
  readonly size: number;
  /** Drops what waits and stops listening (the call ended). */
  dispose(): void;
}

export function createSignalQueue(options: SignalQueueOptions): SignalQueue {
  const { client } = options;
  const limit = options.limit ?? MAX_QUEUED_SIGNALS;
  const waiting: ClientMessage[] = [];

  function flush(): void {
    while (waiting.length > 0) {
      const next = waiting[0]!;
      if (!options.isStale?.(next) && !client.send(next)) return;
      waiting.shift();
    }
  }

  function enqueue(message: ClientMessage): void {
    if (waiting.length >= limit) {
      const candidate = waiting.findIndex((queued) => queued.type === 'webrtc_candidate');
      waiting.splice(candidate === -1 ? 0 : candidate, 1);
    }
    waiting.push(message);
  }

  const unsubscribe = client.onStatus((status) => {
    if (status === 'open') flush();
  });

  return {
    send(message) {
      // Behind others, it waits its turn: signaling only makes sense in order.
      if (waiting.length > 0 || !client.send(message)) enqueue(message);
    },
    get size() {
      return waiting.length;
    },
    dispose() {
      waiting.length = 0;
      unsubscribe();
    },
  };
}
