/**
 * Which of `shards` a key belongs to, the same everywhere and always: FNV-1a (32-bit) of the key's
 * UTF-16 code units, modulo the count. Cloudflare's gateways are chosen so (`gatewayOf`), which
 * keeps each userId on one gateway; stable across isolates, runtimes and releases.
 */
export function shardOf(key: string, shards: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % shards;
}

/** The name of the gateway holding `userId` among `shards` (`gateway-{n}`). */
export const gatewayOf = (userId: string, shards: number) => `gateway-${shardOf(userId, shards)}`;
