/// <reference lib="dom" />
/**
 * JSR's `./client` (deno.json): the browser SDK of src/client/, with the DOM's types (WebRTC,
 * `RTCIceServer`...) that Deno's own globals lack. npm's `aleatoria/client` is src/client/ itself.
 */
export * from './client/index.ts';
