/**
 * One WebRTC call with one peer, signaled through an {@link AleatoriaClient}. Negotiation follows
 * the "perfect negotiation" pattern (W3C webrtc-pc, MDN "Establishing a connection: The WebRTC
 * perfect negotiation pattern"): both sides may offer at any time; on a collision the polite side
 * rolls back and answers, the impolite side ignores the incoming offer. The server's
 * `assign_role` decides who is which, so the two sides always disagree.
 */
import type { AleatoriaClient, ServerMessageOf } from './client.ts';

/** `impolite` is the requester of `request_random_peer`, `polite` its partner. */
export type CallRole = 'polite' | 'impolite';

export type CallState = 'connecting' | 'connected' | 'ended';

/**
 * Why a call ended: `hangup` (the peer hung up), `peer_left` (the peer was matched with someone
 * else), `peer_disconnected` (the peer's socket closed), `failed` (ICE failed), `local` (this side
 * called `hangup()` or `close()`).
 */
export type CallEndReason = 'hangup' | 'peer_left' | 'peer_disconnected' | 'failed' | 'local';

export type CallStateHandler = (state: CallState, reason?: CallEndReason) => void;

/** Inputs of {@link startCall}. */
export interface CallOptions {
  /** The signaling connection (only `send` and `on` are used). */
  client: Pick<AleatoriaClient, 'send' | 'on'>;
  /** The other user, from `assign_role`'s `peerId`. */
  peerId: string;
  /** This side's role, from `assign_role`'s `role`. */
  role: CallRole;
  /** Tracks to send; without it, the call only receives. */
  localStream?: MediaStream;
  iceServers?: RTCIceServer[];
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
  /** Calls `handler` on every state change (`ended` comes with its reason); returns the unsubscribe function. */
  onState(handler: CallStateHandler): () => void;
  /** Sends `hangup` to the peer, then ends the call. */
  hangup(reason?: string): void;
  /** Ends the call without telling the peer. */
  close(): void;
}

type Payload = Record<string, unknown>;

