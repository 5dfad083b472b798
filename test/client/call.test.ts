import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  candidateFromPayload,
  startCall,
  type AleatoriaClient,
  type CallEndReason,
  type CallOptions,
  type CallState,
  type ClientMessage,
  type MessageHandler,
  type ServerMessage,
  type ServerMessageType,
} from '../../src/client/index.ts';

/** The signaling side of a client: records sent messages, delivers server messages to subscribers. */
function fakeSignaling() {
  const sent: ClientMessage[] = [];
  const handlers = new Map<string, Set<(message: ServerMessage) => void>>();
  const client: Pick<AleatoriaClient, 'send' | 'on'> = {
    send(message) {
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
  };
  return {
    client,
    sent,
    deliver(message: ServerMessage) {
      for (const handler of [...(handlers.get(message.type) ?? [])]) handler(message);
    },
    listenerCount: () => [...handlers.values()].reduce((sum, set) => sum + set.size, 0),
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
    this.localDescription = { type, sdp: `${type}-${++sdpCounter}` };
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

function setup(role: 'polite' | 'impolite', overrides: Partial<CallOptions> = {}) {
  const signaling = fakeSignaling();
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
  it('adds the local tracks, passes the ICE servers and offers when negotiation is needed', async () => {
    const { pc, call, sentOfType } = setup('impolite');
    expect(pc.config.iceServers).toEqual([{ urls: 'stun:stun.example:3478' }]);
    expect(pc.tracks).toEqual(['mic', 'cam']);
    expect(call.peerId).toBe(PEER);
    expect(call.role).toBe('impolite');
    expect(call.state).toBe('connecting');
    await pc.onnegotiationneeded?.();
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

  it('polite side: adds its tracks only once the first offer is applied, and answers with them', async () => {
    const { pc, signaling, sentOfType } = setup('polite');
    expect(pc.tracks).toEqual([]);
    signaling.deliver(offer('their-offer'));
    await settle();
    expect(pc.remoteDescriptionsSet).toEqual([{ type: 'offer', sdp: 'their-offer' }]);
    expect(pc.tracks).toEqual(['mic', 'cam']);
    expect(sentOfType('webrtc_answer')).toHaveLength(1);
    // A renegotiation later does not add them twice.
    signaling.deliver(offer('second-offer'));
    await settle();
    expect(pc.tracks).toEqual(['mic', 'cam']);
  });

  it('polite side: rolls back its own offer and answers a colliding one', async () => {
    const { pc, signaling, sentOfType } = setup('polite');
    await pc.onnegotiationneeded?.();
    expect(pc.signalingState).toBe('have-local-offer');
    signaling.deliver(offer('their-offer'));
    await settle();
    expect(pc.rolledBack).toBe(1);
    expect(pc.remoteDescriptionsSet).toEqual([{ type: 'offer', sdp: 'their-offer' }]);
    expect(sentOfType('webrtc_answer')).toHaveLength(1);
  });

  it('polite side: accepts an offer that arrives while its own is still being made', async () => {
    const { pc, signaling, sentOfType } = setup('polite');
    const making = pc.onnegotiationneeded?.();
    signaling.deliver(offer('their-offer'));
    await making;
    await settle();
    expect(pc.remoteDescriptionsSet).toEqual([{ type: 'offer', sdp: 'their-offer' }]);
    expect(sentOfType('webrtc_answer')).toHaveLength(1);
  });

  it('impolite side: ignores a colliding offer and keeps its own', async () => {
    const { pc, signaling, sentOfType, errors } = setup('impolite');
    await pc.onnegotiationneeded?.();
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

  it('follows the connection state: connecting, connected, and failed ends the call and tells the peer', () => {
    const { call, pc, states, sentOfType } = setup('polite');
    pc.setConnectionState('connecting');
    pc.setConnectionState('connected');
    expect(call.state).toBe('connected');
    pc.setConnectionState('disconnected');
    expect(call.state).toBe('connecting');
    pc.setConnectionState('failed');
    expect(states).toEqual([
      ['connected', undefined],
      ['connecting', undefined],
      ['ended', 'failed'],
    ]);
    expect(sentOfType('hangup')).toEqual([
      { type: 'hangup', toUser: PEER, payload: { reason: 'failed' } },
    ]);
    expect(pc.closed).toBe(true);
  });

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
