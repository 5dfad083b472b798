import { describe, it, expect } from 'vitest';
import { createLogger } from '../../src/core/log.ts';
import type { LogLevel } from '../../src/core/config.ts';

const AT = Date.UTC(2025, 0, 2, 3, 4, 5, 6);

function capture(level: LogLevel) {
  const lines: string[] = [];
  const log = createLogger(
    level,
    (line) => lines.push(line),
    () => AT,
  );
  return { log, lines };
}

describe('createLogger', () => {
  it('writes one JSON line per event with time, level, event and the fields', () => {
    const { log, lines } = capture('debug');
    log.info('connection_open', {
      conn: 'c1',
      userId: 'alice',
      rooms: 2,
      replaced: false,
      skipped: undefined,
    });
    expect(lines).toStrictEqual([
      '{"time":"2025-01-02T03:04:05.006Z","level":"info","event":"connection_open","conn":"c1","userId":"alice","rooms":2,"replaced":false}',
    ]);
    log.warn('slow_consumer_closed');
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[1]!)).toStrictEqual({
      time: '2025-01-02T03:04:05.006Z',
      level: 'warn',
      event: 'slow_consumer_closed',
    });
  });

  it.each<[LogLevel, string[]]>([
    ['debug', ['debug', 'info', 'warn', 'error']],
    ['info', ['info', 'warn', 'error']],
    ['warn', ['warn', 'error']],
    ['error', ['error']],
    ['silent', []],
  ])('at level %s writes only %j', (level, written) => {
    const { log, lines } = capture(level);
    log.debug('e');
    log.info('e');
    log.warn('e');
    log.error('e');
    expect(lines.map((line) => (JSON.parse(line) as { level: string }).level)).toStrictEqual(
      written,
    );
  });

  it('truncates long string fields to 200 characters plus an ellipsis', () => {
    const { log, lines } = capture('info');
    log.info('x', { userId: 'u'.repeat(10_000), short: 's'.repeat(200) });
    const record = JSON.parse(lines[0]!) as { userId: string; short: string };
    expect(record.userId).toBe(`${'u'.repeat(200)}…`);
    expect(record.short).toBe('s'.repeat(200));
    expect(lines[0]!.length).toBeLessThan(600);
  });

  it('escapes control characters so a hostile value cannot break or forge a line', () => {
    const { log, lines } = capture('info');
    const hostile = 'alice"}\n{"time":"x","level":"error","event":"forged"}\r\u0000\u001b[31m';
    log.info('connection_open', { userId: hostile });
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line).not.toMatch(/[\n\r\u0000\u001b]/);
    expect(line.split('\n')).toHaveLength(1);
    expect((JSON.parse(line) as { userId: string; event: string }).userId).toBe(hostile);
    expect((JSON.parse(line) as { event: string }).event).toBe('connection_open');
  });

  it('writes well-formed text even when the cut splits a surrogate pair (no lone surrogate reaches the sink)', () => {
    const { log, lines } = capture('info');
    log.info('x', { text: `${'a'.repeat(199)}${'😀'.repeat(10)}` });
    const line = lines[0]!;
    expect(line).not.toMatch(
      /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/,
    );
    expect((JSON.parse(line) as { text: string }).text.startsWith('a'.repeat(199))).toBe(true);
  });
});
