import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/core/metrics.ts';
import { makeHub } from './hub-harness.ts';

const gauges = {
  aleatoria_connections: 3,
  aleatoria_rooms: 2,
  aleatoria_pool_size: 1,
  aleatoria_pairs: 0,
};
/** Exposition format 0.0.4: comments, or `name{labels} value`. */
const SAMPLE =
  /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\})? -?[0-9.e+]+$/;

function samples(text: string): Map<string, number> {
  const map = new Map<string, number>();
  for (const line of text.trimEnd().split('\n')) {
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    expect(line).toMatch(SAMPLE);
    const at = line.lastIndexOf(' ');
    map.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return map;
}

describe('metrics exposition', () => {
  it('renders valid Prometheus text with a HELP and TYPE for every family, ending in a newline', () => {
    const metrics = createMetrics();
    metrics.inc('aleatoria_errors_total', 'we"ird\\code\n');
    const text = metrics.render(gauges);
    expect(text.endsWith('\n')).toBe(true);
    const families = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => m[1]);
    expect(families).toContain('aleatoria_time_to_match_seconds');
    expect(new Set(families).size).toBe(families.length);
    const values = samples(text);
    expect(values.get('aleatoria_connections')).toBe(3);
    expect(values.get('aleatoria_errors_total{code="we\\"ird\\\\code\\n"}')).toBe(1);
  });

  it('keeps the histogram cumulative, with sum and count', () => {
    const metrics = createMetrics();
    for (const seconds of [0.05, 0.7, 3, 400]) metrics.observeMatch(seconds);
    const values = samples(metrics.render(gauges));
    expect(values.get('aleatoria_time_to_match_seconds_bucket{le="0.1"}')).toBe(1);
    expect(values.get('aleatoria_time_to_match_seconds_bucket{le="1"}')).toBe(2);
    expect(values.get('aleatoria_time_to_match_seconds_bucket{le="5"}')).toBe(3);
    expect(values.get('aleatoria_time_to_match_seconds_bucket{le="300"}')).toBe(3);
    expect(values.get('aleatoria_time_to_match_seconds_bucket{le="+Inf"}')).toBe(4);
    expect(values.get('aleatoria_time_to_match_seconds_count')).toBe(4);
    expect(values.get('aleatoria_time_to_match_seconds_sum')).toBeCloseTo(403.75);
  });
});

describe('hub metrics', () => {
  it('counts messages in and out by type, errors by code, matches, relays to unknown users and time to match', () => {
    const h = makeHub({ maxRoomsPerConnection: 4 });
    const hub = h.hub;
    hub.open('a', { userId: 'alice' });
    hub.open('b', { userId: 'bob' });
    const say = (conn: string, message: unknown) => hub.message(conn, JSON.stringify(message));
    say('b', { type: 'user_available_webrtc' });
    h.advance(1500);
    h.script(0);
    say('a', { type: 'request_random_peer' });
    say('a', { type: 'chat_message', room: 'Lobby', payload: { content: 'hi' } });
    say('a', { type: 'webrtc_offer', toUser: 'ghost', payload: { type: 'offer', sdp: 'v=0' } });
    hub.message('a', 'not json');
    const values = samples(hub.renderMetrics());
    expect(values.get('aleatoria_messages_in_total{type="request_random_peer"}')).toBe(1);
    expect(values.get('aleatoria_messages_in_total{type="invalid"}')).toBe(1);
    expect(values.get('aleatoria_messages_out_total{type="assign_role"}')).toBe(2);
    expect(values.get('aleatoria_messages_out_total{type="chat_message"}')).toBe(2);
    expect(values.get('aleatoria_errors_total{code="user_not_found"}')).toBe(1);
    expect(values.get('aleatoria_errors_total{code="invalid_json"}')).toBe(1);
    expect(values.get('aleatoria_relays_to_unknown_total')).toBe(1);
    expect(values.get('aleatoria_matches_total')).toBe(1);
    expect(values.get('aleatoria_time_to_match_seconds_bucket{le="1"}')).toBe(0);
    expect(values.get('aleatoria_time_to_match_seconds_bucket{le="2"}')).toBe(1);
    expect(values.get('aleatoria_connections')).toBe(2);
    expect(values.get('aleatoria_pairs')).toBe(1);
  });
});
