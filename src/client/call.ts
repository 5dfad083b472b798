/**
 * One WebRTC call with one peer, signaled through an {@link AleatoriaClient}. Negotiation follows
 * the "perfect negotiation" pattern (W3C webrtc-pc, MDN "Establishing a connection: The WebRTC
 * perfect negotiation pattern"): both sides may offer at any time; on a collision the polite side
 * rolls back and answers, the impolite side ignores the incoming offer. The server's
 * `assign_role` decides who is which, so the two sides always disagree. The first negotiation is
 * one round trip with no wait: the impolite side offers the moment the call starts, the polite side
 * answers it with its tracks (added up front, they ride the offer's transceivers) and offers only
 * after that (a renegotiation, an ICE restart). Measured: bench/README.md, "Calls".
 *
 * A call survives blips: its signaling waits in a queue while the client's socket reconnects
 * (`signal-queue.ts`), the peer's own socket dropping shows as `peerStatus` (the server says so
 * with `user_status`), and a media path that breaks is restored by an ICE restart through the same
 * negotiation (`ice-recovery.ts`). See docs/calls.md.
 */
import { candidateFromPayload, candidateToJson, candidateUfrag, iceUfrag } from './candidates.ts';
import type { AleatoriaClient, ServerMessageOf } from './client.ts';
import { createIceRecovery, type IceRecoveryOptions } from './ice-recovery.ts';
import { createSignalQueue } from './signal-queue.ts';

/** `impolite` is the requester of `request_random_peer`, `polite` its partner. */
export type CallRole = 'polite' | 'impolite';

/**
 * `connecting` until media first flows; `connected`; `reconnecting` while a media path that had
 * connected is being restored (ICE restart); `ended`, final.
 */
export type CallState = 'connecting' | 'connected' | 'reconnecting' | 'ended';

/**
 * Why a call ended: `hangup` (the peer hung up), `peer_left` (the peer was matched with someone
 * else), `peer_disconnected` (the peer's socket closed, or stayed away past the server's resume
 * window), `failed` (the media path could not be restored), `local` (this side called `hangup()`
 * or `close()`).
 */
export type CallEndReason = 'hangup' | 'peer_left' | 'peer_disconnected' | 'failed' | 'local';

/** `reconnecting`: the peer's signaling socket dropped and the server waits for it to come back. */
export type PeerStatus = 'online' | 'reconnecting';

export type CallStateHandler = (state: CallState, reason?: CallEndReason) => void;

/** Inputs of {@link startCall}. */
export interface CallOptions {
  /** The signaling connection. */
  client: Pick<AleatoriaClient, 'send' | 'on' | 'onStatus' | 'status'>;
  /** The other user, from `assign_role`'s `peerId`. */
  peerId: string;
  /** This side's role, from `assign_role`'s `role`. */
  role: CallRole;
  /** Tracks to send; without it, the call only receives. */
  localStream?: MediaStream;
  iceServers?: RTCIceServer[];
  /** When to restart ICE and when to give up. */
  recovery?: IceRecoveryOptions;
  RTCPeerConnection?: typeof RTCPeerConnection;
  MediaStream?: typeof MediaStream;
  /** Negotiation errors that do not end the call (default: `console.error`). */
  onError?: (error: unknown) => void;
}

/** A call made by {@link startCall}. */
export interface Call {
  readonly pc: RTCPeerConnection;
  /** Filled with the peer's tracks as they arrive; attach it to a video element at once. */
  readonly remoteStream: MediaStream;
  readonly peerId: string;
  readonly role: CallRole;
  readonly state: CallState;
  readonly endReason: CallEndReason | undefined;
  readonly peerStatus: PeerStatus;
  /** Calls `handler` on every state change (`ended` comes with its reason); returns the unsubscribe function. */
  onState(handler: CallStateHandler): () => void;
  /** Calls `handler` when the peer's signaling socket drops or comes back; returns the unsubscribe function. */
  onPeerStatus(handler: (status: PeerStatus) => void): () => void;
  /** Sends `hangup` to the peer (if the socket is open: it is not queued), then ends the call. */
  hangup(reason?: string): void;
  /** Ends the call without telling the peer. */
  close(): void;
}

function endReasonFromHangup(message: ServerMessageOf<'hangup'>): CallEndReason {
  // Any JSON may come as a hangup's payload; only the server's own reasons mean something here.
  const payload = message.payload;
  const reason =
    typeof payload === 'object' && payload !== null && !Array.isArray(payload)
      ? (payload as Record<string, unknown>).reason
      : undefined;
  return reason === 'peer_left' || reason === 'peer_disconnected' ? reason : 'hangup';
}

/**
 * Starts a call with `peerId`. Call it synchronously from the `assign_role` handler: the peer may
 * send its offer as soon as it has its own `assign_role`, and messages that arrive before the call
 * subscribes are not replayed. Signaling from any user other than `peerId` is ignored.
 */
