/**
 * Chat history in the Durable Object's SQLite storage: it survives hibernation, eviction and
 * restarts. One row per message, keyed by conversation and id, so a page is one range read of the
 * primary key. Trimmed to `limit` per conversation on each append; expired rows go in one sweep
 * every {@link SWEEP_EVERY} appends (reads skip them meanwhile). The SQL API is synchronous:
 * nothing here awaits, so the hub takes its in-process path.
 */
import {
  createIdClock,
  type HistoryLimits,
  type HistoryStore,
  idAt,
  type StoredMessage,
} from '../core/history.ts';

/** Appends between two sweeps of expired rows. */
const SWEEP_EVERY = 256;
/** Above every id (16 digits): the upper bound of a read without `before`. */
const NO_BOUND = '9'.repeat(17);

/** The SQLite store, which can also take back a message it kept (a DM that found nobody). */
export interface SqliteHistory extends HistoryStore {
  forget(conversation: string, id: string): void;
}

export function createSqliteHistory(sql: SqlStorage, limits: HistoryLimits): SqliteHistory {
  sql.exec(`CREATE TABLE IF NOT EXISTS history (
    conversation TEXT NOT NULL,
    id TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (conversation, id)
  ) WITHOUT ROWID`);
  sql.exec('CREATE INDEX IF NOT EXISTS history_by_id ON history (id)');
  // Ids go on from the last one kept, should the clock have gone back since.
  const last = sql.exec<{ id: string | null }>('SELECT max(id) AS id FROM history').one().id;
  const clock = createIdClock(last ?? undefined);
  let appends = 0;
  const oldest = (now: number) => idAt(now - limits.ttlMs);

  return {
    nextId: (_conversation, now) => clock(now),
    append(conversation, message, now) {
      sql.exec(
        'INSERT OR REPLACE INTO history (conversation, id, text) VALUES (?, ?, ?)',
        conversation,
        message.id,
        message.text,
      );
      sql.exec(
        `DELETE FROM history WHERE conversation = ?1 AND id <= (
          SELECT id FROM history WHERE conversation = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2
        )`,
        conversation,
        limits.limit,
      );
      if (appends++ % SWEEP_EVERY === 0) sql.exec('DELETE FROM history WHERE id < ?', oldest(now));
    },
    forget(conversation, id) {
      sql.exec('DELETE FROM history WHERE conversation = ? AND id = ?', conversation, id);
    },
    read(conversation, before, limit, now) {
      return sql
        .exec<{ id: string; text: string }>(
          `SELECT id, text FROM history WHERE conversation = ? AND id < ? AND id >= ?
           ORDER BY id DESC LIMIT ?`,
          conversation,
          before ?? NO_BOUND,
          oldest(now),
          limit,
        )
        .toArray()
        .map((row): StoredMessage => ({ id: row.id, text: row.text }));
    },
  };
}
