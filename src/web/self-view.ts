/**
 * The camera's self-view. It is not drawn while a call is being set up: from the request or the
 * match until the page calls `show` (the pool answered, the stranger's first frame, the call
 * ended) or `HOLD_MAX_MS` passes, a new self-view is not started and a running one is paused.
 * Starting or drawing it costs the CPU the browser needs for the offer, the answer and ICE, and on
 * a modest device that shows: on two vCPUs without a GPU it made call setup ~40-60 ms slower
 * (bench/README.md, "Calls"). Nobody looks at their own picture during those few hundred ms.
 */

/** Longest the self-view waits for a call that does not connect. */
const HOLD_MAX_MS = 1000;

export interface SelfView {
  /** Shows `stream` now (starts or resumes it). */
  show(stream: MediaStream): void;
  /** Holds the self-view for a call being set up; `show` ends the hold, or `HOLD_MAX_MS` does. */
  hold(stream: MediaStream): void;
  /** No camera: the element is emptied. */
  clear(): void;
}

export function createSelfView(video: HTMLVideoElement): SelfView {
  let held: ReturnType<typeof setTimeout> | undefined;

  function release(): void {
    clearTimeout(held);
    held = undefined;
  }

  function show(stream: MediaStream): void {
    release();
    if (video.srcObject !== stream) video.srcObject = stream;
    video.play().catch(() => {
      // A muted video may always play; a refusal here only means the element was emptied since.
    });
  }

  return {
    show,
    hold(stream) {
      release();
      // Only a running picture is paused: pausing an idle element still costs a repaint.
      if (video.srcObject && !video.paused) video.pause();
      held = setTimeout(() => show(stream), HOLD_MAX_MS);
    },
    clear() {
      release();
      video.srcObject = null;
    },
  };
}