export function startCall(options: CallOptions): Call {
  const PeerConnection = options.RTCPeerConnection ?? globalThis.RTCPeerConnection;
  const Stream = options.MediaStream ?? globalThis.MediaStream;
  const { client, peerId, role } = options;
  const polite = role === 'polite';
  const reportError =
    options.onError ?? ((error: unknown) => console.error('aleatoria call:', error));

  const pc = new PeerConnection({ iceServers: options.iceServers ?? [] });
  const remoteStream = new Stream();
  const stateHandlers = new Set<CallStateHandler>();
  const peerHandlers = new Set<(status: PeerStatus) => void>();
  let state: CallState = 'connecting';
  let endReason: CallEndReason | undefined;
  let peerStatus: PeerStatus = 'online';
  let everConnected = false;
  let makingOffer = false;
  let ignoreOffer = false;
  /** The polite side has applied the peer's first offer: its own offers may follow. */
  let offered = false;
  /** The ufrag of the remote description applied last (or being applied): the live generation. */
  let remoteUfrag: string | undefined;
  /** A restart asked for while the socket was down: its offer would only wait in the queue. */
  let restartWhenOpen = false;
  // Candidates that arrive before the description they belong to cannot be added yet.
  const pendingCandidates: (RTCIceCandidateInit | null)[] = [];

  // A function, not `state === 'ended'` inline: TypeScript would keep the narrowing across awaits.
  const ended = (): boolean => state === 'ended';

  const signals = createSignalQueue({
    client,
    // A candidate of an ICE generation this side has since restarted away from is useless.
    isStale: (message) => {
      if (message.type !== 'webrtc_candidate') return false;
      const candidate = candidateFromPayload(message.payload);
      const ufrag = candidate ? candidateUfrag(candidate) : undefined;
      const current = iceUfrag(pc.localDescription?.sdp);
      return ufrag !== undefined && current !== undefined && ufrag !== current;
    },
  });

  const recovery = createIceRecovery({
    polite,
    restart: restartIce,
    fail: () => end('failed', { reason: 'failed' }),
    ...(options.recovery ? { options: options.recovery } : {}),
  });

  function restartIce(): void {
    restartWhenOpen = client.status !== 'open';
    // negotiationneeded follows, and its offer carries fresh credentials.
    if (!restartWhenOpen) pc.restartIce();
  }

  function setState(next: CallState, reason?: CallEndReason): void {
    if (next === state) return;
    state = next;
    for (const handler of [...stateHandlers]) handler(next, reason);
  }

  function setPeerStatus(next: PeerStatus): void {
    if (next === peerStatus) return;
    peerStatus = next;
    for (const handler of [...peerHandlers]) handler(next);
  }

  function sendDescription(description: RTCSessionDescription | null): void {
    if (!description || ended()) return;
    const payload = { type: description.type, sdp: description.sdp };
    if (description.type === 'offer')
      signals.send({ type: 'webrtc_offer', toUser: peerId, payload });
    else if (description.type === 'answer')
      signals.send({ type: 'webrtc_answer', toUser: peerId, payload });
  }

  async function addCandidate(candidate: RTCIceCandidateInit | null): Promise<void> {
    try {
      // No argument is end-of-candidates.
      await (candidate === null ? pc.addIceCandidate() : pc.addIceCandidate(candidate));
    } catch (error) {
      // Candidates of an offer we ignored are expected to fail.
      if (!ignoreOffer && !ended()) reportError(error);
    }
  }

  /** Candidates of an earlier ICE generation (before a restart) would only fail to be added. */
  function isCurrent(candidate: RTCIceCandidateInit | null): boolean {
    const ufrag = candidate ? candidateUfrag(candidate) : undefined;
    return ufrag === undefined || remoteUfrag === undefined || ufrag === remoteUfrag;
  }

  async function onDescription(description: RTCSessionDescriptionInit): Promise<void> {
    if (ended()) return;
    try {
      const offerCollision =
        description.type === 'offer' && (makingOffer || pc.signalingState !== 'stable');
      ignoreOffer = !polite && offerCollision;
      if (ignoreOffer) return;
      // Set before the await: candidates of this description may arrive while it is applied.
      remoteUfrag = iceUfrag(description.sdp) ?? remoteUfrag;
      if (description.type === 'offer') recovery.remoteOffer();
      // On a collision the polite side's offer is rolled back implicitly.
      await pc.setRemoteDescription(description);
      if (ended()) return;
      // Queued in the connection's operation chain, in arrival order, ahead of the answer.
      for (const candidate of pendingCandidates.splice(0))
        if (isCurrent(candidate)) void addCandidate(candidate);
      if (description.type === 'offer') {
        offered = true;
        await pc.setLocalDescription();
        sendDescription(pc.localDescription);
      }
    } catch (error) {
      if (!ended()) reportError(error);
    }
  }

  function onCandidate(candidate: RTCIceCandidateInit | null | undefined): void {
    if (ended() || candidate === undefined) return;
    if (!pc.remoteDescription) pendingCandidates.push(candidate);
    else if (isCurrent(candidate)) void addCandidate(candidate);
  }

  function onPeerStatus(message: ServerMessageOf<'user_status'>): void {
    // The call's own notices carry no room; a room's presence notices about the peer do.
    if (message.room !== undefined || message.payload.userId !== peerId) return;
    const status: string = message.payload.status;
    if (status !== 'online' && status !== 'reconnecting') return;
    const wasAway = peerStatus === 'reconnecting';
    setPeerStatus(status);
    // An offer sent while the peer was away may have found nobody: say it again.
    if (wasAway && status === 'online' && pc.signalingState === 'have-local-offer')
      sendDescription(pc.localDescription);
  }

  const unsubscribe = [
    client.on('webrtc_offer', (message) => {
      if (message.fromUser === peerId)
        void onDescription({ type: 'offer', sdp: message.payload.sdp });
    }),
    client.on('webrtc_answer', (message) => {
      if (message.fromUser === peerId)
        void onDescription({ type: 'answer', sdp: message.payload.sdp });
    }),
    client.on('webrtc_candidate', (message) => {
      if (message.fromUser === peerId) onCandidate(candidateFromPayload(message.payload));
    }),
    client.on('hangup', (message) => {
      if (message.fromUser === peerId) end(endReasonFromHangup(message));
    }),
    client.on('user_status', onPeerStatus),
    client.onStatus((status) => {
      if (status === 'open' && restartWhenOpen && recovery.active) restartIce();
    }),
  ];

  /** Ends the call once; with `notify`, tells the peer first (`notify.reason` becomes the hangup's payload). */
  function end(reason: CallEndReason, notify?: { reason?: string }): void {
    if (ended()) return;
    for (const off of unsubscribe) off();
    signals.dispose();
    recovery.stop();
    if (notify) {
      client.send(
        notify.reason
          ? { type: 'hangup', toUser: peerId, payload: { reason: notify.reason } }
          : { type: 'hangup', toUser: peerId },
      );
    }
    pc.onnegotiationneeded = null;
    pc.onicecandidate = null;
    pc.ontrack = null;
    pc.onconnectionstatechange = null;
    pc.close();
    endReason = reason;
    setState('ended', reason);
  }

  pc.ontrack = ({ track }) => {
    if (!remoteStream.getTracks().includes(track)) remoteStream.addTrack(track);
  };

  pc.onicecandidate = ({ candidate }) => {
    if (ended()) return;
    signals.send({
      type: 'webrtc_candidate',
      toUser: peerId,
      payload: { candidate: candidate ? candidateToJson(candidate) : null },
    });
  };

  async function makeOffer(): Promise<void> {
    try {
      makingOffer = true;
      await pc.setLocalDescription();
      sendDescription(pc.localDescription);
    } catch (error) {
      if (!ended()) reportError(error);
    } finally {
      makingOffer = false;
    }
  }

  pc.onnegotiationneeded = () => {
    // The polite side's tracks go out in its answer to the first offer, not in an offer of its own
    // (which would collide, roll back and cost a second negotiation); an offer being made, or one
    // awaiting its answer, already carries what was added.
    if ((polite && !offered) || makingOffer || pc.signalingState !== 'stable') return;
    return makeOffer();
  };

  pc.onconnectionstatechange = () => {
    switch (pc.connectionState) {
      case 'connected':
        everConnected = true;
        recovery.recovered();
        setState('connected');
        break;
      case 'disconnected':
      case 'failed':
        // Not the end: a restart finds new paths; the recovery gives up after a bounded time.
        recovery.lost();
        setState(everConnected ? 'reconnecting' : 'connecting');
        break;
      case 'closed':
        end('local');
        break;
      default:
        // new, connecting: during a restart, still reconnecting.
        setState(everConnected && recovery.active ? 'reconnecting' : 'connecting');
    }
  };

  if (options.localStream) {
    for (const track of options.localStream.getTracks()) pc.addTrack(track, options.localStream);
  } else if (!polite) {
    // Nothing to send: the impolite side still offers to receive.
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
  }
  // The impolite side offers now rather than on the next task's negotiationneeded, which a busy
  // page delays (7-14 ms measured against 1-3 ms in a bare one).
  if (!polite) void makeOffer();

  return {
    pc,
    remoteStream,
    peerId,
    role,
    get state() {
      return state;
    },
    get endReason() {
      return endReason;
    },
    get peerStatus() {
      return peerStatus;
    },
    onState(handler) {
      stateHandlers.add(handler);
      return () => {
        stateHandlers.delete(handler);
      };
    },
    onPeerStatus(handler) {
      peerHandlers.add(handler);
      return () => {
        peerHandlers.delete(handler);
      };
    },
    hangup(reason) {
      end('local', reason === undefined ? {} : { reason });
    },
    close() {
      end('local');
    },
  };
}
