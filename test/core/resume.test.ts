/**
 * The resume window (src/core/resume.ts, DECISIONS.md Calls) on the pure hub with a fake clock: a
 * call waits `callResumeMs` for a user whose socket ended abnormally and who holds a token; a clean
 * close, a session without a token, an idle user and a window of 0 hang up at once.
 */
import { describe, expect, it } from 'vitest';
import { makeHub, T0, type TestHub } from './hub-harness.ts';

const WINDOW_MS = 10_000;

/** alice (impolite) and bob (polite) in a call, each with a token; the outbox cleared. */
function inCall(h: TestHub, tokens = { alice: 'tok-alice', bob: 'tok-bob' }) {
  expect(h.connect('alice', { token: tokens.alice })).toStrictEqual({ accepted: true });
  expect(h.connect('bob', { token: tokens.bob })).toStrictEqual({ accepted: true });
  h.send('bob#1', { type: 'user_available_webrtc' });
  h.script(0);
  h.send('alice#1', { type: 'request_random_peer' });
  expect(h.to('alice#1')).toContainEqual(
    expect.objectContaining({ type: 'assign_role', payload: { role: 'impolite', peerId: 'bob' } }),
  );
  h.take();
}

/** The `user_status` a partner gets about `userId`. */
const partnerStatus = (toUser: string, userId: string, status: string, at: number) => ({
  type: 'user_status',
  fromUser: 'system',
  toUser,
  payload: { userId, status, timestamp: new Date(at).toISOString() },
  createTime: new Date(at).toISOString(),
});

const hangup = (fromUser: string, toUser: string, reason: string, at: number) => ({
  type: 'hangup',
  fromUser,
  toUser,
  payload: { reason },
  createTime: new Date(at).toISOString(),
});

const resumes = (h: TestHub, outcome: string) =>
  new RegExp(`aleatoria_call_resumes_total\\{outcome="${outcome}"\\} (\\d+)`)
    .exec(h.hub.renderMetrics())
    ?.at(1);

