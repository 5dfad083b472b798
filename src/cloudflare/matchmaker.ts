/**
 * The matchmaker Durable Object: the one availability pool of a sharded deployment, the match
 * numbers and the count of rooms with members (`MATCHMAKER`, `rpc.ts`). The rules are `pool-logic.ts`; this
 * file keeps them in the object's SQLite, so the pool outlives eviction, restarts and deploys:
 *
 * - `pool (user_id, since, gateway)`: who is available, since when, added by which gateway;
 * - `counters (name, value)`: `matches`, the last match number given;
 * - `occupied (room)`: the rooms with members across the deployment (told by the room objects,
 *   counted by `/stats`);
 * - `taken (user_id, taken_by, match_no, taken_at)`: who took a user and by which match, at the
 *   object's clock; read for {@link TAKEN_NOTE_MS}, swept at most once a second after that.
 *
 * Memory mirrors the pool (an array by position, for an O(1) uniform pick) and is rebuilt from
 * SQLite in the constructor. The SQL API is synchronous and no method awaits, so each call runs
 * whole before the next one starts (the object is single-threaded): a take reads and removes in
 * one step, as the Redis pool's Lua script does. A take's writes are one transaction, and memory
 * changes only once it committed.
 *
 * A gateway reaches the object through `createMatchmakerPool` (`pool-logic.ts`).
 */
import { DurableObject } from 'cloudflare:workers';
import type { Taken } from '../core/seams.ts';
import type { Env } from './env.ts';
import {
  checkRoom,
  checkGateway,
  checkSince,
  checkUserId,
  createPoolRules,
  type PoolRules,
  type PoolWrites,
  TAKEN_NOTE_MS,
  type TakenNote,
} from './pool-logic.ts';
import type { MatchmakerRpc } from './rpc.ts';

export {
  createMatchmakerPool,
  type MatchmakerPool,
  type MatchmakerPoolOptions,
} from './pool-logic.ts';

const MATCHES = 'matches';

/** Creates the tables on first use and reads back what an earlier instance wrote. */
function openPool(storage: DurableObjectStorage, now: number): PoolRules {
  const { sql } = storage;
  sql.exec(`CREATE TABLE IF NOT EXISTS pool (
    user_id TEXT PRIMARY KEY,
    since INTEGER NOT NULL,
    gateway TEXT NOT NULL
  ) WITHOUT ROWID`);
  sql.exec(`CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  ) WITHOUT ROWID`);
  sql.exec(`CREATE TABLE IF NOT EXISTS taken (
    user_id TEXT PRIMARY KEY,
    taken_by TEXT NOT NULL,
    match_no INTEGER NOT NULL,
    taken_at INTEGER NOT NULL
  ) WITHOUT ROWID`);
  sql.exec('CREATE INDEX IF NOT EXISTS taken_by_time ON taken (taken_at)');
  sql.exec('CREATE TABLE IF NOT EXISTS occupied (room TEXT PRIMARY KEY) WITHOUT ROWID');
  const counter = (name: string) =>
    sql.exec<{ value: number }>('SELECT value FROM counters WHERE name = ?', name).toArray()[0]
      ?.value ?? 0;
  const count = (name: string, value: number) => {
    sql.exec('INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)', name, value);
  };

  sql.exec('DELETE FROM taken WHERE taken_at <= ?', now - TAKEN_NOTE_MS);
  const members = sql
    .exec<{ user_id: string; since: number; gateway: string }>(
      'SELECT user_id, since, gateway FROM pool',
    )
    .toArray()
    .map((row) => ({ userId: row.user_id, since: row.since, gateway: row.gateway }));
  const notes = sql
    .exec<{ user_id: string; taken_by: string; match_no: number; taken_at: number }>(
      'SELECT user_id, taken_by, match_no, taken_at FROM taken ORDER BY taken_at',
    )
    .toArray()
    .map((row): [string, TakenNote] => [
      row.user_id,
      { by: row.taken_by, match: row.match_no, at: row.taken_at },
    ]);

  const writes: PoolWrites = {
    add(member) {
      sql.exec(
        'INSERT OR IGNORE INTO pool (user_id, since, gateway) VALUES (?, ?, ?)',
        member.userId,
        member.since,
        member.gateway,
      );
    },
    delete(userId) {
      sql.exec('DELETE FROM pool WHERE user_id = ?', userId);
    },
    take({ requester, partner, match, note, expireUpTo }) {
      storage.transactionSync(() => {
        if (requester !== undefined) sql.exec('DELETE FROM pool WHERE user_id = ?', requester);
        sql.exec('DELETE FROM pool WHERE user_id = ?', partner);
        count(MATCHES, match);
        sql.exec(
          `INSERT OR REPLACE INTO taken (user_id, taken_by, match_no, taken_at)
           VALUES (?, ?, ?, ?)`,
          partner,
          note.by,
          note.match,
          note.at,
        );
        if (expireUpTo !== undefined) sql.exec('DELETE FROM taken WHERE taken_at <= ?', expireUpTo);
      });
    },
    room(room, occupied) {
      if (occupied) sql.exec('INSERT OR IGNORE INTO occupied (room) VALUES (?)', room);
      else sql.exec('DELETE FROM occupied WHERE room = ?', room);
    },
  };
  const rooms = sql
    .exec<{ room: string }>('SELECT room FROM occupied')
    .toArray()
    .map((row) => row.room);
  const saved = { members, matches: counter(MATCHES), rooms, notes };
  return createPoolRules(saved, writes);
}

export class MatchmakerObject extends DurableObject<Env> implements MatchmakerRpc {
  private readonly rules: PoolRules;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.rules = openPool(ctx.storage, Date.now());
  }

  // Each method checks what a gateway sent (values cross as structured clones, any shape), then
  // runs the rules without awaiting: a call is whole before the next one starts.

  async add(userId: string, since: number, gateway: string): Promise<void> {
    this.rules.add(checkUserId(userId, 'userId'), checkSince(since), checkGateway(gateway));
  }

  async delete(userId: string): Promise<void> {
    this.rules.delete(checkUserId(userId, 'userId'));
  }

  async take(
    requester: string,
    exclude: string | undefined,
    draw: number,
  ): Promise<Taken | undefined> {
    // An exclude that is no userId cannot be in the pool: it excludes nobody.
    const excluded = exclude === undefined ? undefined : String(exclude);
    return this.rules.take(checkUserId(requester, 'requester'), excluded, draw, Date.now());
  }

  async size(): Promise<number> {
    return this.rules.size;
  }

  async roomOccupied(room: string, occupied: boolean): Promise<void> {
    this.rules.roomOccupied(checkRoom(room), occupied === true);
  }

  async figures(): Promise<{ available: number; rooms: number }> {
    return { available: this.rules.size, rooms: this.rules.rooms };
  }
}
