/**
 * The demo page: random video calls with strangers (Start / Next / Stop, with a text chat inside
 * the call), room chat with its recent history (the Lobby panel), and who is around. Built on the
 * SDK in ../client; bundled to /app.js. Server strings only ever reach the page through
 * `textContent`.
 */
import { element } from './dom.ts';
import { createPresence } from './presence.ts';
import { createRoomsPanel } from './rooms.ts';
import { loadIceServers, serverUrl } from './server-config.ts';
import { createSelfView } from './self-view.ts';
import { loadSession, saveSession } from './session.ts';
import { createStrangerChat } from './stranger-chat.ts';
import {
  createClient,
  startCall,
  type AleatoriaClient,
  type Call,
  type CallEndReason,
  type ClientStatus,
  type Diagnosis,
  type ServerMessageOf,
  type StatusDetail,
} from '../client/index.ts';

declare global {
  interface Window {
    /** For end-to-end tests: the live client and the current call. */
    __aleatoria?: { client: AleatoriaClient; readonly call: Call | undefined };
  }
}

const MAX_ERRORS = 5;
/** The server's default room, where every connection starts (no `?room=` in the URL). */
const INITIAL_ROOM = 'Lobby';

const ui = {
  connectionStatus: element('connection-status', HTMLElement),
  errors: element('errors', HTMLElement),
  start: element('start', HTMLButtonElement),
  next: element('next', HTMLButtonElement),
  stop: element('stop', HTMLButtonElement),
  callStatus: element('call-status', HTMLElement),
  localVideo: element('local-video', HTMLVideoElement),
  remoteVideo: element('remote-video', HTMLVideoElement),
};
const selfView = createSelfView(ui.localVideo);

// ---- page state ---------------------------------------------------------------------------

/**
 * idle: never started; starting: asking for the camera; searching: asked for a peer; waiting: in
 * the pool after no_peer_available; in-call; ended: the stranger left; stopped: Stop pressed.
 */
type Phase = 'idle' | 'starting' | 'searching' | 'waiting' | 'in-call' | 'ended' | 'stopped';

let phase: Phase = 'idle';
let localStream: MediaStream | undefined;
let currentCall: Call | undefined;
/** The last stranger, so Next does not match the same one again. */
let skipPeerId: string | undefined;
let resolvedIceServers: RTCIceServer[] = [];

// ---- errors -------------------------------------------------------------------------------

function showError(text: string): void {
  const line = document.createElement('p');
  line.className = 'error';
  line.textContent = text;
  ui.errors.append(line);
  while (ui.errors.childElementCount > MAX_ERRORS) ui.errors.firstElementChild?.remove();
}

const DIAGNOSES: Record<Diagnosis, string> = {
  origin_not_allowed: "This page's origin is not allowed by the server (ALLOWED_ORIGINS).",
  bad_request: 'The server refused the connection request (invalid user id, room or token).',
  too_many_connections: 'Too many connections from this network address.',
  server_restarting: 'The server is restarting.',
  unreachable: 'The server cannot be reached.',
  user_id_taken: 'This user id is already connected in another tab or window.',
  replaced: 'This session was taken over by another tab or window.',
};

// ---- identity and configuration -------------------------------------------------------------

const iceServers = loadIceServers();
const session = loadSession();
const url = serverUrl();
const client = createClient({ url, userId: session.userId, token: session.token });
saveSession(client.userId, client.token);
const chat = createStrangerChat(client, showError);
const presence = createPresence(client, url);
const rooms = createRoomsPanel(client, {
  initialRoom: INITIAL_ROOM,
  showError,
  onSelect: presence.show,
});
/** The stranger of a call this page was in before a reload: its conversation is shown again. */
const restoredPartner = chat.restore();

// ---- connection status --------------------------------------------------------------------

const STATUS_TEXT: Record<ClientStatus, string> = {
  connecting: 'Connecting…',
  open: 'Connected',
  reconnecting: 'Reconnecting…',
  closed: 'Disconnected',
};

function renderConnection(status: ClientStatus, detail: StatusDetail): void {
  const why = detail.diagnosis ? ` ${DIAGNOSES[detail.diagnosis]}` : '';
  ui.connectionStatus.textContent = STATUS_TEXT[status] + why;
  ui.connectionStatus.dataset.status = status;
}

let openedBefore = false;

client.onStatus((status, detail) => {
  renderConnection(status, detail);
  if (status === 'open') {
    afterOpen(openedBefore);
    openedBefore = true;
  }
  if (status === 'closed' && detail.fatal) {
    showError(
      detail.diagnosis ? DIAGNOSES[detail.diagnosis] : 'The connection to the server was closed.',
    );
    // Signaling is gone for good; a call without it cannot renegotiate or be hung up properly.
    if (localStream) stop({ notify: false });
  }
});
renderConnection(client.status, {});

