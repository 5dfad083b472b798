/**
 * Structured logs: one JSON line per event. Client-supplied strings are truncated and JSON
 * escaping neutralises control characters, so a hostile userId cannot forge or break log lines.
 */
import type { LogLevel } from './config.ts';

export type LogFields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };
const MAX_FIELD_LENGTH = 200;

export function createLogger(
  level: LogLevel,
  write: (line: string) => void,
  now: () => number = Date.now,
): Logger {
  const emit =
    (at: Exclude<LogLevel, 'silent'>) =>
    (event: string, fields: LogFields = {}) => {
      if (RANK[at] < RANK[level]) return;
      const record: Record<string, unknown> = {
        time: new Date(now()).toISOString(),
        level: at,
        event,
      };
      for (const [key, value] of Object.entries(fields)) {
        if (value === undefined) continue;
        record[key] =
          typeof value === 'string' && value.length > MAX_FIELD_LENGTH
            ? `${value.slice(0, MAX_FIELD_LENGTH)}…`
            : value;
      }
      write(JSON.stringify(record));
    };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}
