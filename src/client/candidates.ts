/**
 * ICE candidates on the wire: reading the `webrtc_candidate` payloads peers send (the spec types
 * the candidate `interface{}`, so several shapes come), writing ours, and telling which ICE
 * generation a candidate or a description belongs to (an ICE restart changes the ufrag).
 */

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
 * The candidate of a `webrtc_candidate` payload: an `RTCIceCandidateInit` (what `toJSON()`
 * gives), a bare candidate string with `sdpMid` / `sdpMLineIndex` beside it in the payload, or
 * null (as the candidate or the whole payload) for end-of-candidates. `undefined` when it is none
 * of these.
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
export function candidateToJson(candidate: RTCIceCandidate) {
  const { candidate: line, sdpMid, sdpMLineIndex, usernameFragment } = candidate.toJSON();
  return { candidate: line, sdpMid, sdpMLineIndex, usernameFragment };
}

/**
 * The ICE username fragment of a description (its first `a=ice-ufrag:` line: with BUNDLE every
 * section shares it). Each ICE restart draws a new one, so it names the generation.
 */
export function iceUfrag(sdp: string | undefined): string | undefined {
  return sdp === undefined ? undefined : /^a=ice-ufrag:(\S+)/m.exec(sdp)?.[1];
}

/** The ufrag a candidate names (in its init or, as Chromium writes it, in its line), if any. */
export function candidateUfrag(candidate: RTCIceCandidateInit): string | undefined {
  if (candidate.usernameFragment) return candidate.usernameFragment;
  return candidate.candidate ? / ufrag (\S+)/.exec(candidate.candidate)?.[1] : undefined;
}
