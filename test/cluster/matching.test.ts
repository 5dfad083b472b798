/**
 * Random matching across a cluster of three real processes (Node, Node, Deno) sharing a real
 * `redis-server`, loopback only: the pool's take (one Lua script in src/cluster/redis-pool.ts) must
 * stay atomic under concurrent requests from every node, draw uniformly whoever the requester's
 * and the partner's nodes are, honour `currentPeerId`, and a user paired again from another node
 * must end its previous pair there (docs/protocol.md, section 6; docs/cluster.md); a user who left
 * the pool is never drawn.
 *
 * Two of these tests found real races, fixed since (each failure message carries its evidence):
 * - "leaves nobody in a pair its partner has left": a user drawn as a partner by another node's
 *   request while its own request was being paired across nodes ended up in two pairs, or heard
 *   of them out of order (src/core/matching.ts now sets the pair before the partner's node answers
 *   and holds what others say about the requester's pairs until its own assign_role is out; the
 *   partner's assign_role travels with the pairing);
 * - "never draws a user who left the pool": a user whose ZADD landed after the take that removed
 *   it was forgotten by its node, so its ZREM was skipped (src/cluster/redis-pool.ts now forgets
 *   only users not added again since).
 *
 * Pair state is tracked from what each client receives, as a client would: `assign_role` starts a
 * pair, a `hangup` from the current peer ends it. No timing assertions: every wait is a generous
 * timeout on a message that must come.
 *
 * Synchronising with the pool: `user_available_webrtc` has no answer, and the node writes it to
 * Redis fire-and-forget (ZADD). `roundTrip()` (`get_rooms`) is answered by the node alone, so it
 * proves the frame was read, not that the ZADD ran. `synced()` below asks `get_room_members`
 * instead, whose count is a ZCARD sent after the ZADD on the node's one command connection:
 * its answer proves the pool write has been executed by Redis.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type LaunchedCluster, launchCluster } from '../contract/cluster-launcher.ts';
import { type Received, TestClient, uid } from '../contract/harness.ts';

const ENV = {
  ALLOWED_ORIGINS: '*',
  MATCHES_PER_MINUTE: '100000',
  RATE_LIMIT_PER_SECOND: '5000',
  RATE_LIMIT_BURST: '5000',
  PRESENCE_ROOM_LIMIT: '0',
};

/** Generous: two vCPUs shared with other work, three server processes and Redis. */
const ARRIVAL_MS = 8000;

let cluster: LaunchedCluster;
const opened: TestClient[] = [];

beforeAll(async () => {
  cluster = await launchCluster(ENV, ['node', 'node', 'deno']);
}, 120_000);

// A test that failed half way leaves nothing behind for the next one.
afterEach(async () => {
  await closeAll(opened.splice(0));
});

// Each test starts from an empty pool (a closed client leaves it once its node has heard).
beforeEach(async () => {
  if (!cluster) return;
  const deadline = Date.now() + ARRIVAL_MS;
  while ((await poolSize()) !== 0 && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 50));
  expect(await poolSize(), 'the pool before this test').toBe(0);
});

afterAll(async () => {
  await cluster?.stop();
}, 30_000);

async function open(node: number, label: string): Promise<TestClient> {
  const client = await TestClient.open(cluster.nodes[node % 3]!.baseUrl, { userId: uid(label) });
  opened.push(client);
  return client;
}

async function closeAll(clients: readonly TestClient[]) {
  await Promise.all(clients.map((client) => client.close()));
}

let seq = 0;
const messageId = (label: string) => `${label}-${(++seq).toString(36)}`;

/** Returns once the node has executed, in Redis, every pool write this client caused so far. */
async function synced(client: TestClient): Promise<void> {
  const id = messageId('sync');
  client.send({ type: 'get_room_members', room: 'Lobby', messageId: id });
  await client.next((m) => m.type === 'room_members' && m.messageId === id, ARRIVAL_MS);
}

