import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  candidateFromPayload,
  startCall,
  type CallEndReason,
  type CallOptions,
  type CallState,
  type ClientMessage,
  type ClientStatus,
  type MessageHandler,
  type ServerMessage,
  type ServerMessageType,
  type StatusHandler,
} from '../../src/client/index.ts';

/**
 * The signaling side of a client: records sent messages, delivers server messages to subscribers,
 * and has a socket the test takes down (`send` then refuses, as the real client's does) and up.
 */
function fakeSignaling() {
  const sent: ClientMessage[] = [];
  const handlers = new Map<string, Set<(message: ServerMessage) => void>>();
  const statusHandlers = new Set<StatusHandler>();
  let status: ClientStatus = 'open';
  const client: CallOptions['client'] = {
    get status() {
      return status;
    },
    send(message) {
      if (status !== 'open') return false;
      sent.push(message);
      return true;
    },
    on<T extends ServerMessageType>(type: T, handler: MessageHandler<T>) {
      const set = handlers.get(type) ?? new Set();
      handlers.set(type, set);
      const untyped = handler as (message: ServerMessage) => void;
      set.add(untyped);
      return () => set.delete(untyped);
    },
    onStatus(handler) {
      statusHandlers.add(handler);
      return () => statusHandlers.delete(handler);
    },
  };
  const setStatus = (next: ClientStatus) => {
    status = next;
    for (const handler of [...statusHandlers]) handler(next, {});
  };
  return {
    client,
    sent,
    deliver(message: ServerMessage) {
      for (const handler of [...(handlers.get(message.type) ?? [])]) handler(message);
    },
    down: () => setStatus('reconnecting'),
    up: () => setStatus('open'),
    listenerCount: () =>
      [...handlers.values()].reduce((sum, set) => sum + set.size, 0) + statusHandlers.size,
  };
}

let sdpCounter = 0;

/** Enough of RTCPeerConnection's signaling state machine to exercise perfect negotiation. */
class FakePeerConnection {
  static instances: FakePeerConnection[] = [];
  signalingState: RTCSignalingState = 'stable';
  connectionState: RTCPeerConnectionState = 'new';
  localDescription: RTCSessionDescriptionInit | null = null;
  remoteDescription: RTCSessionDescriptionInit | null = null;
  remoteDescriptionsSet: RTCSessionDescriptionInit[] = [];
  addedCandidates: (RTCIceCandidateInit | null)[] = [];
  rolledBack = 0;
  restarts = 0;
  tracks: unknown[] = [];
  transceivers: string[] = [];
  closed = false;
  onnegotiationneeded: (() => unknown) | null = null;
  onicecandidate: ((event: { candidate: unknown }) => void) | null = null;
  ontrack: ((event: { track: unknown; streams: unknown[] }) => void) | null = null;
  onconnectionstatechange: (() => void) | null = null;

  constructor(readonly config: RTCConfiguration) {
    FakePeerConnection.instances.push(this);
  }
  async setLocalDescription(): Promise<void> {
    await Promise.resolve();
    const type = this.signalingState === 'have-remote-offer' ? 'answer' : 'offer';
    this.localDescription = {
      type,
      sdp: `${type}-${++sdpCounter}\na=ice-ufrag:local${this.restarts}`,
    };
    this.signalingState = type === 'answer' ? 'stable' : 'have-local-offer';
  }
  async setRemoteDescription(description: RTCSessionDescriptionInit): Promise<void> {
    await Promise.resolve();
    if (description.type === 'offer') {
      if (this.signalingState === 'have-local-offer') this.rolledBack++;
      this.signalingState = 'have-remote-offer';
    } else {
      if (this.signalingState !== 'have-local-offer')
        throw new Error('InvalidStateError: no offer to answer');
      this.signalingState = 'stable';
    }
    this.remoteDescription = description;
    this.remoteDescriptionsSet.push(description);
  }
  async addIceCandidate(candidate?: RTCIceCandidateInit | null): Promise<void> {
    await Promise.resolve();
    if (!this.remoteDescription) throw new Error('InvalidStateError: no remote description');
    if (candidate?.candidate?.includes('bad')) throw new Error('OperationError: bad candidate');
    this.addedCandidates.push(candidate ?? null);
  }
  restartIce(): void {
    this.restarts++;
  }
  addTrack(track: unknown): void {
    this.tracks.push(track);
  }
  addTransceiver(kind: string): void {
    this.transceivers.push(kind);
  }
  close(): void {
    this.closed = true;
    this.signalingState = 'closed';
  }

