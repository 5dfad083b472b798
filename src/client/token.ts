/** Random identifiers from the platform's CSPRNG (browsers, Deno and Node 20+ all have `crypto`). */

/** `bytes` random bytes as lower-case hex (a 16-byte token is 32 characters). */
export function randomToken(bytes = 16): string {
  const data = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(data);
  return Array.from(data, (byte) => byte.toString(16).padStart(2, '0')).join('');
}
