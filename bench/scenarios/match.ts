/**
 * `match`: N clients cycling as a random-call app's bots do: `user_available_webrtc` +
 * `request_random_peer`; on `assign_role`, a short call (`--hold` ms), then `hangup` to the peer and
 * available + request again once no request of its own is in flight. A client whose peer hangs up
 * first skips its own hangup; one told `no_peer_available` stays in the pool and asks again after
 * `--retry` ms.
 *
 * A match is one pair of `assign_role` messages, counted once, when the second half arrives.
 * Invariants, each breach counted as a violation (must be 0):
 *   - every `assign_role` names the receiver as `toUser`, and never the receiver as `peerId`;
 *   - the two halves of a match name each other, and one is polite, the other impolite;
 *   - the impolite half answers the receiver's own request (carries its messageId);
 *   - nobody is in two live matches: a client told `assign_role` while in a call it has not hung
 *     up yet breaks it, unless that message answers its own request (asking again is "next",
 *     which ends the call, DECISIONS.md);
 *   - after the load stops and the server goes quiet, no match is left with one half only
 *     (`one_sided_match`; `one_sided_then_hung_up` when the lone half was at least told by a
 *     `hangup` from its peer that the pair was over);
 *   - no step of the cycle is answered with `error` / `error_response` (the limits are lifted).
 * Args: --clients N --hold MS --retry MS --ms DURATION
 */
import type { WebSocket } from 'ws';
import { durationArg, intArg, measureWindow, openAll, run, sleep } from './common.ts';

interface Client {
  id: string;
  ws: WebSocket;
  /** The peer of the call this client believes it is in, until it hangs up or is hung up on. */
  peer: string | undefined;
  /** Bumped at every call change, so a scheduled hangup for an older call does nothing. */
  call: number;
  /** messageId of the request in flight. */
  request: string | undefined;
  /** In the pool as far as this client knows: from its `user_available_webrtc` to its next `assign_role`. */
  available: boolean;
}

interface Half {
  receiver: string;
  role: string;
  /** When it arrived (ms, performance.now()). */
  at: number;
}

interface ServerMessage {
  type: string;
  fromUser?: string;
  toUser?: string;
  messageId?: string;
  payload?: { role?: string; peerId?: string };
}

