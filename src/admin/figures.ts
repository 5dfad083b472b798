/**
 * The operator page's figures (`GET /admin/figures`): read off the Prometheus exposition that
 * `GET /metrics` serves, so the two always agree, plus what no metric says (the largest rooms,
 * one row per node or gateway, the history's size). Runtime-neutral: Node, Deno and the Worker
 * all build them here.
 */
import { MATCH_BUCKETS } from '../core/metrics.ts';

/** The rooms the page lists, largest first. */
export const TOP_ROOMS = 10;

export interface RoomSize {
  readonly room: string;
  readonly members: number;
}

/** What the in-memory history holds (`HISTORY_MAX_BYTES` bounds `bytes`). */
export interface HistorySize {
  readonly messages: number;
  readonly conversations: number;
  readonly bytes: number;
}

/** What an adapter hands the page: the exposition of `/metrics` and what only it can say. */
export interface AdminSnapshot {
  /** The exposition `/metrics` serves (a deployment of several processes: all of them, added up). */
  readonly metrics: string;
  /**
   * Gauges that processes cannot add up (a room or the pool spans them), as the shared store
   * counts them; absent: the exposition's.
   */
  readonly shared?: { readonly rooms: number; readonly available: number };
  /** At most {@link TOP_ROOMS}, largest first. */
  readonly rooms: readonly RoomSize[];
  /** Each node of a cluster, or gateway of the Worker, with its own exposition. */
  readonly nodes?: readonly {
    readonly id: string;
    readonly metrics: string;
    /** Since its exposition was written (a cluster node's, at its last heartbeat). */
    readonly ageMs?: number;
  }[];
  /** The in-memory history; absent where it is off or lives in a shared store. */
  readonly history?: HistorySize;
}

export interface NodeRow {
  readonly id: string;
  readonly connections: number;
  readonly pairs: number;
  readonly matches: number;
  readonly ageMs: number | null;
}

/** The JSON of `GET /admin/figures`. */
export interface AdminFigures {
  /** When they were read (server clock, ms). */
  readonly at: number;
  readonly connections: number;
  readonly rooms: number;
  readonly pool: number;
  readonly pairs: number;
  /** `aleatoria_matches_total`: the page turns two readings into matches per minute. */
  readonly matches: number;
  /** `aleatoria_time_to_match_seconds`, bucket counts cumulative as Prometheus gives them. */
  readonly timeToMatch: {
    readonly buckets: readonly { readonly le: number | null; readonly count: number }[];
    readonly count: number;
    readonly sum: number;
  };
  readonly history: HistorySize | null;
  readonly topRooms: readonly RoomSize[];
  /** Empty for a single process. */
  readonly nodes: readonly NodeRow[];
}

/** The samples of an exposition: series (name and labels, as written) to value. */
export function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    samples.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return samples;
}

const TTM = 'aleatoria_time_to_match_seconds';

/** The figures of `snapshot`, read at `now`. */
export function figuresFrom(snapshot: AdminSnapshot, now: number): AdminFigures {
  const samples = parseExposition(snapshot.metrics);
  const value = (series: string) => samples.get(series) ?? 0;
  return {
    at: now,
    connections: value('aleatoria_connections'),
    rooms: snapshot.shared?.rooms ?? value('aleatoria_rooms'),
    pool: snapshot.shared?.available ?? value('aleatoria_pool_size'),
    pairs: value('aleatoria_pairs'),
    matches: value('aleatoria_matches_total'),
    timeToMatch: {
      // JSON has no Infinity: the last bucket's bound is null.
      buckets: [...MATCH_BUCKETS, null].map((le) => ({
        le,
        count: value(`${TTM}_bucket{le="${le ?? '+Inf'}"}`),
      })),
      count: value(`${TTM}_count`),
      sum: value(`${TTM}_sum`),
    },
    history: snapshot.history ?? null,
    topRooms: snapshot.rooms,
    nodes: (snapshot.nodes ?? []).map(({ id, metrics, ageMs }) => {
      const own = parseExposition(metrics);
      return {
        id,
        connections: own.get('aleatoria_connections') ?? 0,
        pairs: own.get('aleatoria_pairs') ?? 0,
        matches: own.get('aleatoria_matches_total') ?? 0,
        ageMs: ageMs ?? null,
      };
    }),
  };
}

/** How many of `sessions` are in each room (a process's or a gateway's own members). */
export function roomMembers(sessions: Iterable<{ rooms: Iterable<string> }>): Map<string, number> {
  const members = new Map<string, number>();
  for (const session of sessions)
    for (const room of session.rooms) members.set(room, (members.get(room) ?? 0) + 1);
  return members;
}

/** The {@link TOP_ROOMS} largest of `counts` (room, members), largest first, then by name. */
export function topRooms(counts: Iterable<readonly [string, number]>): RoomSize[] {
  return [...counts]
    .filter(([, members]) => members > 0)
    .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0))
    .slice(0, TOP_ROOMS)
    .map(([room, members]) => ({ room, members }));
}