/** After a reconnect the server may have dropped this session: put back what it should know. */
function afterOpen(reconnected: boolean): void {
  if (reconnected) {
    // join_room is idempotent, so rejoining rooms the server kept is harmless.
    for (const room of rooms.joined()) client.joinRoom(room);
    if (phase === 'searching' || phase === 'waiting') enterPool(skipPeerId);
  } else if (restoredPartner && !currentCall) {
    // The reload ended this page's call; the server still pairs us: let the stranger know.
    client.hangup(restoredPartner, 'reload');
  }
  client.getRooms();
  presence.refresh();
}

client.on('error', (message) => showError(message.payload.error));
client.on('error_response', (message) =>
  showError(`${message.payload.error}: ${message.payload.details}`),
);

// ---- the call panel -----------------------------------------------------------------------

/** `data-call` says when the text is about a break being mended (styles.css shows it so). */
function setCallStatus(text: string, mending = false): void {
  ui.callStatus.textContent = text;
  if (mending) ui.callStatus.dataset.call = 'reconnecting';
  else delete ui.callStatus.dataset.call;
}

/**
 * The call line while a call is on: the stranger's signaling socket dropped (the server waits for
 * it), or the media path is being restored (ICE restart), or plain connecting / connected. Our
 * own socket's state is in #connection-status.
 */
function renderCall(call: Call): void {
  if (call.peerStatus === 'reconnecting') setCallStatus('Stranger reconnecting…', true);
  else if (call.state === 'reconnecting') setCallStatus('Reconnecting the call…', true);
  else if (call.state === 'connected') setCallStatus('Connected');
  else setCallStatus('Connecting…');
}

function updateControls(): void {
  const busy =
    phase === 'starting' || phase === 'searching' || phase === 'waiting' || phase === 'in-call';
  ui.start.disabled = busy;
  ui.next.disabled = !localStream || phase === 'starting';
  ui.stop.disabled = !localStream;
  chat.setEnabled(currentCall !== undefined);
}

function mediaErrorText(error: unknown): string {
  const name = error instanceof DOMException ? error.name : '';
  if (name === 'NotAllowedError') return 'Camera and microphone access was denied.';
  if (name === 'NotFoundError') return 'No camera or microphone was found.';
  if (name === 'NotReadableError')
    return 'The camera or microphone is in use by another application.';
  return 'The camera and microphone could not be started.';
}

async function start(): Promise<void> {
  if (phase === 'starting' || phase === 'searching' || phase === 'waiting' || phase === 'in-call')
    return;
  const previous = phase;
  phase = 'starting';
  updateControls();
  // Fresh TURN credentials from the server when it has them, /config.json's list otherwise: asked
  // for while the camera starts, not after (bench/README.md, "Calls": 9 ms p50, 94 ms p95).
  const servers = client.getIceServers().then(
    (reply) => (reply.iceServers.length > 0 ? reply.iceServers : iceServers),
    () => iceServers,
  );
  if (!localStream) {
    if (!navigator.mediaDevices?.getUserMedia) {
      showError('Camera access needs a secure page (https or localhost).');
      phase = previous;
      updateControls();
      return;
    }
    setCallStatus('Asking for your camera and microphone…');
    try {
      localStream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    } catch (error) {
      showError(mediaErrorText(error));
      setCallStatus('Press Start to try again.');
      phase = previous;
      updateControls();
      return;
    }
    // Shown once the request is answered: a match would start the call at the same moment.
    selfView.hold(localStream);
  }
  resolvedIceServers = await servers;
  enterPool(undefined);
}

/**
 * A state that usually passes in milliseconds (looking for a stranger, connecting) is shown only
 * once it has lasted this long. A flash of text is noise to the user, and drawing it lands on the
 * call's setup: on two vCPUs a repaint during the offer, ICE or DTLS delayed them by 5-15 ms
 * (bench/README.md, "Calls").
 */
const BRIEF_STATE_MS = 200;

function enterPool(skip: string | undefined): void {
  phase = 'searching';
  skipPeerId = skip;
  // Not connected: afterOpen sends these again on reconnect.
  client.setAvailable(true);
  client.requestRandomPeer(skip);
  setTimeout(() => {
    if (phase !== 'searching') return;
    setCallStatus('Looking for a stranger…');
    updateControls();
  }, BRIEF_STATE_MS);
}

function leaveCall(): string | undefined {
  const call = currentCall;
  currentCall = undefined;
  ui.remoteVideo.srcObject = null;
  chat.clear();
  if (!call) return undefined;
  if (call.state !== 'ended') call.hangup();
  return call.peerId;
}