async function announce(client: TestClient): Promise<void> {
  client.send({ type: 'user_available_webrtc' });
  await synced(client);
}

function request(client: TestClient, currentPeerId?: string): string {
  const id = messageId('req');
  client.send({
    type: 'request_random_peer',
    messageId: id,
    ...(currentPeerId === undefined ? {} : { payload: { currentPeerId } }),
  });
  return id;
}

/** The answer to the request `id`: `assign_role` or `no_peer_available`. */
const answerTo = (client: TestClient, id: string) =>
  client.next(
    (m) => (m.type === 'assign_role' || m.type === 'no_peer_available') && m.messageId === id,
    ARRIVAL_MS,
  );

const payloadOf = (m: Received) => (m.payload ?? {}) as { role?: string; peerId?: string };

/** The requester's `assign_role`, checked: impolite, its own messageId, naming someone else. */
async function matched(requester: TestClient, id: string): Promise<string> {
  const answer = await answerTo(requester, id);
  expect(answer.type, `${requester.userId}'s request ${id}`).toBe('assign_role');
  const { role, peerId } = payloadOf(answer);
  expect(role).toBe('impolite');
  expect(answer.toUser).toBe(requester.userId);
  expect(typeof peerId).toBe('string');
  expect(peerId).not.toBe(requester.userId);
  return peerId!;
}

/** The partner's half of a match with `requester`: polite, no messageId. */
async function politeHalf(partner: TestClient, requester: string): Promise<void> {
  const half = await partner.next(
    (m) => m.type === 'assign_role' && payloadOf(m).peerId === requester,
    ARRIVAL_MS,
  );
  expect(payloadOf(half).role).toBe('polite');
  expect(half.toUser).toBe(partner.userId);
  expect(half.messageId).toBeUndefined();
}

async function poolSize(): Promise<number> {
  const response = await fetch(`${cluster.nodes[0]!.baseUrl}/stats`);
  return ((await response.json()) as { available: number }).available;
}

