/**
 * The hub alone, in process: no sockets, no framework, so that a CPU profile (`node --cpu-prof`)
 * shows only what the core spends per frame. Drives `hub.message()` with the frames `npm run bench`
 * sends (bench/scenarios/dm.ts, bench/scenarios/match.ts), with the bench's limits lifted
 * (bench/targets.ts `OURS_ENV`), and prints microseconds per frame.
 *
 *   node --import tsx bench/hub-micro.ts [--kind relay|relay-flat|chat|match] [--frames N] [--rounds R]
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/hub-micro.ts --kind relay-flat
 *   node --import tsx bench/hub-micro.ts --core /tmp/before/core,src/core   # A/B, interleaved
 *
 * `--core` takes directories holding a copy of src/core (default: this one); with several, their
 * rounds alternate in one process, so a busy machine slows each alike. Reported: the fastest
 * round and the median, in microseconds per frame in (and per match).
 *
 * relay, relay-flat, chat: 200 sender/receiver pairs, one frame per sender in turn (the frames are
 * made up front, with their send-time messageIds). match: 1,000 clients cycling as the bench's do
 * (available + request; on `assign_role` a call, hung up after `--hold` more frames; on
 * `no_peer_available` a new request after `--hold` frames); frames are the bench's own texts.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Hub } from '../src/core/hub.ts';
import { directMessage } from './scenarios/dm.ts';

type ConnId = string;

const OURS_ENV: Record<string, string> = {
  LOG_LEVEL: 'error',
  RATE_LIMIT_PER_SECOND: '1000000',
  RATE_LIMIT_BURST: '1000000',
  MATCHES_PER_MINUTE: '100000',
  MAX_CONNECTIONS_PER_IP: '0',
};

const argv = process.argv.slice(2);
const option = (name: string, fallback: string) =>
  argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1]! : fallback;
const kind = option('kind', 'relay');
const frames = Number(option('frames', '100000'));
const rounds = Number(option('rounds', '10'));
const hold = Number(option('hold', '50'));
const cores = option('core', 'src/core').split(',');

interface Scenario {
  /** Runs one round; returns frames in, frames out and matches made. */
  round(): { in: number; out: number; matches: number };
}

async function scenarioFor(dir: string): Promise<Scenario> {
  const load = (file: string) => import(pathToFileURL(resolve(dir, file)).href);
  const { parseConfig } = await load('config.ts');
  const { createHub, hubOptionsFrom } = await load('hub.ts');
  let sent = 0;
  const inbox: Array<[ConnId, string]> = [];
  const hub: Hub = createHub(
    {
      now: Date.now,
      random: Math.random,
      send: (conn: ConnId, text: string) => {
        sent++;
        if (kind === 'match') inbox.push([conn, text]);
      },
      close: () => {},
    },
    hubOptionsFrom(parseConfig(OURS_ENV)),
  );
  const run =
    kind === 'match' ? match(hub, inbox) : direct(hub, kind as 'relay' | 'relay-flat' | 'chat');
  return {
    round() {
      sent = 0;
      const { frames: n, matches } = run();
      return { in: n, out: sent, matches };
    },
  };
}

function direct(hub: Hub, dmKind: 'relay' | 'relay-flat' | 'chat') {
  const pairs = 200;
  const texts: Array<[ConnId, string]> = [];
  for (let i = 0; i < pairs; i++) {
    hub.open(`s${i}`, { userId: `s${i}` });
    hub.open(`r${i}`, { userId: `r${i}` });
  }
  for (let i = 0; i < Math.min(frames, 20_000); i++)
    texts.push([`s${i % pairs}`, directMessage(dmKind, `r${i % pairs}`, i)]);
  return () => {
    for (let i = 0; i < frames; i++) {
      const [conn, text] = texts[i % texts.length]!;
      hub.message(conn, text);
    }
    return { frames, matches: 0 };
  };
}

