/**
 * Bounded JSON parsing. `JSON.parse` copes with deep nesting (V8 parses iteratively), but the
 * relay re-serializes payloads and `JSON.stringify` recurses: a 30k-deep array in a frame would
 * overflow the stack on the way out. The parsed value's depth is checked instead of the text's: a
 * walk over its nodes, stopping at the limit, is far cheaper than a scan of every character of
 * an SDP-sized frame; and a frame with few `{`/`[` at all (a native search) needs no walk.
 */

/** Deepest object/array nesting accepted in a client frame. WebRTC payloads need 3 at most. */
export const MAX_JSON_DEPTH = 32;

/** True when `value` nests objects/arrays deeper than `limit`. Recurses at most `limit + 1` deep. */
export function valueDepthExceeds(value: unknown, limit: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (limit <= 0) return true;
  if (Array.isArray(value)) {
    for (const item of value) if (valueDepthExceeds(item, limit - 1)) return true;
    return false;
  }
  for (const key in value)
    if (valueDepthExceeds((value as Record<string, unknown>)[key], limit - 1)) return true;
  return false;
}

/**
 * True when `text` holds more than `limit` of the characters that open a level (`{`, `[`), in
 * strings or not: below that, no nesting can pass `limit` and the value needs no walk.
 */
function mayNestDeeperThan(text: string, limit: number): boolean {
  let openers = 0;
  for (const opener of ['{', '[']) {
    for (let at = text.indexOf(opener); at >= 0; at = text.indexOf(opener, at + 1))
      if (++openers > limit) return true;
  }
  return false;
}

export type JsonParseResult =
  | { ok: true; value: unknown }
  | { ok: false; reason: 'syntax' | 'depth' };

/** Parses a client frame: never throws, refuses nesting past {@link MAX_JSON_DEPTH}. */
export function parseJson(text: string): JsonParseResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'syntax' };
  }
  return mayNestDeeperThan(text, MAX_JSON_DEPTH) && valueDepthExceeds(value, MAX_JSON_DEPTH)
    ? { ok: false, reason: 'depth' }
    : { ok: true, value };
}