function next(): void {
  if (!localStream || phase === 'starting') return;
  const previousPeer = leaveCall() ?? skipPeerId;
  enterPool(previousPeer);
}

function stop(options: { notify: boolean } = { notify: true }): void {
  const call = currentCall;
  currentCall = undefined;
  if (call && call.state !== 'ended') {
    if (options.notify) call.hangup();
    else call.close();
  }
  if (options.notify) client.setAvailable(false);
  for (const track of localStream?.getTracks() ?? []) track.stop();
  localStream = undefined;
  selfView.clear();
  ui.remoteVideo.srcObject = null;
  chat.clear();
  phase = 'stopped';
  setCallStatus('Stopped');
  updateControls();
}

function onCallEnded(reason: CallEndReason | undefined): void {
  currentCall = undefined;
  ui.remoteVideo.srcObject = null;
  if (localStream) selfView.show(localStream);
  phase = 'ended';
  // The server took both of us out of the pool when it matched us: stay out until Next or Start.
  setCallStatus(
    reason === 'failed'
      ? 'The connection to the stranger failed. Press Next to meet someone else.'
      : 'The stranger left. Press Next to meet someone else.',
  );
  updateControls();
}

function onAssignRole(message: ServerMessageOf<'assign_role'>): void {
  const { role, peerId } = message.payload;
  if (!localStream || phase === 'stopped' || phase === 'idle' || phase === 'starting') {
    // Matched just as we left the pool: tell the stranger rather than leave it waiting.
    client.hangup(peerId, 'unavailable');
    return;
  }
  const stream = localStream;
  // Matched again while in a call: the server has already told the previous stranger.
  const previous = currentCall;
  currentCall = undefined;
  previous?.close();
  // Started first, synchronously: the stranger may send its offer as soon as it has its own role,
  // and our own offer is on its way before the page's work below.
  const call = startCall({
    client,
    peerId,
    role,
    localStream: stream,
    iceServers: resolvedIceServers,
  });
  currentCall = call;
  selfView.hold(stream);
  chat.start(peerId);
  skipPeerId = peerId;
  phase = 'in-call';
  setTimeout(() => {
    if (call !== currentCall || call.state !== 'connecting') return;
    renderCall(call);
    updateControls();
  }, BRIEF_STATE_MS);
  // The video element keeps call.remoteStream through every blip: an ICE restart keeps the tracks.
  call.onState((state, reason) => {
    if (call !== currentCall) return;
    if (state === 'ended') {
      onCallEnded(reason);
      return;
    }
    renderCall(call);
    updateControls();
    if (state !== 'connected') return;
    // Not before: a video element given the stream while ICE and DTLS run slows them down.
    if (ui.remoteVideo.srcObject !== call.remoteStream)
      ui.remoteVideo.srcObject = call.remoteStream;
    ui.remoteVideo.play().catch(() => {
      // Autoplay may be refused until the user interacts; the video starts on the next click.
    });
  });
  call.onPeerStatus(() => {
    if (call === currentCall) renderCall(call);
  });
}

void iceServers.then((servers) => {
  if (resolvedIceServers.length === 0) resolvedIceServers = servers;
});

client.on('assign_role', onAssignRole);
// The self-view, held while a call is set up, comes back with the stranger's first frame (or the
// hold's time limit).
ui.remoteVideo.addEventListener('playing', () => {
  if (currentCall && localStream) selfView.show(localStream);
});
client.on('no_peer_available', () => {
  if (phase !== 'searching') return;
  // We stay in the pool: another user's request will match us (we then get role polite).
  phase = 'waiting';
  if (localStream) selfView.show(localStream);
  setCallStatus('Waiting for a stranger…');
  updateControls();
});

ui.start.addEventListener('click', () => void start());
ui.next.addEventListener('click', next);
ui.stop.addEventListener('click', () => stop());

// ---- chat ---------------------------------------------------------------------------------

client.on('chat_message', (message) => {
  if (message.room !== undefined)
    rooms.onMessage(message.room, message.fromUser ?? '', message.payload.content);
  else chat.onMessage(message);
});
client.onHistoryGap((gap) =>
  showError(
    `Some messages ${gap.room ? `in ${gap.room}` : `with ${gap.withUser}`} could not be recovered after the connection dropped.`,
  ),
);

// ---- start-up -----------------------------------------------------------------------------

window.__aleatoria = {
  client,
  get call() {
    return currentCall;
  },
};

if (restoredPartner)
  setCallStatus('The page was reloaded, which ended the call. Press Start to meet someone.');
updateControls();
