/**
 * Load generator, run in its own process (pinned to its own core by bench/run.ts), loopback only.
 * One scenario per process, chosen by --kind (each lives in bench/scenarios/):
 *   idle               hold N sockets until stdin closes          --sockets N
 *   relay | relay-flat | chat  closed-loop DMs, W in flight per pair --pairs P --window W --ms D
 *   rate               DMs at a fixed offered rate (open loop)     --pairs P --rate R --ms D
 *   room               R rooms x S members at a fixed offered rate --rooms R --members S --rate M --ms D
 *   match              N clients cycling available/request/hangup  --clients N --hold H --ms D
 *   one-room           ONE room of S members over G gateways       --members S --gateways G --rate M --ms D
 *                      (bench/workerd-ceilings.ts steps M up)
 *   redis-hop          no server: PUBLISH -> a forked subscriber   --redis URL --rate R --ms D
 *                      through a redis-server, at the `rate` scenario's offered rate and tick
 * --url is the server's WebSocket URL, or a cluster's (one per node, comma-separated): sockets are
 * spread over the nodes, and a DM's sender and receiver are on different nodes (see openPairs).
 * Prints `{"phase":"measure"}` and `{"phase":"stop"}` around the measurement window, then one JSON
 * line with the result (and `nodes`, the count of URLs). Every count is clamped, and a watchdog
 * exits the process (code 3) should the scenario hang: --timeout MS (default: the duration plus
 * 60 s).
 */
import { arg, durationArg, intArg, urls } from './scenarios/common.ts';
import { dm } from './scenarios/dm.ts';
import { idle } from './scenarios/idle.ts';
import { match } from './scenarios/match.ts';
import { oneRoom } from './scenarios/one-room.ts';
import { rate } from './scenarios/rate.ts';
import { redisHop } from './scenarios/redis-hop.ts';
import { room } from './scenarios/room.ts';

const SCENARIOS: Record<string, () => Promise<object>> = {
  idle,
  relay: () => dm('relay'),
  'relay-flat': () => dm('relay-flat'),
  chat: () => dm('chat'),
  rate,
  room,
  match,
  'one-room': oneRoom,
  'redis-hop': redisHop,
};

const kind = arg('kind', 'relay');
const scenario = SCENARIOS[kind];
if (!scenario) {
  console.error(`load: unknown --kind ${kind} (${Object.keys(SCENARIOS).join(', ')})`);
  process.exit(2);
}
// The idle scenario holds its sockets for as long as the runner reads memory: bounded all the same.
const timeoutMs = intArg('timeout', durationArg() + 60_000, 1000, 600_000);
setTimeout(() => {
  console.error(`load: ${kind} still running after ${timeoutMs} ms, giving up`);
  process.exit(3);
}, timeoutMs).unref();

try {
  console.log(JSON.stringify({ ...(await scenario()), nodes: urls.length }));
  process.exit(0);
} catch (error) {
  console.error(`load: ${kind} failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
