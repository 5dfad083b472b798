/**
 * The timeline probe of `npm run bench:calls`: an init script installed in every page (ours and
 * the minimal one) before the page's own script. It stamps, once per call, the first time each
 * thing happens: every frame sent and received by type (`sent:webrtc_offer`, `recv:assign_role`),
 * getUserMedia, the page's calls to addTrack and set{Local,Remote}Description (start and end),
 * and the RTCPeerConnection's own events (candidates, ICE and DTLS transport states, connection
 * state, first remote video frame decoded). Stamps are performance.timeOrigin +
 * performance.now(): every page of one machine reads the same clock, so A's and B's stamps can be
 * subtracted. Plain JavaScript text, since tsx's transform would add helpers the page does not
 * have; it wraps the constructors rather than the page's handlers, so the page's code runs as is.
 */
export const PROBE = `(() => {
  const now = () => performance.timeOrigin + performance.now();
  const timeline = {
    marks: {},
    reset() { timeline.marks = {}; },
  };
  window.__timeline = timeline;
  // The first occurrence per call only: later candidates or a renegotiation must not move a phase.
  const mark = (name, at) => { if (!(name in timeline.marks)) timeline.marks[name] = at ?? now(); };
  // The last occurrence: the end of a burst (both tracks added).
  const markLast = (name) => { timeline.marks[name] = now(); };
  const typeOf = (data) => {
    if (typeof data !== 'string') return undefined;
    try {
      const message = JSON.parse(data);
      return message && message.type;
    } catch {
      return undefined;
    }
  };

  // Outgoing frames: stamped when the page hands them to its socket.
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    const at = now();
    const type = typeOf(data);
    if (type) mark('sent:' + type, at);
    return send.call(this, data);
  };
  // Incoming frames: a listener added in the constructor runs before any the page adds later
  // (the SDK's onmessage included), so the stamp is when the frame reaches the page's JavaScript.
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (event) => {
        const at = now();
        const type = typeOf(event.data);
        if (type) mark('recv:' + type, at);
      });
    }
  };

  // The user's gesture (our page's Start button; the minimal page marks it itself) and the camera.
  addEventListener('click', () => mark('click'), true);
  const media = navigator.mediaDevices;
  const getUserMedia = media.getUserMedia.bind(media);
  media.getUserMedia = async (constraints) => {
    mark('gum:start');
    const stream = await getUserMedia(constraints);
    mark('gum:done');
    return stream;
  };

  // The first remote video frame decoded: getStats every 2 ms, only between 'connected' (nothing
  // can be decrypted before DTLS is up) and the first frame, so the polling stays out of the
  // phases before it. Identical in both pages.
  const watchFrames = async (pc) => {
    while (pc.connectionState === 'connected' && !('video:first-frame' in timeline.marks)) {
      let frames = 0;
      (await pc.getStats()).forEach((report) => {
        if (report.type === 'inbound-rtp' && report.kind === 'video')
          frames += report.framesDecoded || 0;
      });
      if (frames > 0) mark('video:first-frame');
      else await new Promise((resolve) => setTimeout(resolve, 2));
    }
  };

  const NativePeerConnection = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends NativePeerConnection {
    constructor(...args) {
      super(...args);
      mark('pc:created');
      const watched = new WeakSet();
      // The DTLS and ICE transports exist once a description is applied: look for them then.
      const watchTransports = () => {
        for (const transceiver of this.getTransceivers()) {
          const dtls = transceiver.sender.transport;
          if (!dtls || watched.has(dtls)) continue;
          watched.add(dtls);
          dtls.addEventListener('statechange', () => mark('dtls:' + dtls.state));
          dtls.iceTransport.addEventListener('selectedcandidatepairchange', () =>
            mark('ice:selected-pair'));
        }
      };
      this.addEventListener('signalingstatechange', () => {
        mark('signaling:' + this.signalingState);
        watchTransports();
      });
      this.addEventListener('negotiationneeded', () => mark('pc:negotiationneeded'));
      this.addEventListener('icecandidate', (event) =>
        mark(event.candidate ? 'ice:local-candidate' : 'ice:gathering-done'));
      this.addEventListener('iceconnectionstatechange', () =>
        mark('ice:' + this.iceConnectionState));
      this.addEventListener('connectionstatechange', () => {
        mark('pc:' + this.connectionState);
        if (this.connectionState === 'connected') void watchFrames(this);
      });
      this.addEventListener('track', () => mark('pc:track'));
    }
    // The page's own calls: when it asks (after its own dispatch) and how long the browser takes.
    addTrack(...args) {
      mark('addTrack:start');
      const sender = super.addTrack(...args);
      markLast('addTrack:done');
      return sender;
    }
    async setLocalDescription(...args) {
      mark('sld:start');
      await super.setLocalDescription(...args);
      mark('sld:done');
    }
    async setRemoteDescription(...args) {
      mark('srd:start');
      await super.setRemoteDescription(...args);
      mark('srd:done');
    }
  };
})();`;