export async function match() {
  const count = intArg('clients', 1000, 2, 20_000);
  const holdMs = intArg('hold', 2, 0, 1000);
  const retryMs = intArg('retry', 10, 1, 1000);
  const durationMs = durationArg();

  const ids = Array.from({ length: count }, (_, i) => `p${run}${i}`);
  const clients: Client[] = (await openAll(ids)).map((ws, i) => ({
    id: ids[i]!,
    ws,
    peer: undefined,
    call: 0,
    request: undefined,
    available: false,
  }));
  const state = { measuring: false, stopped: false };
  const violations: Record<string, number> = {};
  const violate = (kind: string) => (violations[kind] = (violations[kind] ?? 0) + 1);
  let matches = 0;
  let noPeer = 0;
  /** Own requests answered while in a call ("next": the server ends that call, telling the peer). */
  let nexts = 0;
  let lastHeard = performance.now();
  let requestSeq = 0;

  // Halves waiting for their other half, by unordered pair.
  const halves = new Map<string, Half[]>();
  /** "receiver\npeer" for each hangup a client had from its current peer. */
  const hungUp = new Set<string>();
  function pairHalf(receiver: string, peer: string, role: string) {
    const key = receiver < peer ? `${receiver}\n${peer}` : `${peer}\n${receiver}`;
    const waiting = halves.get(key);
    if (waiting && waiting[0]!.receiver !== receiver) {
      const first = waiting.shift()!;
      if (waiting.length === 0) halves.delete(key);
      if (first.role === role) violate('same_role_both_sides');
      if (state.measuring) matches++;
    } else if (waiting) {
      waiting.push({ receiver, role, at: performance.now() });
    } else {
      halves.set(key, [{ receiver, role, at: performance.now() }]);
    }
  }

  /**
   * Available (unless in the pool already) + request, when neither in a call nor waiting for an
   * answer: an `available` sent while a request is in flight would put the client back in the pool
   * should that request be answered with a match, where a third user could pick it mid-call.
   */
  function ask(client: Client) {
    if (state.stopped || client.peer !== undefined || client.request !== undefined) return;
    if (!client.available) client.ws.send('{"type":"user_available_webrtc"}');
    client.available = true;
    client.request = `q${requestSeq++}`;
    client.ws.send(`{"type":"request_random_peer","messageId":"${client.request}"}`);
  }

  // Hangups due after the hold, flushed together by one timer.
  let due: Array<{ client: Client; call: number }> = [];
  const flushHangups = () => {
    const now = due;
    due = [];
    for (const { client, call } of now) {
      if (client.call !== call || client.peer === undefined) continue;
      client.ws.send(`{"type":"hangup","toUser":"${client.peer}","payload":{"reason":"bench"}}`);
      client.peer = undefined;
      client.call++;
      ask(client);
    }
  };

  function onAssignRole(client: Client, msg: ServerMessage) {
    const { role, peerId } = msg.payload ?? {};
    if (msg.toUser !== client.id) violate('to_user_not_receiver');
    if (typeof peerId !== 'string' || peerId === client.id)
      return void violate('matched_with_self');
    if (role !== 'polite' && role !== 'impolite') return void violate('bad_role');
    const answersOwnRequest =
      role === 'impolite' && msg.messageId !== undefined && msg.messageId === client.request;
    if (role === 'impolite' && !answersOwnRequest) violate('impolite_without_own_request');
    if (client.peer !== undefined && !answersOwnRequest) violate('two_live_matches');
    if (answersOwnRequest) client.request = undefined;
    if (answersOwnRequest && client.peer !== undefined) nexts++;
    client.available = false;
    pairHalf(client.id, peerId, role);
    client.peer = peerId;
    const call = ++client.call;
    if (due.length === 0) setTimeout(flushHangups, holdMs);
    due.push({ client, call });
  }

  for (const client of clients) {
    client.ws.on('message', (data) => {
      lastHeard = performance.now();
      const msg = JSON.parse(data.toString()) as ServerMessage;
      switch (msg.type) {
        case 'assign_role':
          onAssignRole(client, msg);
          return;
        case 'no_peer_available':
          noPeer++;
          if (msg.messageId !== client.request) return;
          client.request = undefined;
          setTimeout(() => ask(client), retryMs);
          return;
        case 'hangup':
          // From the current peer only: hangups of calls already left are stale and ignored.
          if (msg.fromUser !== client.peer) return;
          hungUp.add(`${client.id}\n${client.peer}`);
          client.peer = undefined;
          client.call++;
          ask(client);
          return;
        case 'error':
        case 'error_response':
          violate('error_reply');
          return;
      }
    });
  }

  for (const client of clients) ask(client);
  const measured = await measureWindow(durationMs, state);
  state.stopped = true;
  // Let what is in flight arrive: quiet for 2 s, or 15 s at most. A saturated cluster (4 nodes
  // and Redis sharing one core) can stall for more than 300 ms, which then counted halves still on
  // their way as lone ones.
  const deadline = performance.now() + 15_000;
  while (performance.now() - lastHeard < 2000 && performance.now() < deadline) await sleep(50);
  /** The first few lone halves, to tell what went wrong (receiver, peer, role, age in ms). */
  const oneSided: string[] = [];
  const end = performance.now();
  for (const [key, waiting] of halves)
    for (const { receiver, role, at } of waiting) {
      const [a, b] = key.split('\n') as [string, string];
      const peer = receiver === a ? b : a;
      violate(hungUp.has(`${receiver}\n${peer}`) ? 'one_sided_then_hung_up' : 'one_sided_match');
      if (oneSided.length < 8) oneSided.push(`${receiver} ${peer} ${role} ${Math.round(end - at)}`);
    }
  const total = Object.values(violations).reduce((sum, n) => sum + n, 0);
  return {
    delivered: matches,
    matches,
    ...measured,
    clients: count,
    violations: total,
    violationKinds: violations,
    ...(oneSided.length > 0 ? { oneSided } : {}),
    noPeer,
    nexts,
  };
}
