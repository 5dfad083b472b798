/**
 * The minimal page of `npm run bench:calls`: a bare RTCPeerConnection speaking our protocol over
 * one WebSocket, with no SDK and no demo page, the yardstick our page is compared with. It does
 * what the browser allows at the earliest moment: the camera is open before the request, the
 * impolite side offers in the `assign_role` handler itself, the polite side's tracks are added
 * up front (setRemoteDescription(offer) reuses their transceivers, JSEP 5.10), every candidate
 * is sent the moment it is gathered and applied the moment it arrives (addIceCandidate queues
 * behind a pending setRemoteDescription in the connection's operations chain, so no queue of
 * our own). Two prototypes, chosen per call: `prewarm` makes the connection (tracks and
 * `iceCandidatePoolSize: 1` included) before the request instead of on `assign_role`, and waits
 * `warmupMs` before requesting, as a user waiting in the pool or looking at the Start screen
 * would give it time to gather;
 * `maxBundle` sets `bundlePolicy: 'max-bundle'`, so the offerer gathers for one transport instead
 * of one per m-line (the default, 'balanced', drops the extra one only when the answer comes).
 * And two controls: `preview` shows the camera in a local video element, as our page does, to
 * price that on this machine's two cores; `viaNegotiationNeeded` makes the impolite side offer
 * from `negotiationneeded`, as our SDK does, instead of at once, to price that wait alone.
 * The bench serves it from 127.0.0.1 (a page fulfilled by Playwright would count as public and
 * Chromium's local network access checks would block its loopback socket), lets that origin in
 * with ALLOWED_ORIGINS, and drives it through `window.minimal`. `?server=host:port` is where the
 * socket goes.
 */
export const MINIMAL_PATH = '/bench-minimal.html';

export const MINIMAL_PAGE = `<!doctype html>
<meta charset="utf-8">
<title>minimal call</title>
<video id="remote" autoplay muted playsinline></video>
<video id="local" autoplay muted playsinline></video>
<script>
  const params = new URLSearchParams(location.search);
  const userId = params.get('userId');
  const remote = document.getElementById('remote');
  const local = document.getElementById('local');
  const ws = new WebSocket(
    'ws://' + params.get('server') + '/ws?userId=' + encodeURIComponent(userId));
  const opened = new Promise((resolve) => ws.addEventListener('open', resolve, { once: true }));
  const send = (message) => ws.send(JSON.stringify(message));
  let pc, stream, peerId, role, waiting, options;

  function makeConnection() {
    const config = {};
    if (options.prewarm) config.iceCandidatePoolSize = 1;
    if (options.maxBundle) config.bundlePolicy = 'max-bundle';
    const connection = new RTCPeerConnection(config);
    for (const track of stream.getTracks()) connection.addTrack(track, stream);
    connection.onicecandidate = ({ candidate }) =>
      send({
        type: 'webrtc_candidate', toUser: peerId,
        payload: { candidate: candidate && candidate.toJSON() },
      });
    connection.ontrack = ({ streams }) => { remote.srcObject = streams[0]; };
    if (options.viaNegotiationNeeded)
      connection.onnegotiationneeded = () => { if (role === 'impolite') void offer(); };
    return connection;
  }

  async function offer() {
    await pc.setLocalDescription();
    const payload = { type: 'offer', sdp: pc.localDescription.sdp };
    send({ type: 'webrtc_offer', toUser: peerId, payload });
  }

  async function getReady(callOptions) {
    options = callOptions;
    stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    if (options.preview) local.srcObject = stream;
    pc = options.prewarm ? makeConnection() : undefined;
    if (options.prewarm) await new Promise((resolve) => setTimeout(resolve, options.warmupMs));
  }

  function end() {
    if (pc) pc.close();
    for (const track of stream ? stream.getTracks() : []) track.stop();
    local.srcObject = remote.srcObject = null;
    pc = stream = peerId = role = undefined;
  }

  ws.onmessage = async (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'no_peer_available' && waiting) waiting();
    else if (message.type === 'assign_role') {
      peerId = message.payload.peerId;
      role = message.payload.role;
      pc = pc || makeConnection();
      if (role === 'impolite' && !options.viaNegotiationNeeded) await offer();
    } else if (!pc || message.fromUser !== peerId) return;
    else if (message.type === 'webrtc_offer') {
      await pc.setRemoteDescription(message.payload);
      await pc.setLocalDescription();
      const payload = { type: 'answer', sdp: pc.localDescription.sdp };
      send({ type: 'webrtc_answer', toUser: peerId, payload });
    } else if (message.type === 'webrtc_answer') {
      await pc.setRemoteDescription(message.payload);
    } else if (message.type === 'webrtc_candidate') {
      const candidate = message.payload && message.payload.candidate;
      pc.addIceCandidate(candidate || undefined).catch((error) => console.error(error));
    } else if (message.type === 'hangup') end();
  };

  window.minimal = {
    /** The polite side: in the pool, resolved once the server said nobody else is (as our page). */
    async wait(callOptions) {
      await opened;
      await getReady(callOptions);
      const answered = new Promise((resolve) => { waiting = resolve; });
      send({ type: 'user_available_webrtc' });
      send({ type: 'request_random_peer' });
      await answered;
      waiting = undefined;
    },
    /** The impolite side: the "click" is now, then the camera, then the request. */
    async call(callOptions) {
      window.__timeline.marks.click = performance.timeOrigin + performance.now();
      await opened;
      await getReady(callOptions);
      send({ type: 'user_available_webrtc' });
      send({ type: 'request_random_peer' });
    },
    hangup() {
      send({ type: 'hangup', toUser: peerId });
      end();
    },
    idle: () => pc === undefined,
  };
</script>
`;
