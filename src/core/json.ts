/**
 * Bounded JSON parsing. `JSON.parse` copes with deep nesting, but the relay re-serializes payloads
 * and `JSON.stringify` recurses: a 30k-deep array in a 64 KiB frame would overflow the stack on
 * the way out. One linear scan rejects deep input before any parsing is done.
 */

/** Deepest object/array nesting accepted in a client frame. WebRTC payloads need 3 at most. */
export const MAX_JSON_DEPTH = 32;

/** True when `text` nests objects/arrays deeper than `limit` (brackets inside strings do not count). */
export function exceedsJsonDepth(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > limit) return true;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    }
  }
  return false;
}

export type JsonParseResult = { ok: true; value: unknown } | { ok: false; reason: 'syntax' | 'depth' };

/** Parses a client frame: never throws, refuses nesting past {@link MAX_JSON_DEPTH}. */
export function parseJson(text: string): JsonParseResult {
  if (exceedsJsonDepth(text, MAX_JSON_DEPTH)) return { ok: false, reason: 'depth' };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, reason: 'syntax' };
  }
}
