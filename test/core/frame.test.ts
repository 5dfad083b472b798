import { describe, expect, it } from 'vitest';
import { exceedsUtf8Bytes, frameTooBig } from '../../src/core/frame.ts';

const utf8 = (text: string) => new TextEncoder().encode(text).length;

describe('exceedsUtf8Bytes', () => {
  it.each([
    ['ASCII', 'a'],
    ['two-byte (é)', 'é'],
    ['three-byte (€)', '€'],
    ['four-byte (😀, a surrogate pair)', '😀'],
  ])('agrees with TextEncoder at the limit for %s characters', (_label, unit) => {
    for (const count of [1, 100, 1000]) {
      const text = unit.repeat(count);
      const bytes = utf8(text);
      expect(exceedsUtf8Bytes(text, bytes)).toBe(false);
      expect(exceedsUtf8Bytes(text, bytes - 1)).toBe(true);
    }
  });

  it('counts a lone surrogate as three bytes, as TextEncoder does (U+FFFD)', () => {
    expect(exceedsUtf8Bytes('\ud800', 3)).toBe(false);
    expect(exceedsUtf8Bytes('\ud800', 2)).toBe(true);
  });

  it('decides mixed text exactly', () => {
    const text = 'a€😀é'.repeat(300);
    expect(exceedsUtf8Bytes(text, utf8(text))).toBe(false);
    expect(exceedsUtf8Bytes(text, utf8(text) - 1)).toBe(true);
  });
});

describe('frameTooBig', () => {
  it('measures binary frames by their bytes', () => {
    expect(frameTooBig(new ArrayBuffer(10), 10)).toBe(false);
    expect(frameTooBig(new ArrayBuffer(11), 10)).toBe(true);
    expect(frameTooBig(new Uint8Array(11), 10)).toBe(true);
    expect(frameTooBig(new Blob([new Uint8Array(11)]), 10)).toBe(true);
  });
});
