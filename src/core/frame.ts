/**
 * Inbound frame size, for runtimes that cannot cap frames before delivering them (Deno, and
 * Workers, which allow 32 MiB): `MAX_MESSAGE_BYTES` counts UTF-8 bytes, as on the wire.
 */

/** True when `text` takes more than `limit` bytes in UTF-8; encodes nothing when its length decides. */
export function exceedsUtf8Bytes(text: string, limit: number): boolean {
  // Every UTF-16 unit takes 1 to 3 UTF-8 bytes (a surrogate pair takes 4 for its 2 units).
  if (text.length > limit) return true;
  if (text.length * 3 <= limit) return false;
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
    if (bytes > limit) return true;
  }
  return false;
}

/** True when a received frame (text or binary) is larger than `limit` bytes. */
export function frameTooBig(data: unknown, limit: number): boolean {
  if (typeof data === 'string') return exceedsUtf8Bytes(data, limit);
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength > limit;
  if (typeof Blob !== 'undefined' && data instanceof Blob) return data.size > limit;
  return false;
}