function match(hub: Hub, inbox: Array<[ConnId, string]>) {
  const count = 1000;
  interface Client {
    id: string;
    peer: string | undefined;
    /** Bumped at every call change, so a hangup due for an older call does nothing. */
    call: number;
    request: string | undefined;
    available: boolean;
  }
  const clients = new Map<string, Client>();
  for (let i = 0; i < count; i++) {
    const id = `p${i}`;
    hub.open(id, { userId: id });
    clients.set(id, { id, peer: undefined, call: 0, request: undefined, available: false });
  }
  let seq = 0;
  let matches = 0;
  let delivered = 0;
  // Frames due later (hangups after a call, retries after no_peer), in the order they fall due.
  const due: Array<{ at: number; client: Client; call: number; what: 'hangup' | 'ask' }> = [];
  let head = 0;
  const say = (client: Client, text: string) => {
    delivered++;
    hub.message(client.id, text);
  };
  const ask = (client: Client) => {
    if (client.peer !== undefined || client.request !== undefined) return;
    if (!client.available) say(client, '{"type":"user_available_webrtc"}');
    client.available = true;
    client.request = `q${seq++}`;
    say(client, `{"type":"request_random_peer","messageId":"${client.request}"}`);
  };
  const field = (text: string, name: string) => {
    const at = text.indexOf(`"${name}":"`);
    return at < 0
      ? undefined
      : text.slice(at + name.length + 4, text.indexOf('"', at + name.length + 4));
  };
  const drain = () => {
    for (let i = 0; i < inbox.length; i++) {
      const [conn, text] = inbox[i]!;
      const client = clients.get(conn)!;
      if (text.startsWith('{"type":"assign_role"')) {
        if (text.includes('"impolite"')) {
          client.request = undefined;
          matches++;
        }
        client.available = false;
        client.peer = field(text, 'peerId');
        due.push({ at: delivered + hold, client, call: ++client.call, what: 'hangup' });
      } else if (text.startsWith('{"type":"no_peer_available"')) {
        client.request = undefined;
        due.push({ at: delivered + hold, client, call: client.call, what: 'ask' });
      } else if (text.startsWith('{"type":"hangup"')) {
        if (field(text, 'fromUser') !== client.peer) continue;
        client.peer = undefined;
        client.call++;
        ask(client);
      }
    }
    inbox.length = 0;
  };
  for (const client of clients.values()) {
    ask(client);
    drain();
  }
  return () => {
    const start = delivered;
    const startMatches = matches;
    while (delivered - start < frames && head < due.length) {
      const item = due[head++]!;
      if (head > 100_000) {
        due.splice(0, head);
        head = 0;
      }
      const { client } = item;
      if (item.what === 'hangup') {
        if (client.call !== item.call || client.peer === undefined) continue;
        say(client, `{"type":"hangup","toUser":"${client.peer}","payload":{"reason":"bench"}}`);
        client.peer = undefined;
        client.call++;
        ask(client);
      } else ask(client);
      drain();
    }
    return { frames: delivered - start, matches: matches - startMatches };
  };
}
const scenarios = [];
for (const dir of cores) scenarios.push(await scenarioFor(dir));
const perFrame: number[][] = cores.map(() => []);
const perMatch: number[][] = cores.map(() => []);
for (let round = 0; round < rounds; round++) {
  for (const [i, scenario] of scenarios.entries()) {
    const start = performance.now();
    const counts = scenario.round();
    const us = (performance.now() - start) * 1000;
    perFrame[i]!.push(us / counts.in);
    if (counts.matches > 0) perMatch[i]!.push(us / counts.matches);
  }
}
const summary = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return `min ${sorted[0]!.toFixed(3)} median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(3)}`;
};
for (const [i, dir] of cores.entries()) {
  console.log(
    `${kind} ${dir}: us per frame in ${summary(perFrame[i]!)}` +
      (perMatch[i]!.length > 0 ? `; us per match ${summary(perMatch[i]!)}` : ''),
  );
}