function isRecord(value: unknown): value is Payload {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optionalString(value: unknown): string | null | undefined {
  return typeof value === 'string' || value === null ? value : undefined;
}

function optionalIndex(value: unknown): number | null | undefined {
  return (typeof value === 'number' && Number.isInteger(value) && value >= 0) || value === null
    ? value
    : undefined;
}

/**
 * The candidate of a `webrtc_candidate` payload, which the spec types `interface{}`: an
 * `RTCIceCandidateInit` (what `toJSON()` gives), a bare candidate string with `sdpMid` /
 * `sdpMLineIndex` beside it in the payload, or null (as the candidate or the whole payload) for
 * end-of-candidates. `undefined` when it is
 * none of these.
 */
export function candidateFromPayload(
  payload: Payload | null,
): RTCIceCandidateInit | null | undefined {
  // `payload: null`: a peer that sent `e.candidate` itself at the end of gathering.
  if (payload === null) return null;
  const raw = payload.candidate;
  if (raw === null || raw === undefined) return null;
  let candidate: string;
  let source: Payload;
  if (typeof raw === 'string') {
    candidate = raw;
    source = payload;
  } else if (isRecord(raw) && (typeof raw.candidate === 'string' || raw.candidate == null)) {
    candidate = raw.candidate ?? '';
    source = raw;
  } else {
    return undefined;
  }
  const init: RTCIceCandidateInit = { candidate };
  // A position missing from the object may sit beside it in the payload.
  const sdpMid = optionalString(source.sdpMid) ?? optionalString(payload.sdpMid);
  const sdpMLineIndex = optionalIndex(source.sdpMLineIndex) ?? optionalIndex(payload.sdpMLineIndex);
  const usernameFragment =
    optionalString(source.usernameFragment) ?? optionalString(payload.usernameFragment);
  if (sdpMid !== undefined) init.sdpMid = sdpMid;
  if (sdpMLineIndex !== undefined) init.sdpMLineIndex = sdpMLineIndex;
  if (usernameFragment !== undefined) init.usernameFragment = usernameFragment;
  return init;
}

/** `candidate.toJSON()` as a plain object literal (the protocol type wants an open record). */
function candidateToJson(candidate: RTCIceCandidate) {
  const { candidate: line, sdpMid, sdpMLineIndex, usernameFragment } = candidate.toJSON();
  return { candidate: line, sdpMid, sdpMLineIndex, usernameFragment };
}

function endReasonFromHangup(message: ServerMessageOf<'hangup'>): CallEndReason {
  // Any JSON may come as a hangup's payload; only the server's own reasons mean something here.
  const reason = isRecord(message.payload) ? message.payload.reason : undefined;
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
  let deferredStream: MediaStream | undefined;
  const reportError =
    options.onError ?? ((error: unknown) => console.error('aleatoria call:', error));

  const pc = new PeerConnection({ iceServers: options.iceServers ?? [] });
  const remoteStream = new Stream();
  const stateHandlers = new Set<CallStateHandler>();
  let state: CallState = 'connecting';
  let endReason: CallEndReason | undefined;
  let makingOffer = false;
  let ignoreOffer = false;
  // Candidates that arrive before the description they belong to cannot be added yet.
  const pendingCandidates: (RTCIceCandidateInit | null)[] = [];

  // A function, not `state === 'ended'` inline: TypeScript would keep the narrowing across awaits.
  const ended = (): boolean => state === 'ended';

  function setState(next: CallState, reason?: CallEndReason): void {
    if (next === state) return;
    state = next;
    for (const handler of [...stateHandlers]) handler(next, reason);
  }

  function sendDescription(description: RTCSessionDescription | null): void {
    if (!description || ended()) return;
    const payload = { type: description.type, sdp: description.sdp };
    if (description.type === 'offer')
      client.send({ type: 'webrtc_offer', toUser: peerId, payload });
    else if (description.type === 'answer')
      client.send({ type: 'webrtc_answer', toUser: peerId, payload });
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

  async function onDescription(description: RTCSessionDescriptionInit): Promise<void> {
    if (ended()) return;
    try {
      const offerCollision =
        description.type === 'offer' && (makingOffer || pc.signalingState !== 'stable');
      ignoreOffer = !polite && offerCollision;
      if (ignoreOffer) return;
      // On a collision the polite side's offer is rolled back implicitly.
      await pc.setRemoteDescription(description);
      if (ended()) return;
      // Queued in the connection's operation chain, in arrival order, ahead of the answer.
      for (const candidate of pendingCandidates.splice(0)) void addCandidate(candidate);
      if (description.type === 'offer') {
        addDeferredTracks();
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
    else void addCandidate(candidate);
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
  ];

  /** Ends the call once; with `notify`, tells the peer first (`notify.reason` becomes the hangup's payload). */
  function end(reason: CallEndReason, notify?: { reason?: string }): void {
    if (ended()) return;
    for (const off of unsubscribe) off();
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
    client.send({
      type: 'webrtc_candidate',
      toUser: peerId,
      payload: { candidate: candidate ? candidateToJson(candidate) : null },
    });
  };

  pc.onnegotiationneeded = async () => {
    try {
      makingOffer = true;
      await pc.setLocalDescription();
      sendDescription(pc.localDescription);
    } catch (error) {
      if (!ended()) reportError(error);
    } finally {
      makingOffer = false;
    }
  };

  pc.onconnectionstatechange = () => {
    switch (pc.connectionState) {
      case 'connected':
        setState('connected');
        break;
      case 'failed':
        // Tell the peer: its side may still hope for ICE to recover.
        end('failed', { reason: 'failed' });
        break;
      case 'closed':
        end('local');
        break;
      default:
        // new, connecting, and disconnected (which may recover on its own).
        setState('connecting');
    }
  };

  /**
   * The polite side adds its tracks once the first offer is applied: they then ride the offer's
   * transceivers and go out in the answer, one round trip in all. Added up front, they would start
   * a colliding offer of their own and a second negotiation to send them.
   */
  function addDeferredTracks(): void {
    if (!deferredStream) return;
    for (const track of deferredStream.getTracks()) pc.addTrack(track, deferredStream);
    deferredStream = undefined;
  }

  if (options.localStream && polite) {
    deferredStream = options.localStream;
  } else if (options.localStream) {
    for (const track of options.localStream.getTracks()) pc.addTrack(track, options.localStream);
  } else if (!polite) {
    // Nothing to send: the impolite side still offers to receive, so negotiation starts.
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
  }

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
    onState(handler) {
      stateHandlers.add(handler);
      return () => {
        stateHandlers.delete(handler);
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
