/**
 * The control for the server's share in `npm run bench:calls`: the signaling of a call replayed by
 * two plain `ws` clients through the same proxy, after the browsers went quiet. Same frames in the
 * same order and of the same sizes as a browser call (available + request on both sides,
 * assign_role, offer, answer, trickled candidates, hangup), one step at a time, then a WebSocket
 * ping, which the server's `ws` library answers with no hub work: the floor under every
 * frame's round through the proxy and the server's event loop. The proxy's
 * figures for it say what the server costs when it is not competing with two Chromium pages
 * encoding video for the machine's two cores; beside the figures taken during the calls, the
 * difference is the machine's contention, not the server's work.
 */
import WebSocket from 'ws';

interface Peer {
  send(message: object): void;
  /** Resolves with the next message of `type` (queued if it came already). */
  next(type: string): Promise<unknown>;
  /** A protocol ping; resolves on its pong. */
  ping(): Promise<void>;
  close(): void;
}

async function connect(url: string, origin: string): Promise<Peer> {
  const ws = new WebSocket(url, { origin });
  const queued = new Map<string, unknown[]>();
  const waiting = new Map<string, (message: unknown) => void>();
  ws.on('message', (data) => {
    const message = JSON.parse(String(data)) as { type: string };
    const resolve = waiting.get(message.type);
    if (resolve) {
      waiting.delete(message.type);
      resolve(message);
    } else queued.set(message.type, [...(queued.get(message.type) ?? []), message]);
  });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  return {
    send: (message) => ws.send(JSON.stringify(message)),
    next: (type) => {
      const early = queued.get(type)?.shift();
      if (early) return Promise.resolve(early);
      return new Promise((resolve) => waiting.set(type, resolve));
    },
    ping: () =>
      new Promise((resolve) => {
        ws.once('pong', () => resolve());
        ws.ping();
      }),
    close: () => ws.close(),
  };
}

/** Filler of `bytes` characters in SDP's line shape (the server does not parse it). */
const sdpOf = (bytes: number) => 'a=x\r\n'.repeat(Math.ceil(bytes / 5)).slice(0, bytes);

const CANDIDATE = {
  candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0',
  sdpMid: '0',
  sdpMLineIndex: 0,
  usernameFragment: 'abcd',
};

/**
 * `rounds` replayed calls between `replay-a` (requester) and `replay-b`, with offers and answers of
 * the given sizes and `candidates` candidates each way (then end-of-candidates).
 */
export async function replaySignaling(options: {
  proxyPort: number;
  origin: string;
  rounds: number;
  offerBytes: number;
  answerBytes: number;
  candidates: number;
}): Promise<void> {
  const base = `ws://127.0.0.1:${options.proxyPort}/ws?userId=`;
  const a = await connect(`${base}replay-a`, options.origin);
  const b = await connect(`${base}replay-b`, options.origin);
  const trickle = async (from: Peer, to: Peer, toUser: string) => {
    for (let i = 0; i < options.candidates; i++)
      from.send({ type: 'webrtc_candidate', toUser, payload: { candidate: CANDIDATE } });
    from.send({ type: 'webrtc_candidate', toUser, payload: { candidate: null } });
    for (let i = 0; i <= options.candidates; i++) await to.next('webrtc_candidate');
  };
  for (let round = 0; round < options.rounds; round++) {
    b.send({ type: 'user_available_webrtc' });
    b.send({ type: 'request_random_peer' });
    await b.next('no_peer_available');
    a.send({ type: 'user_available_webrtc' });
    a.send({ type: 'request_random_peer' });
    await Promise.all([a.next('assign_role'), b.next('assign_role')]);
    a.send({
      type: 'webrtc_offer',
      toUser: 'replay-b',
      payload: { type: 'offer', sdp: sdpOf(options.offerBytes) },
    });
    await b.next('webrtc_offer');
    b.send({
      type: 'webrtc_answer',
      toUser: 'replay-a',
      payload: { type: 'answer', sdp: sdpOf(options.answerBytes) },
    });
    await a.next('webrtc_answer');
    await trickle(a, b, 'replay-b');
    await trickle(b, a, 'replay-a');
    a.send({ type: 'hangup', toUser: 'replay-b' });
    await b.next('hangup');
    await a.ping();
  }
  a.close();
  b.close();
}