async function waitUntil(what: string, done: () => boolean, timeoutMs = ARRIVAL_MS) {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function noErrorsQueued(clients: readonly TestClient[]) {
  for (const client of clients) {
    expect(client.violations, client.userId).toEqual([]);
    const errors = client.queue.filter((m) => m.type === 'error' || m.type === 'error_response');
    expect(errors, client.userId).toEqual([]);
  }
}

/**
 * The chi-square distribution's upper quantile: the x with P(X > x) = 1 - p, for an even number
 * of degrees of freedom, where the survival function has the closed form
 * exp(-x/2) * sum_{k < df/2} (x/2)^k / k!; solved by bisection. For p = 0.999 it gives 13.816
 * (df 2) and 26.124 (df 8), as the tables do.
 */
function chiSquareQuantile(df: number, p: number): number {
  if (df % 2 !== 0 || df <= 0) throw new Error('even degrees of freedom only');
  const survival = (x: number) => {
    let term = 1;
    let sum = 1;
    for (let k = 1; k < df / 2; k++) {
      term *= x / 2 / k;
      sum += term;
    }
    return Math.exp(-x / 2) * sum;
  };
  let low = 0;
  let high = 1000;
  for (let i = 0; i < 200; i++) {
    const mid = (low + high) / 2;
    if (survival(mid) > 1 - p) low = mid;
    else high = mid;
  }
  return (low + high) / 2;
}

function chiSquare(counts: readonly number[]): number {
  const total = counts.reduce((sum, n) => sum + n, 0);
  const expected = total / counts.length;
  return counts.reduce((sum, n) => sum + (n - expected) ** 2 / expected, 0);
}

/** Kind of breach of a user left in a pair its partner has left without telling it. */
const STALE_PAIR = 'in a pair its partner has left without being told (two live pairs)';

interface RoundsResult {
  /** One line per round: asked, matched, refused. */
  summary: string[];
  /** Every invariant broken, by kind, and the first case of each kind in full. */
  breaches: Map<string, number>;
  examples: Map<string, string>;
  /** The server's view of the first stale pairs, from who is told of a disconnection. */
  forensics: string[];
}

/**
 * Test 1's rounds: 90 users available (30 per node) and 6 that only ask (2 per node); in each
 * round some or all of them send `request_random_peer` in the same tick; between rounds some
 * pairs hang up and every pool user announces again (those still in a call too: drawn again,
 * their partner must be told). Every frame is checked as it arrives, against the pair state
 * each client holds from its own messages.
 */
async function concurrentRounds(): Promise<RoundsResult> {
  /** A client as its messages describe it. */
  interface Member {
    client: TestClient;
    id: string;
    /** Announces itself available before every round (the others only ever request). */
    announces: boolean;
    /** The peer of its current pair, per the last `assign_role` and `hangup` it got. */
    peer: string | undefined;
    /** This round's request, and how it was answered. */
    request: string | undefined;
    answered: 'matched' | 'none' | undefined;
    /** Requesters that took this member as their partner this round. */
    takenBy: string[];
    /** Got any `assign_role` this round (so it left the pool). */
    assigned: boolean;
    /** The last round it got an `assign_role` in. */
    lastAssigned: number;
    /** What it got about matching, in order, for the failure report. */
    log: string[];
  }
  const PER_NODE = 30;
  const REQUEST_ONLY_PER_NODE = 2;
  const members: Member[] = [];
  const byId = new Map<string, Member>();
  let round = 0;
  /** Every invariant broken, by kind; and the first case of each kind, in full. */
  const breaches = new Map<string, number>();
  const examples = new Map<string, string>();
  /** Set once the rounds are over: the disconnections that follow are ours. */
  let over = false;
  const breach = (kind: string, detail: string) => {
    if (over) return;
    breaches.set(kind, (breaches.get(kind) ?? 0) + 1);
    if (!examples.has(kind)) examples.set(kind, `round ${round}: ${detail}`);
  };
  /** This round's halves, each as "requester>partner". */
  let impoliteHalves: string[] = [];
  let politeHalves: string[] = [];
  let lastHeard = Date.now();
  /** Users left in a pair whose partner went on without them: (user, that partner). */
  const stale: Array<{ id: string; left: string; round: number }> = [];

  const clients = await Promise.all(
    Array.from({ length: 3 * (PER_NODE + REQUEST_ONLY_PER_NODE) }, (_, i) =>
      open(i % 3, i < 3 * PER_NODE ? 'pool' : 'asker'),
    ),
  );
  clients.forEach((client, i) => {
    const me: Member = {
      client,
      id: client.userId,
      announces: i < 3 * PER_NODE,
      peer: undefined,
      request: undefined,
      answered: undefined,
      takenBy: [],
      assigned: false,
      lastAssigned: 0,
      log: [],
    };
    members.push(me);
    byId.set(me.id, me);
    const bad = (kind: string, m: Received) => breach(kind, `${me.id} got ${JSON.stringify(m)}`);
    client.ws.on('message', (data) => {
      lastHeard = Date.now();
      let m: Received;
      try {
        m = JSON.parse(String(data)) as Received;
      } catch {
        return; // TestClient records it as a violation.
      }
      if (m.type === 'assign_role' || m.type === 'hangup' || m.type === 'no_peer_available')
        me.log.push(
          `round ${round} ${m.type} ${JSON.stringify({ from: m.fromUser, messageId: m.messageId, payload: m.payload })}`,
        );
      switch (m.type) {
        case 'assign_role': {
          const { role, peerId } = payloadOf(m);
          if (m.toUser !== me.id || m.fromUser !== 'system') bad('misaddressed assign_role', m);
          if (peerId === me.id) bad('matched with itself', m);
          else if (peerId === undefined || !byId.has(peerId)) bad('matched with a stranger', m);
          if (role === 'impolite') {
            if (m.messageId === undefined || m.messageId !== me.request)
              bad('impolite without its own request', m);
            else if (me.answered !== undefined) bad('request answered twice', m);
            else me.answered = 'matched';
            impoliteHalves.push(`${me.id}>${peerId}`);
          } else if (role === 'polite') {
            if (m.messageId !== undefined) bad('polite half with a messageId', m);
            if (!me.announces) bad('taken as a partner without ever being available', m);
            me.takenBy.push(String(peerId));
            if (me.takenBy.length > 1) bad('handed out to two requesters in one round', m);
            politeHalves.push(`${peerId}>${me.id}`);
          } else bad('unknown role', m);
          me.assigned = true;
          me.lastAssigned = round;
          me.peer = peerId;
          return;
        }
        case 'no_peer_available':
          if (m.messageId === undefined || m.messageId !== me.request)
            bad('no_peer_available not answering its own request', m);
          else if (me.answered !== undefined) bad('request answered twice', m);
          else me.answered = 'none';
          return;
        case 'hangup': {
          const reason = (m.payload as { reason?: string } | null | undefined)?.reason;
          if (reason === 'peer_disconnected') bad('hangup peer_disconnected (nobody left)', m);
          if (m.fromUser === me.peer) me.peer = undefined;
          return;
        }
        case 'error':
        case 'error_response':
          bad('error', m);
          return;
      }
    });
  });
  const pool = members.filter((m) => m.announces);
  const notMutual = () =>
    members.filter((m) => m.peer !== undefined && byId.get(m.peer)?.peer !== m.id);

  /**
   * Nobody in two live pairs: once the hangups of the pairs replaced have arrived, every pair the
   * clients believe in is mutual. Waits for that, or for the clients to hear nothing for 2 s.
   */
  async function checkMutual() {
    const deadline = Date.now() + ARRIVAL_MS;
    while (notMutual().length > 0 && Date.now() - lastHeard < 2000 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    for (const me of notMutual()) {
      const peer = byId.get(me.peer!)!;
      const third = peer.peer === undefined ? undefined : byId.get(peer.peer);
      const logs = [me, peer, ...(third ? [third] : [])]
        .map(
          (x) =>
            `\n    ${x.id} (this round's request: ${x.request ?? 'none'})\n      ${x.log.join('\n      ')}`,
        )
        .join('');
      breach(STALE_PAIR, `${me.id} -> ${peer.id} -> ${peer.peer}${logs}`);
      stale.push({ id: me.id, left: peer.id, round });
      // Counted once: the client gives up on that call.
      me.peer = undefined;
    }
  }

  /** Ends some live pairs (a `hangup` from one side), then everyone in the pool announces. */
  async function prepare() {
    for (const me of members) {
      const peer = me.peer === undefined ? undefined : byId.get(me.peer);
      if (!peer || peer.peer !== me.id || me.id > peer.id || Math.random() < 0.5) continue;
      me.client.send({ type: 'hangup', toUser: peer.id, payload: { reason: 'next' } });
      me.peer = undefined;
    }
    // The other side hears the relayed hangup.
    await waitUntil('hangups relayed', () => notMutual().length === 0);
    // Users still in a pair announce too: drawn again, their old partner must be told.
    await Promise.all(pool.map((me) => announce(me.client)));
    for (const me of members) me.log = [];
  }

  async function runRound(requesters: readonly Member[]) {
    round++;
    impoliteHalves = [];
    politeHalves = [];
    for (const me of members) {
      me.request = undefined;
      me.answered = undefined;
      me.takenBy = [];
      me.assigned = false;
    }
    for (const me of requesters) me.request = messageId(`r${round}`);
    // All in one tick: every node gets its share of requests at the same moment.
    for (const me of requesters)
      me.client.send({ type: 'request_random_peer', messageId: me.request });

    await waitUntil(`round ${round}: every request answered`, () =>
      requesters.every((me) => me.answered !== undefined),
    );
    await waitUntil(
      `round ${round}: both halves of every match`,
      () => politeHalves.length >= impoliteHalves.length,
    ).catch(() => {});
    const none = requesters.filter((me) => me.answered === 'none');
    // Every match told to both sides, each naming the other, the requester impolite.
    const polite = politeHalves.toSorted();
    const impolite = impoliteHalves.toSorted();
    if (JSON.stringify(polite) !== JSON.stringify(impolite))
      breach(
        'halves of matches do not pair up',
        `impolite only: ${impolite.filter((h) => !polite.includes(h))}; polite only: ${polite.filter((h) => !impolite.includes(h))}`,
      );
    await checkMutual();

    // Who never left the pool this round. A `no_peer_available` means that, when its take ran,
    // the pool held nobody but the requester; these were in the pool all along.
    const stayed = pool.filter((me) => !me.assigned);
    for (const me of none) {
      const others = stayed.filter((other) => other !== me).map((other) => other.id);
      if (others.length > 0)
        breach('no_peer_available while others stayed available', `${me.id}: ${others}`);
    }
    // Each take removes at most two: with at most half the pool requesting, nobody is refused.
    if (2 * requesters.length <= pool.length && none.length > 0)
      breach('no_peer_available with most of the pool free', none.map((me) => me.id).join());
    // The cluster's pool is what the clients' messages say it is.
    const size = await poolSize();
    if (size !== stayed.length)
      breach("pool size differs from the clients' view", `${size} in Redis, ${stayed.length}`);
    for (const client of clients) {
      if (client.violations.length > 0)
        breach('frame outside the protocol', client.violations.join(' | '));
      client.violations.length = 0;
      client.queue.length = 0;
    }
    return `${requesters.length} asked: ${impoliteHalves.length} matched, ${none.length} none`;
  }

  const shuffled = () => members.toSorted(() => Math.random() - 0.5);
  const summary: string[] = [];
  for (const size of [45, members.length, 30, members.length, 45, members.length]) {
    await prepare();
    summary.push(await runRound(shuffled().slice(0, size)));
  }

  // The server's side of a pair the clients disagree on: a user's server-side partner is the one
  // told `hangup {peer_disconnected}` when the user leaves.
  over = true;
  const forensics: string[] = [];
  // Users given no assign_role since: nothing has changed their pair since.
  for (const me of stale.filter((x) => byId.get(x.id)!.lastAssigned === x.round).slice(0, 2)) {
    const left = byId.get(me.left)!;
    if (left.client.ws.readyState !== left.client.ws.OPEN) continue;
    const told: string[] = [];
    for (const other of members)
      other.client.ws.on('message', (data) => {
        const m = JSON.parse(String(data)) as Received;
        if (m.type === 'hangup' && m.fromUser === left.id) told.push(other.id);
      });
    await left.client.close();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    forensics.push(
      told.includes(me.id)
        ? `${left.id} disconnected, ${me.id} got its hangup: the server did pair them, but ${left.id} was told a different peer last (an assign_role delivered after a newer one)`
        : `${left.id} disconnected, its hangup went to ${told.join() || 'nobody'}: ${me.id}, in a call with it as far as it was told (round ${me.round}), is never told that call is over`,
    );
  }
  await closeAll(clients);
  return { summary, breaches, examples, forensics };
}

let rounds: Promise<RoundsResult> | undefined;
/** Run once for the two tests that read them (or for whichever of them runs alone). */
const concurrent = () => (rounds ??= concurrentRounds());

describe('random matching across a 3-node cluster (Node, Node, Deno + Redis)', () => {
  it('checks the chi-square quantiles used below against the tables', () => {
    expect(chiSquareQuantile(2, 0.999)).toBeCloseTo(13.8155, 3);
    expect(chiSquareQuantile(8, 0.999)).toBeCloseTo(26.1245, 3);
  });

  describe('concurrent requests on every node (90 available, up to 96 asking at once, 6 rounds)', () => {
    const report = (result: RoundsResult, kinds: string[], forensics: string[] = []) =>
      [
        result.summary.join('; '),
        ...kinds.map((kind) => `first ${kind}: ${result.examples.get(kind)}`),
        ...forensics,
      ].join('\n');

    it('hands each available user to one requester at most, tells both sides, refuses only when nobody is left', async () => {
      const result = await concurrent();
      const kinds = [...result.breaches.keys()].filter((kind) => kind !== STALE_PAIR);
      const counts = Object.fromEntries(kinds.map((kind) => [kind, result.breaches.get(kind)]));
      expect(counts, report(result, kinds)).toEqual({});
      // Every round matched people (else it proved nothing).
      expect(result.summary.filter((line) => line.includes(' 0 matched'))).toEqual([]);
    }, 60_000);

    it('leaves nobody in a pair its partner has left: each pair the clients were told of is mutual', async () => {
      const result = await concurrent();
      expect(
        result.breaches.get(STALE_PAIR) ?? 0,
        report(result, [STALE_PAIR], result.forensics),
      ).toBe(0);
    }, 60_000);
  });

  it('draws uniformly among the available users of every node, whoever asks', async () => {
    const K = 9;
    const DRAWS = 900;
    const pool = await Promise.all(Array.from({ length: K }, (_, i) => open(i % 3, 'pool')));
    // One requester per node, taking turns; never available themselves.
    const requesters = await Promise.all([0, 1, 2].map((node) => open(node, 'asker')));
    const nodeOf = new Map(pool.map((client, i) => [client.userId, i % 3]));
    const byId = new Map(pool.map((client) => [client.userId, client]));
    // Oldest first, as the sorted set orders them (score: when each entered the pool).
    const byAge: string[] = [];
    for (const client of pool) {
      await announce(client);
      byAge.push(client.userId);
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
    expect(await poolSize()).toBe(K);

    const counts = new Map(pool.map((client) => [client.userId, 0]));
    const ageRanks = new Array<number>(K).fill(0);
    for (let draw = 0; draw < DRAWS; draw++) {
      const requester = requesters[draw % 3]!;
      const partnerId = await matched(requester, request(requester));
      const partner = byId.get(partnerId);
      expect(partner, `draw ${draw}: ${partnerId} is not in the pool`).toBeDefined();
      await politeHalf(partner!, requester.userId);
      counts.set(partnerId, counts.get(partnerId)! + 1);
      const rank = byAge.indexOf(partnerId);
      ageRanks[rank]!++;
      byAge.splice(rank, 1);
      byAge.push(partnerId);
      // The partner leaves the call and comes back: the same K before every draw.
      partner!.send({ type: 'hangup', toUser: requester.userId, payload: { reason: 'next' } });
      partner!.send({ type: 'user_available_webrtc' });
      await synced(partner!);
      await requester.next((m) => m.type === 'hangup' && m.fromUser === partnerId, ARRIVAL_MS);
    }

    const perUser = [...counts.values()];
    const perNode = [0, 1, 2].map((node) =>
      pool.reduce((sum, c) => sum + (nodeOf.get(c.userId) === node ? counts.get(c.userId)! : 0), 0),
    );
    const report = `per user ${perUser}, per node ${perNode}, by age rank ${ageRanks}`;
    // Every user is drawn; chi-square of the counts against uniform, K - 1 = 8 degrees of
    // freedom, below its 0.999 quantile (26.12): a correct draw fails this once in 1000 runs.
    expect(Math.min(...perUser), report).toBeGreaterThan(0);
    expect(chiSquare(perUser), report).toBeLessThan(chiSquareQuantile(K - 1, 0.999));
    // No node bias: the three nodes' totals, 2 degrees of freedom (13.82).
    expect(chiSquare(perNode), report).toBeLessThan(chiSquareQuantile(2, 0.999));
    // The draw is by rank in the sorted set (oldest first). Since a drawn partner re-enters as the
    // newest, a draw biased by rank (always the oldest, never the newest) can still give every
    // user the same count; the partners' ranks by age must be uniform too.
    expect(chiSquare(ageRanks), report).toBeLessThan(chiSquareQuantile(K - 1, 0.999));
    noErrorsQueued([...pool, ...requesters]);
    await closeAll([...pool, ...requesters]);
  }, 60_000);

  it('honours currentPeerId whichever nodes the three users are on', async () => {
    // The pool's order (oldest first) decides which ranks the draw must step over: every order of
    // the requester, its current peer and the other one; and the two orders without the requester.
    const orders = ['RCO', 'ROC', 'CRO', 'COR', 'ORC', 'OCR', 'CO', 'OC'];
    for (const [r, p, q] of [
      [0, 1, 2],
      [1, 2, 0],
      [2, 0, 1],
    ] as const) {
      const requester = await open(r, 'asker');
      const [first, second] = await Promise.all([open(p, 'peer'), open(q, 'peer')]);
      const where = `requester on node ${r}, the others on ${p} and ${q}`;
      for (let rep = 0; rep < 2 * orders.length; rep++) {
        const [current, other] = rep % 2 === 0 ? [first, second] : [second, first];
        const order = orders[Math.floor(rep / 2)]!;
        // Out of the pool, then back in that order, each entering after the one before.
        for (const client of [requester, current, other])
          client.send({ type: 'user_unavailable_webrtc' });
        await Promise.all([requester, current, other].map(synced));
        for (const who of order) {
          await announce(who === 'R' ? requester : who === 'C' ? current : other);
          await new Promise((resolve) => setTimeout(resolve, 3));
        }
        const partnerId = await matched(requester, request(requester, current.userId));
        expect(partnerId, `${where}, pool ${order}: ${current.userId} excluded`).toBe(other.userId);
        await politeHalf(other, requester.userId);
        other.send({ type: 'hangup', toUser: requester.userId, payload: { reason: 'next' } });
        await requester.next((m) => m.type === 'hangup' && m.fromUser === other.userId, ARRIVAL_MS);
      }
      // Only the current peer is available: nobody for the requester.
      await announce(first);
      second.send({ type: 'user_unavailable_webrtc' });
      requester.send({ type: 'user_unavailable_webrtc' });
      await Promise.all([second, requester].map(synced));
      expect(await poolSize()).toBe(1);
      let answer = await answerTo(requester, request(requester, first.userId));
      expect(answer.type, `${where}: only the current peer available`).toBe('no_peer_available');
      // Nor with the requester itself in the pool (it stays there, as does the current peer).
      await announce(requester);
      answer = await answerTo(requester, request(requester, first.userId));
      expect(answer.type, `${where}: only the requester and its current peer`).toBe(
        'no_peer_available',
      );
      expect(await poolSize()).toBe(2);
      requester.send({ type: 'user_unavailable_webrtc' });
      await synced(requester);
      // Not excluded any more, the current peer is there to be drawn.
      expect(await matched(requester, request(requester))).toBe(first.userId);
      await politeHalf(first, requester.userId);
      expect(await poolSize()).toBe(0);
      noErrorsQueued([requester, first, second]);
      await closeAll([requester, first, second]);
    }
  }, 60_000);

  it("tells a user's partner on one node when that user is paired again from another", async () => {
    const peerLeft = async (from: TestClient, to: TestClient, where: string) => {
      const hangup = await to
        .next((m) => m.type === 'hangup' && m.fromUser === from.userId, ARRIVAL_MS)
        .catch(() => undefined);
      expect(hangup, `${where}: ${to.userId} told that ${from.userId} left`).toBeDefined();
      expect(hangup!.toUser).toBe(to.userId);
      expect(hangup!.payload).toEqual({ reason: 'peer_left' });
    };
    /** A requests on its node and draws B, the only one available. */
    async function pair(a: TestClient, b: TestClient) {
      await announce(b);
      expect(await matched(a, request(a))).toBe(b.userId);
      await politeHalf(b, a.userId);
    }
    const quiet = (clients: TestClient[]) =>
      Promise.all(
        clients.map((client) =>
          client.expectNothing(300, (m) => m.type === 'hangup' || m.type === 'assign_role'),
        ),
      );

    for (const [na, nb, nc] of [
      [0, 1, 2],
      [1, 2, 0],
      [2, 0, 1],
    ] as const) {
      const open3 = () => Promise.all([open(na, 'a'), open(nb, 'b'), open(nc, 'c')]);
      const where = `A on node ${na}, B on ${nb}, C on ${nc}`;

      // B, the polite side, announces again and C draws it.
      let [a, b, c] = await open3();
      await pair(a, b);
      await announce(b);
      expect(await matched(c, request(c)), where).toBe(b.userId);
      await politeHalf(b, c.userId);
      await peerLeft(b, a, `${where}, B drawn by C`);
      await quiet([a, b, c]);
      noErrorsQueued([a, b, c]);
      await closeAll([a, b, c]);

      // A, the impolite side, announces again and C draws it.
      [a, b, c] = await open3();
      await pair(a, b);
      await announce(a);
      expect(await matched(c, request(c)), where).toBe(a.userId);
      await politeHalf(a, c.userId);
      await peerLeft(a, b, `${where}, A drawn by C`);
      await quiet([a, b, c]);
      noErrorsQueued([a, b, c]);
      await closeAll([a, b, c]);

      // B asks for someone else itself (Next) and draws C.
      [a, b, c] = await open3();
      await pair(a, b);
      await announce(c);
      expect(await matched(b, request(b, a.userId)), where).toBe(c.userId);
      await politeHalf(c, b.userId);
      await peerLeft(b, a, `${where}, B asking for C`);
      await quiet([a, b, c]);
      noErrorsQueued([a, b, c]);
      await closeAll([a, b, c]);
    }
    expect(await poolSize()).toBe(0);
  }, 60_000);

  it('never draws a user who left the pool, even one that announced itself again while being drawn', async () => {
    // The race: U, available, announces itself again at the moment A's take draws it. Whichever
    // of the two runs first in Redis, once U has said `user_unavailable_webrtc` (and its node has
    // written it) nobody may draw U. Repeated, since the two frames race on two nodes.
    const TRIALS = 30;
    for (let trial = 0; trial < TRIALS; trial++) {
      const [na, nu, nb] = [trial % 3, Math.floor(trial / 3) % 3, (trial + 2) % 3];
      const where = `trial ${trial}: A on node ${na}, U on ${nu}, B on ${nb}`;
      const [a, u, b] = await Promise.all([open(na, 'a'), open(nu, 'u'), open(nb, 'b')]);
      await announce(u);
      const id = request(a);
      u.send({ type: 'user_available_webrtc' });
      expect(await matched(a, id), where).toBe(u.userId);
      await politeHalf(u, a.userId);
      u.send({ type: 'user_unavailable_webrtc' });
      await synced(u);
      const size = await poolSize();
      const answer = await answerTo(b, request(b));
      expect(
        answer.type === 'assign_role' ? `B drawn with ${payloadOf(answer).peerId}` : answer.type,
        `${where}: U (${u.userId}) said user_unavailable_webrtc, the cluster's pool still counts ${size}`,
      ).toBe('no_peer_available');
      expect(size, where).toBe(0);
      noErrorsQueued([a, u, b]);
      await closeAll([a, u, b]);
    }
  }, 60_000);
});