describe('a call that outlives its socket (CALL_RESUME_MS)', () => {
  it('keeps the pair while a dropped user with a token comes back: the partner hears reconnecting, then online, and relays flow again', () => {
    const h = makeHub({ callResumeMs: WINDOW_MS });
    inCall(h);
    h.advance(1000);
    h.hub.close('bob#1', true);
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: partnerStatus('alice', 'bob', 'reconnecting', T0 + 1000) },
    ]);
    expect(h.pendingTimers).toBe(1);
    expect(h.hub.stats().pairs).toBe(1);

    h.advance(WINDOW_MS - 1);
    expect(h.take()).toStrictEqual([]);
    expect(h.connect('bob', { token: 'tok-bob', conn: 'bob#2' })).toStrictEqual({
      accepted: true,
    });
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: partnerStatus('alice', 'bob', 'online', T0 + WINDOW_MS + 999) },
    ]);
    expect(h.pendingTimers).toBe(0);

    h.send('alice#1', {
      type: 'webrtc_offer',
      toUser: 'bob',
      payload: { type: 'offer', sdp: 'o' },
    });
    h.send('bob#2', {
      type: 'webrtc_answer',
      toUser: 'alice',
      payload: { type: 'answer', sdp: 'a' },
    });
    expect(h.take().map((item) => [item.conn, 'msg' in item && item.msg.type])).toStrictEqual([
      ['bob#2', 'webrtc_offer'],
      ['alice#1', 'webrtc_answer'],
    ]);
    // The window has passed since: nothing is left to fire.
    h.advance(WINDOW_MS * 2);
    expect(h.take()).toStrictEqual([]);
    expect(h.hub.state('alice#1')?.partner).toBe('bob');
    expect(h.hub.state('bob#2')?.partner).toBe('alice');
    expect([resumes(h, 'held'), resumes(h, 'resumed'), resumes(h, 'expired')]).toStrictEqual([
      '1',
      '1',
      undefined,
    ]);
  });

  it('hangs up the partner with peer_disconnected when the window ends, not before, and frees the userId', () => {
    const h = makeHub({ callResumeMs: WINDOW_MS });
    inCall(h);
    h.hub.close('bob#1', true);
    h.take();
    h.advance(WINDOW_MS - 1);
    expect(h.take()).toStrictEqual([]);
    h.advance(1);
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: hangup('bob', 'alice', 'peer_disconnected', T0 + WINDOW_MS) },
    ]);
    expect(h.hub.stats()).toMatchObject({ connections: 1, pairs: 0 });
    expect(h.hub.state('alice#1')?.partner).toBeUndefined();
    expect(h.connect('bob', { conn: 'bob#2' })).toStrictEqual({ accepted: true });
    expect(resumes(h, 'expired')).toBe('1');
  });

  it('tells a user back after the window, with its token and within one more window, that the call is over', () => {
    const h = makeHub({ callResumeMs: WINDOW_MS });
    inCall(h);
    h.hub.close('bob#1', true);
    h.advance(WINDOW_MS + 500);
    h.take();
    expect(h.connect('bob', { token: 'tok-bob', conn: 'bob#2' })).toStrictEqual({
      accepted: true,
    });
    expect(h.take()).toStrictEqual([
      { conn: 'bob#2', msg: hangup('alice', 'bob', 'peer_disconnected', T0 + WINDOW_MS + 500) },
    ]);
    // Told once: the next fresh session hears nothing.
    h.hub.close('bob#2');
    h.connect('bob', { token: 'tok-bob', conn: 'bob#3' });
    expect(h.take()).toStrictEqual([]);
  });

  it('tells nothing to a newcomer without the token (and still tells the user after it), or after one more window', () => {
    const h = makeHub({ callResumeMs: WINDOW_MS });
    inCall(h);
    h.hub.close('bob#1', true);
    h.advance(WINDOW_MS);
    h.take();
    h.connect('bob', { conn: 'bob#2' });
    expect(h.take()).toStrictEqual([]);
    h.hub.close('bob#2');
    h.connect('bob', { token: 'tok-bob', conn: 'bob#3' });
    expect(h.take()).toStrictEqual([
      { conn: 'bob#3', msg: hangup('alice', 'bob', 'peer_disconnected', T0 + WINDOW_MS) },
    ]);

    const late = makeHub({ callResumeMs: WINDOW_MS });
    inCall(late);
    late.hub.close('bob#1', true);
    late.advance(2 * WINDOW_MS + 1);
    late.take();
    late.connect('bob', { token: 'tok-bob', conn: 'bob#2' });
    expect(late.take()).toStrictEqual([]);
  });

  it.each([
    ['a clean close', { callResumeMs: WINDOW_MS }, false, 'tok-bob'],
    ['a session without a token', { callResumeMs: WINDOW_MS }, true, undefined],
    ['a window of 0', { callResumeMs: 0 }, true, 'tok-bob'],
  ])('hangs up at once after %s', (_, options, abnormal, bobToken) => {
    const h = makeHub(options);
    inCall(h, { alice: 'tok-alice', bob: bobToken as string });
    h.hub.close('bob#1', abnormal);
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: hangup('bob', 'alice', 'peer_disconnected', T0) },
    ]);
    expect(h.pendingTimers).toBe(0);
    expect(h.hub.stats().connections).toBe(1);
  });

  it('costs nothing for a user in no call: no timer, the userId free at once', () => {
    const h = makeHub({ callResumeMs: WINDOW_MS });
    h.connect('carol', { token: 'tok-carol', room: 'r' });
    h.send('carol#1', { type: 'user_available_webrtc' });
    h.hub.close('carol#1', true);
    expect(h.pendingTimers).toBe(0);
    expect(h.hub.stats()).toMatchObject({ connections: 0, available: 0, rooms: 0 });
  });

  it('keeps the userId for the token: a newcomer without it is refused at once, with no probe', () => {
    const h = makeHub({ callResumeMs: WINDOW_MS, takeoverProbeMs: 2000 });
    inCall(h);
    h.hub.close('bob#1', true);
    h.take();
    expect(h.hub.prepare({ userId: 'bob' })).toBeUndefined();
    expect(h.connect('bob', { conn: 'bob#x' })).toStrictEqual({
      accepted: false,
      code: 'user_id_taken',
    });
    expect(h.connect('bob', { conn: 'bob#y', token: 'not-bobs' })).toMatchObject({
      accepted: false,
    });
    expect(h.pinged).toStrictEqual([]);
    // The refusals went to the newcomers only: alice heard nothing, the pair is kept.
    expect(h.sent().map((item) => item.conn)).toStrictEqual(['bob#x', 'bob#y']);
    expect(h.hub.state('alice#1')?.partner).toBe('bob');
  });

  it('takes a dropped user out of the pool: nobody is matched with it meanwhile', () => {
    const h = makeHub({ callResumeMs: WINDOW_MS });
    inCall(h);
    h.send('bob#1', { type: 'user_available_webrtc' });
    expect(h.hub.stats().available).toBe(1);
    h.hub.close('bob#1', true);
    expect(h.hub.stats().available).toBe(0);
    h.connect('carol');
    h.take();
    h.send('carol#1', { type: 'request_random_peer' });
    expect(h.take()).toStrictEqual([
      { conn: 'carol#1', msg: expect.objectContaining({ type: 'no_peer_available' }) },
    ]);
  });

  it('tells a user who comes back that the partner hung up meanwhile (the hangup went to the dead socket)', () => {
    const h = makeHub({ callResumeMs: WINDOW_MS });
    inCall(h);
    h.hub.close('bob#1', true);
    h.send('alice#1', { type: 'hangup', toUser: 'bob' });
    h.take();
    h.advance(3000);
    h.connect('bob', { token: 'tok-bob', conn: 'bob#2' });
    expect(h.take()).toStrictEqual([
      { conn: 'bob#2', msg: hangup('alice', 'bob', 'peer_left', T0 + 3000) },
    ]);
    expect(h.hub.state('bob#2')?.partner).toBeUndefined();
  });

  it('tells the first of two dropped partners to come back that the other is still away', () => {
    const h = makeHub({ callResumeMs: WINDOW_MS });
    inCall(h);
    h.hub.close('bob#1', true);
    h.hub.close('alice#1', true);
    h.take();
    h.connect('alice', { token: 'tok-alice', conn: 'alice#2' });
    expect(h.take()).toStrictEqual([
      { conn: 'alice#2', msg: partnerStatus('alice', 'bob', 'reconnecting', T0) },
    ]);
    h.connect('bob', { token: 'tok-bob', conn: 'bob#2' });
    expect(h.take()).toStrictEqual([
      { conn: 'alice#2', msg: partnerStatus('alice', 'bob', 'online', T0) },
    ]);
    expect(h.pendingTimers).toBe(0);
  });

  it('counts the waits and ends them all at once when asked (a node leaving): partners hung up, timers gone', () => {
    const h = makeHub({ callResumeMs: WINDOW_MS });
    inCall(h);
    expect(h.hub.waiting).toBe(0);
    h.advance(500);
    h.hub.close('alice#1', true);
    h.hub.close('bob#1', true);
    expect(h.hub.waiting).toBe(2);
    h.take();
    h.advance(1000);
    h.hub.endWaits();
    expect(h.hub.waiting).toBe(0);
    expect(h.pendingTimers).toBe(0);
    expect(h.hub.stats()).toMatchObject({ connections: 0, pairs: 0 });
    expect(resumes(h, 'expired')).toBe('2');
    // Both are gone: the hangups went to their closed sockets, and their userIds are free.
    expect(h.connect('alice', { conn: 'alice#2' })).toStrictEqual({ accepted: true });
    h.hub.endWaits();
    expect(h.hub.stats().connections).toBe(1);
  });

  it('works the same with seams that answer later (state in another process)', async () => {
    const h = makeHub({ callResumeMs: WINDOW_MS }, { asyncSeams: true });
    h.connect('alice', { token: 'tok-alice' });
    h.connect('bob', { token: 'tok-bob' });
    h.send('bob#1', { type: 'user_available_webrtc' });
    await new Promise((resolve) => setImmediate(resolve));
    h.script(0);
    h.send('alice#1', { type: 'request_random_peer' });
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.hub.state('alice#1')?.partner).toBe('bob');
    h.take();
    h.hub.close('bob#1', true);
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: partnerStatus('alice', 'bob', 'reconnecting', T0) },
    ]);
    h.advance(WINDOW_MS);
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: hangup('bob', 'alice', 'peer_disconnected', T0 + WINDOW_MS) },
    ]);
  });
});