  setConnectionState(state: RTCPeerConnectionState): void {
    this.connectionState = state;
    this.onconnectionstatechange?.();
  }
}

class FakeMediaStream {
  private readonly tracks: unknown[];
  constructor(tracks: unknown[] = []) {
    this.tracks = [...tracks];
  }
  getTracks() {
    return [...this.tracks];
  }
  addTrack(track: unknown) {
    this.tracks.push(track);
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

const PEER = 'bob';
const at = { createTime: '2026-01-01T00:00:00.000Z' };

function offer(sdp: string, fromUser = PEER): ServerMessage {
  return {
    type: 'webrtc_offer',
    fromUser,
    toUser: 'alice',
    payload: { type: 'offer', sdp },
    ...at,
  };
}
function answer(sdp: string, fromUser = PEER): ServerMessage {
  return {
    type: 'webrtc_answer',
    fromUser,
    toUser: 'alice',
    payload: { type: 'answer', sdp },
    ...at,
  };
}
function candidate(
  payload: Record<string, unknown> & { candidate: unknown },
  fromUser = PEER,
): ServerMessage {
  return { type: 'webrtc_candidate', fromUser, toUser: 'alice', payload, ...at };
}
function hangup(fromUser = PEER, reason?: string): ServerMessage {
  return {
    type: 'hangup',
    fromUser,
    toUser: 'alice',
    ...(reason ? { payload: { reason } } : {}),
    ...at,
  };
}

function userStatus(userId: string, status: string, room?: string): ServerMessage {
  return {
    type: 'user_status',
    fromUser: 'system',
    ...(room ? { room } : {}),
    payload: { userId, status, timestamp: at.createTime },
    ...at,
  } as ServerMessage;
}
/** A local candidate event as Chromium fires it, of ICE generation `ufrag`. */
function localCandidate(ufrag: string, n: number) {
  const json = {
    candidate: `candidate:${n} 1 udp 1 10.0.0.1 ${5000 + n} typ host ufrag ${ufrag}`,
    sdpMid: '0',
    sdpMLineIndex: 0,
    usernameFragment: ufrag,
  };
  return { candidate: { toJSON: () => json } };
}

/** A call of `role`; `down`: its client's socket is down when the call starts. */
function setup(role: 'polite' | 'impolite', overrides: Partial<CallOptions> = {}, down = false) {
  const signaling = fakeSignaling();
  if (down) signaling.down();
  const errors: unknown[] = [];
  const call = startCall({
    client: signaling.client,
    peerId: PEER,
    role,
    localStream: new FakeMediaStream(['mic', 'cam']) as unknown as MediaStream,
    iceServers: [{ urls: 'stun:stun.example:3478' }],
    RTCPeerConnection: FakePeerConnection as unknown as typeof RTCPeerConnection,
    MediaStream: FakeMediaStream as unknown as typeof MediaStream,
    onError: (error) => errors.push(error),
    ...overrides,
  });
  const pc = FakePeerConnection.instances.at(-1)!;
  const states: [CallState, CallEndReason | undefined][] = [];
  call.onState((state, reason) => states.push([state, reason]));
  const sentOfType = (type: ClientMessage['type']) =>
    signaling.sent.filter((message) => message.type === type);
  return { call, pc, signaling, errors, states, sentOfType };
}

beforeEach(() => {
  vi.useFakeTimers();
  FakePeerConnection.instances = [];
});

afterEach(() => {
  vi.useRealTimers();
});

describe('startCall', () => {
  it('adds the local tracks, passes the ICE servers and offers at once, once, as the impolite side', async () => {
    const { pc, call, sentOfType } = setup('impolite');
    expect(pc.config.iceServers).toEqual([{ urls: 'stun:stun.example:3478' }]);
    expect(pc.tracks).toEqual(['mic', 'cam']);
    expect(call.peerId).toBe(PEER);
    expect(call.role).toBe('impolite');
    expect(call.state).toBe('connecting');
    await settle();
    // Sent before the browser's negotiationneeded, which then finds the offer carrying the tracks.
    expect(sentOfType('webrtc_offer')).toHaveLength(1);
    await pc.onnegotiationneeded?.();
    await settle();
    expect(sentOfType('webrtc_offer')).toEqual([
      {
        type: 'webrtc_offer',
        toUser: PEER,
        payload: { type: 'offer', sdp: pc.localDescription!.sdp },
      },
    ]);
  });

  it('offers to receive when it has nothing to send and is the impolite side', () => {
    const { pc } = setup('impolite', { localStream: undefined });
    expect(pc.transceivers).toEqual(['audio', 'video']);
    const polite = setup('polite', { localStream: undefined });
    expect(polite.pc.transceivers).toEqual([]);
  });

  it('sends each local candidate as toJSON(), and null at the end', () => {
    const { pc, sentOfType } = setup('polite');
    const json = {
      candidate: 'candidate:1 1 udp 1 10.0.0.1 5000 typ host',
      sdpMid: '0',
      sdpMLineIndex: 0,
      usernameFragment: 'uf',
    };
    pc.onicecandidate?.({ candidate: { toJSON: () => json } });
    pc.onicecandidate?.({ candidate: null });
    expect(sentOfType('webrtc_candidate')).toEqual([
      { type: 'webrtc_candidate', toUser: PEER, payload: { candidate: json } },
      { type: 'webrtc_candidate', toUser: PEER, payload: { candidate: null } },
    ]);
  });

  it('queues candidates that arrive before the remote description and adds them after it', async () => {
    const { pc, signaling, sentOfType, errors } = setup('polite');
    signaling.deliver(
      candidate({ candidate: { candidate: 'candidate:a', sdpMid: '0', sdpMLineIndex: 0 } }),
    );
    signaling.deliver(candidate({ candidate: 'candidate:b', sdpMid: '1', sdpMLineIndex: 1 }));
    await settle();
    expect(pc.addedCandidates).toEqual([]);

    signaling.deliver(offer('remote-offer'));
    await settle();
    expect(pc.remoteDescriptionsSet).toEqual([{ type: 'offer', sdp: 'remote-offer' }]);
    expect(pc.addedCandidates).toEqual([
      { candidate: 'candidate:a', sdpMid: '0', sdpMLineIndex: 0 },
      { candidate: 'candidate:b', sdpMid: '1', sdpMLineIndex: 1 },
    ]);
    expect(sentOfType('webrtc_answer')).toEqual([
      {
        type: 'webrtc_answer',
        toUser: PEER,
        payload: { type: 'answer', sdp: pc.localDescription!.sdp },
      },
    ]);

    signaling.deliver(
      candidate({ candidate: { candidate: 'candidate:c', sdpMid: '0', sdpMLineIndex: 0 } }),
    );
    signaling.deliver(candidate({ candidate: null }));
    await settle();
    expect(pc.addedCandidates.slice(2)).toEqual([
      { candidate: 'candidate:c', sdpMid: '0', sdpMLineIndex: 0 },
      null,
    ]);
    expect(errors).toEqual([]);
  });

  it('polite side: adds its tracks up front, offers nothing before the first offer, and answers it with them', async () => {
    const { pc, signaling, sentOfType } = setup('polite');
    expect(pc.tracks).toEqual(['mic', 'cam']);
    await pc.onnegotiationneeded?.();
    await settle();
    expect(sentOfType('webrtc_offer')).toEqual([]);
    signaling.deliver(offer('their-offer'));
    await settle();
    expect(pc.remoteDescriptionsSet).toEqual([{ type: 'offer', sdp: 'their-offer' }]);
    expect(sentOfType('webrtc_answer')).toHaveLength(1);
    expect(pc.rolledBack).toBe(0);
    // Once answered, a renegotiation of its own (an ICE restart) may offer; tracks stay as they are.
    await pc.onnegotiationneeded?.();
    expect(sentOfType('webrtc_offer')).toHaveLength(1);
    expect(pc.tracks).toEqual(['mic', 'cam']);
  });

  it('polite side: rolls back its own offer and answers a colliding one', async () => {
    const { pc, signaling, sentOfType } = setup('polite');
    signaling.deliver(offer('first-offer'));
    await settle();
    await pc.onnegotiationneeded?.();
    expect(pc.signalingState).toBe('have-local-offer');
    signaling.deliver(offer('their-offer'));
    await settle();
    expect(pc.rolledBack).toBe(1);
    expect(pc.remoteDescriptionsSet.at(-1)).toEqual({ type: 'offer', sdp: 'their-offer' });
    expect(sentOfType('webrtc_answer')).toHaveLength(2);
  });

  it('polite side: accepts an offer that arrives while its own is still being made', async () => {
    const { pc, signaling, sentOfType } = setup('polite');
    signaling.deliver(offer('first-offer'));
    await settle();
    const making = pc.onnegotiationneeded?.();
    signaling.deliver(offer('their-offer'));
    await making;
    await settle();
    expect(pc.remoteDescriptionsSet.at(-1)).toEqual({ type: 'offer', sdp: 'their-offer' });
    expect(sentOfType('webrtc_answer')).toHaveLength(2);
  });

  it('impolite side: ignores a colliding offer and keeps its own', async () => {
    const { pc, signaling, sentOfType, errors } = setup('impolite');
    await settle();
    const ownOffer = pc.localDescription;
    signaling.deliver(offer('their-offer'));
    await settle();
    expect(pc.remoteDescriptionsSet).toEqual([]);
    expect(pc.localDescription).toBe(ownOffer);
    expect(sentOfType('webrtc_answer')).toEqual([]);

    signaling.deliver(answer('their-answer'));
    await settle();
    expect(pc.remoteDescriptionsSet).toEqual([{ type: 'answer', sdp: 'their-answer' }]);
    expect(pc.signalingState).toBe('stable');
    expect(errors).toEqual([]);
  });

  it('impolite side: ignores an offer that arrives while its own is still being made', async () => {
    const { pc, signaling, sentOfType } = setup('impolite');
    const making = pc.onnegotiationneeded?.();
    signaling.deliver(offer('their-offer'));
    await making;
    await settle();
    expect(pc.remoteDescriptionsSet).toEqual([]);
    expect(sentOfType('webrtc_offer')).toHaveLength(1);
    expect(sentOfType('webrtc_answer')).toEqual([]);
  });

  it('swallows candidate errors only while an offer is being ignored', async () => {
    const impolite = setup('impolite');
    await impolite.pc.onnegotiationneeded?.();
    impolite.signaling.deliver(answer('first-answer'));
    await settle();
    await impolite.pc.onnegotiationneeded?.(); // renegotiation: have-local-offer again
    impolite.signaling.deliver(offer('colliding'));
    impolite.signaling.deliver(candidate({ candidate: { candidate: 'bad-1', sdpMid: '0' } }));
    await settle();
    expect(impolite.errors).toEqual([]);

    const polite = setup('polite');
    polite.signaling.deliver(offer('remote-offer'));
    await settle();
    polite.signaling.deliver(candidate({ candidate: { candidate: 'bad-2', sdpMid: '0' } }));
    await settle();
    expect(polite.errors).toHaveLength(1);
  });

  it('ignores signaling from anyone but its peer', async () => {
    const { pc, signaling, sentOfType, call } = setup('polite');
    signaling.deliver(offer('intruder-offer', 'mallory'));
    await settle();
    signaling.deliver(offer('real-offer'));
    await settle();
    signaling.deliver(
      candidate({ candidate: { candidate: 'candidate:m', sdpMid: '0' } }, 'mallory'),
    );
    await settle();
    expect(pc.remoteDescriptionsSet).toEqual([{ type: 'offer', sdp: 'real-offer' }]);
    expect(pc.addedCandidates).toEqual([]);
    expect(sentOfType('webrtc_answer')).toHaveLength(1);
    expect(call.state).toBe('connecting');
  });

  it('a hangup from another user does not end the call; one from the peer does', () => {
    const { call, pc, signaling, states } = setup('polite');
    signaling.deliver(hangup('mallory'));
    expect(call.state).toBe('connecting');
    expect(pc.closed).toBe(false);
    signaling.deliver(hangup(PEER));
    expect(call.state).toBe('ended');
    expect(call.endReason).toBe('hangup');
    expect(states).toEqual([['ended', 'hangup']]);
    expect(pc.closed).toBe(true);
    expect(signaling.listenerCount()).toBe(0);
  });

  it.each(['peer_disconnected', 'peer_left'] as const)(
    'ends with the server reason %s',
    (reason) => {
      const { call, signaling, sentOfType } = setup('impolite');
      signaling.deliver(hangup(PEER, reason));
      expect(call.endReason).toBe(reason);
      expect(sentOfType('hangup')).toEqual([]);
    },
  );

  it('hangup() tells the peer and stops listening; close() does not tell it', async () => {
    const first = setup('impolite');
    first.call.hangup('next');
    expect(first.sentOfType('hangup')).toEqual([
      { type: 'hangup', toUser: PEER, payload: { reason: 'next' } },
    ]);
    expect(first.states).toEqual([['ended', 'local']]);
    expect(first.signaling.listenerCount()).toBe(0);
    first.signaling.deliver(offer('late-offer'));
    await settle();
    expect(first.pc.remoteDescriptionsSet).toEqual([]);
    first.call.hangup();
    expect(first.sentOfType('hangup')).toHaveLength(1);

    const second = setup('polite');
    second.call.hangup();
    expect(second.sentOfType('hangup')).toEqual([{ type: 'hangup', toUser: PEER }]);

    const third = setup('polite');
    third.call.close();
    expect(third.sentOfType('hangup')).toEqual([]);
    expect(third.call.endReason).toBe('local');
    expect(third.pc.closed).toBe(true);
  });

  it('collects the remote tracks in remoteStream, each once', () => {
    const { call, pc } = setup('polite');
    pc.ontrack?.({ track: 'their-mic', streams: [] });
    pc.ontrack?.({ track: 'their-cam', streams: [] });
    pc.ontrack?.({ track: 'their-cam', streams: [] });
    expect(call.remoteStream.getTracks()).toEqual(['their-mic', 'their-cam']);
  });
});

describe('startCall through blips', () => {
  it('queues signaling while the socket is down and sends it in order once it is open again', async () => {
    const { pc, signaling, sentOfType } = setup('impolite', {}, true);
    await settle();
    pc.onicecandidate?.(localCandidate('local0', 1));
    pc.onicecandidate?.({ candidate: null });
    expect(signaling.sent).toEqual([]);
    signaling.up();
    expect(signaling.sent.map((message) => message.type)).toEqual([
      'webrtc_offer',
      'webrtc_candidate',
      'webrtc_candidate',
    ]);
    expect(sentOfType('webrtc_candidate').at(-1)).toEqual({
      type: 'webrtc_candidate',
      toUser: PEER,
      payload: { candidate: null },
    });
  });

  it('drops what is queued when the call ends, and sends the hangup only on an open socket', () => {
    const { call, pc, signaling } = setup('polite');
    signaling.down();
    pc.onicecandidate?.(localCandidate('local0', 1));
    call.hangup();
    signaling.up();
    expect(signaling.sent).toEqual([]);
  });

  it('keeps at most 64 messages queued, dropping the oldest candidates first', async () => {
    const { pc, signaling, sentOfType } = setup('impolite', {}, true);
    await settle();
    for (let n = 1; n <= 70; n++) pc.onicecandidate?.(localCandidate('local0', n));
    signaling.up();
    expect(signaling.sent).toHaveLength(64);
    expect(signaling.sent[0]!.type).toBe('webrtc_offer');
    const lines = sentOfType('webrtc_candidate').map(
      (message) =>
        (message.payload as { candidate: { candidate: string } }).candidate.candidate.split(
          ' ',
        )[0] ?? '',
    );
    expect(lines[0]).toBe('candidate:8');
    expect(lines.at(-1)).toBe('candidate:70');
  });

  it('does not send queued candidates of an ICE generation it has restarted away from', async () => {
    const { pc, signaling, sentOfType } = setup('impolite');
    await settle();
    signaling.deliver(answer('their-answer\na=ice-ufrag:remote0'));
    await settle();
    signaling.down();
    pc.onicecandidate?.(localCandidate('local0', 1));
    pc.restartIce();
    await pc.onnegotiationneeded?.(); // the restart's offer, with ufrag local1
    pc.onicecandidate?.(localCandidate('local1', 2));
    signaling.up();
    expect(sentOfType('webrtc_offer')).toHaveLength(2);
    expect(
      sentOfType('webrtc_candidate').map(
        (message) =>
          (message.payload as { candidate: { usernameFragment: string } }).candidate
            .usernameFragment,
      ),
    ).toEqual(['local1']);
  });

  it("shows the peer reconnecting and back online from the call's own user_status only", () => {
    const { call, signaling } = setup('polite');
    const seen: string[] = [];
    call.onPeerStatus((status) => seen.push(status));
    signaling.deliver(userStatus(PEER, 'offline', 'Lobby'));
    signaling.deliver(userStatus('mallory', 'reconnecting'));
    expect(call.peerStatus).toBe('online');
    signaling.deliver(userStatus(PEER, 'reconnecting'));
    expect(call.peerStatus).toBe('reconnecting');
    signaling.deliver(userStatus(PEER, 'online', 'Lobby'));
    expect(call.peerStatus).toBe('reconnecting');
    signaling.deliver(userStatus(PEER, 'online'));
    expect(call.peerStatus).toBe('online');
    expect(seen).toEqual(['reconnecting', 'online']);
    expect(call.state).toBe('connecting');
  });

  it('offers again when the peer comes back while its offer is unanswered', async () => {
    const { signaling, sentOfType } = setup('impolite');
    await settle();
    signaling.deliver(userStatus(PEER, 'reconnecting'));
    signaling.deliver(userStatus(PEER, 'online'));
    expect(sentOfType('webrtc_offer')).toHaveLength(2);
    expect(sentOfType('webrtc_offer')[1]).toEqual(sentOfType('webrtc_offer')[0]);
    signaling.deliver(answer('their-answer'));
    await settle();
    signaling.deliver(userStatus(PEER, 'reconnecting'));
    signaling.deliver(userStatus(PEER, 'online'));
    expect(sentOfType('webrtc_offer')).toHaveLength(2);
  });

  it('impolite side: restarts ICE at once when the connection drops, again while it stays down, and is connected again after', async () => {
    const { call, pc, states, sentOfType } = setup('impolite');
    pc.setConnectionState('connected');
    pc.setConnectionState('disconnected');
    expect(pc.restarts).toBe(1);
    expect(call.state).toBe('reconnecting');
    pc.setConnectionState('failed');
    pc.setConnectionState('connecting');
    expect(pc.restarts).toBe(1);
    expect(call.state).toBe('reconnecting');
    await vi.advanceTimersByTimeAsync(5000);
    expect(pc.restarts).toBe(2);
    pc.setConnectionState('connected');
    expect(states).toEqual([
      ['connected', undefined],
      ['reconnecting', undefined],
      ['connected', undefined],
    ]);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(pc.restarts).toBe(2);
    expect(sentOfType('hangup')).toEqual([]);
  });

  it('polite side: waits for the impolite restart, and restarts itself only when no offer comes', async () => {
    const { pc, signaling } = setup('polite');
    pc.setConnectionState('connected');
    pc.setConnectionState('failed');
    await vi.advanceTimersByTimeAsync(2999);
    expect(pc.restarts).toBe(0);
    signaling.deliver(offer('restart-offer\na=ice-ufrag:remote1'));
    await vi.advanceTimersByTimeAsync(1);
    expect(pc.restarts).toBe(0);
    await vi.advanceTimersByTimeAsync(5000);
    expect(pc.restarts).toBe(1);
  });

  it('waits for the socket before restarting: the offer would only wait in the queue', async () => {
    const { pc, signaling } = setup('impolite');
    pc.setConnectionState('connected');
    signaling.down();
    pc.setConnectionState('disconnected');
    expect(pc.restarts).toBe(0);
    signaling.up();
    expect(pc.restarts).toBe(1);
  });

  it('ends as failed only after failAfterMs without recovery, and tells the peer', async () => {
    const { call, pc, states, sentOfType } = setup('impolite', { recovery: { failAfterMs: 8000 } });
    pc.setConnectionState('connected');
    pc.setConnectionState('failed');
    await vi.advanceTimersByTimeAsync(7999);
    expect(call.state).toBe('reconnecting');
    await vi.advanceTimersByTimeAsync(1);
    expect(states.at(-1)).toEqual(['ended', 'failed']);
    expect(sentOfType('hangup')).toEqual([
      { type: 'hangup', toUser: PEER, payload: { reason: 'failed' } },
    ]);
    expect(pc.closed).toBe(true);
  });

  it('gives up on a first connection that never comes, after the same bound', async () => {
    const { call, pc } = setup('polite');
    pc.setConnectionState('connecting');
    pc.setConnectionState('failed');
    expect(call.state).toBe('connecting');
    await vi.advanceTimersByTimeAsync(19_999);
    expect(call.state).toBe('connecting');
    await vi.advanceTimersByTimeAsync(1);
    expect(call.endReason).toBe('failed');
  });

  it('drops remote candidates of an ICE generation the peer has restarted away from', async () => {
    const { pc, signaling, errors } = setup('polite');
    const remote = (ufrag: string, n: number) =>
      candidate({
        candidate: {
          candidate: `candidate:${n} 1 udp 1 10.0.0.2 600${n} typ host ufrag ${ufrag}`,
          sdpMid: '0',
          usernameFragment: ufrag,
        },
      });
    signaling.deliver(offer('first\na=ice-ufrag:remote0'));
    signaling.deliver(remote('remote0', 1));
    await settle();
    signaling.deliver(offer('restart\na=ice-ufrag:remote1'));
    // The restart offer is still being applied: its own candidates count already, old ones not.
    signaling.deliver(remote('remote1', 2));
    signaling.deliver(remote('remote0', 3));
    await settle();
    expect(pc.addedCandidates.map((added) => added?.usernameFragment)).toEqual([
      'remote0',
      'remote1',
    ]);
    expect(errors).toEqual([]);
  });
});

describe('candidateFromPayload', () => {
  it('reads an RTCIceCandidateInit, a bare string with its position beside it, or null', () => {
    expect(
      candidateFromPayload({
        candidate: { candidate: 'c1', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'u' },
      }),
    ).toEqual({ candidate: 'c1', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'u' });
    expect(candidateFromPayload({ candidate: 'c2', sdpMid: 'audio', sdpMLineIndex: 1 })).toEqual({
      candidate: 'c2',
      sdpMid: 'audio',
      sdpMLineIndex: 1,
    });
    expect(candidateFromPayload({ candidate: { candidate: 'c3' }, sdpMLineIndex: 2 })).toEqual({
      candidate: 'c3',
      sdpMLineIndex: 2,
    });
    expect(candidateFromPayload({ candidate: null })).toBeNull();
    expect(candidateFromPayload(null)).toBeNull();
  });

  it('rejects anything else', () => {
    expect(candidateFromPayload({ candidate: 42 })).toBeUndefined();
    expect(candidateFromPayload({ candidate: { candidate: 7 } })).toBeUndefined();
    expect(candidateFromPayload({ candidate: 'c', sdpMLineIndex: -1 })).toEqual({ candidate: 'c' });
  });
});
