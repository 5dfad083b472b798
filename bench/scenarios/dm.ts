/**
 * `relay` and `chat`: P sender/receiver pairs, each sender keeping W direct messages in flight to its
 * receiver (a new one goes out when one arrives): closed loop, so the rate is the server's capacity.
 * `relay` sends `webrtc_candidate` with the init object nested in `payload.candidate` (what
 * `{candidate: e.candidate}` gives); `relay-flat` with the init object as the payload itself (what
 * `payload: e.candidate` gives, as much real code sends); `chat` sends `chat_message`, whose sender
 * copy is counted as a delivery too (the server serializes and sends it). Latency: send -> receiver.
 * Args: --pairs P --window W --ms DURATION
 */
import type { WebSocket } from 'ws';
import {
  durationArg,
  Histogram,
  intArg,
  latencies,
  measureWindow,
  openAll,
  run,
  stampOf,
} from './common.ts';

const CANDIDATE = {
  candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 54321 typ host',
  sdpMid: '0',
  sdpMLineIndex: 0,
};
/** An `RTCIceCandidate.toJSON()` as a browser gives it. */
const FLAT_CANDIDATE = {
  candidate:
    'candidate:842163049 1 udp 1677729535 127.0.0.1 54321 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag Ab1c network-cost 999',
  sdpMid: '0',
  sdpMLineIndex: 0,
  usernameFragment: 'Ab1c',
};

export type DirectKind = 'relay' | 'relay-flat' | 'chat';

/** A direct message to `toUser` whose messageId carries its send time. */
export function directMessage(kind: DirectKind, toUser: string, seq: number): string {
  const messageId = `${performance.now()}`;
  if (kind === 'chat')
    return JSON.stringify({
      type: 'chat_message',
      toUser,
      messageId,
      payload: { content: `hello ${seq}` },
    });
  return JSON.stringify({
    type: 'webrtc_candidate',
    toUser,
    messageId,
    payload: kind === 'relay' ? { candidate: CANDIDATE } : FLAT_CANDIDATE,
  });
}

/**
 * Opens P sender/receiver pairs. Against a cluster of N nodes the sender of pair i is on node i
 * and its receiver on node i + 1 (mod N): every message crosses nodes, and every node sends and
 * receives alike.
 */
export async function openPairs(
  pairs: number,
): Promise<Array<{ sender: WebSocket; receiver: WebSocket; receiverId: string }>> {
  const ids = Array.from({ length: pairs }, (_, i) => [`s${run}${i}`, `r${run}${i}`]).flat();
  // ids[2i] is pair i's sender, ids[2i + 1] its receiver.
  const sockets = await openAll(ids, (k) => (k >> 1) + (k & 1));
  return Array.from({ length: pairs }, (_, i) => ({
    sender: sockets[2 * i]!,
    receiver: sockets[2 * i + 1]!,
    receiverId: ids[2 * i + 1]!,
  }));
}

export async function dm(kind: DirectKind) {
  const pairs = await openPairs(intArg('pairs', 200, 1, 5000));
  const window = intArg('window', 8, 1, 256);
  const durationMs = durationArg();
  const histogram = new Histogram();
  const state = { measuring: false, stopped: false };
  let delivered = 0;
  for (const { sender, receiver, receiverId } of pairs) {
    let seq = 0;
    receiver.on('message', (data) => {
      if (state.measuring) {
        delivered++;
        histogram.record(performance.now() - stampOf(data));
      }
      if (!state.stopped) sender.send(directMessage(kind, receiverId, seq++));
    });
    sender.on('message', () => {
      if (state.measuring) delivered++;
    });
    for (let w = 0; w < window; w++) sender.send(directMessage(kind, receiverId, seq++));
  }
  const measured = await measureWindow(durationMs, state);
  state.stopped = true;
  return { delivered, ...measured, ...latencies(histogram) };
}
