/**
 * `GET /stats` and `GET /metrics` of a sharded deployment: every gateway's figures added up by the
 * Worker (one call per gateway), with what only one object can say taken from it: the pool's size
 * from the matchmaker, the rooms with members from the rooms' own count (a room whose members are
 * on two gateways is one room), the pairs from the partnered users (a pair may span two gateways).
 */
import type { PublicStats } from '../core/hub.ts';
import { type Env, gateway, matchmaker } from './env.ts';
import { addExpositions } from './expositions.ts';

/** Sets the value of gauge `name` (no labels) in an exposition. */
function setGauge(text: string, name: string, value: number): string {
  return text.replace(new RegExp(`^${name} .*$`, 'm'), `${name} ${value}`);
}

/**
 * Every gateway's figures, added up, and each one's exposition; with `rooms` (the operator page),
 * the members of each room, added up over the gateways.
 */
export async function gatherFigures(
  env: Env,
  shards: number,
  rooms = false,
): Promise<{
  stats: PublicStats;
  metrics: string;
  gateways: { id: string; metrics: string }[];
  members: Map<string, number>;
}> {
  const ids = Array.from({ length: shards }, (_, n) => `gateway-${n}`);
  const [parts, pool] = await Promise.all([
    Promise.all(ids.map((id) => gateway(env, id).figures(rooms))),
    matchmaker(env).figures(),
  ]);
  const stats: PublicStats = {
    connections: 0,
    available: pool.available,
    rooms: pool.rooms,
  };
  let partnered = 0;
  const members = new Map<string, number>();
  for (const part of parts) {
    stats.connections += part.stats.connections;
    partnered += part.partnered;
    for (const { room, members: count } of part.rooms ?? [])
      members.set(room, (members.get(room) ?? 0) + count);
  }
  let metrics = addExpositions(parts.map((part) => part.metrics));
  metrics = setGauge(metrics, 'aleatoria_pool_size', pool.available);
  metrics = setGauge(metrics, 'aleatoria_rooms', pool.rooms);
  // Each pair has two partnered users, on one gateway or on two.
  metrics = setGauge(metrics, 'aleatoria_pairs', Math.floor(partnered / 2));
  const gateways = parts.map((part, n) => ({ id: ids[n]!, metrics: part.metrics }));
  return { stats, metrics, gateways, members };
}
