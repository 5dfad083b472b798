/**
 * The package's root (`aleatoria`): the runtime-neutral Hono app factory, the configuration it is
 * built from, and the connection layer, for a runtime of one's own. A runtime's ready-made chat,
 * to serve or mount with `app.route('/chat', chat.app)`, is `aleatoria()` of `aleatoria/node`,
 * `aleatoria/deno` or `aleatoria/cloudflare`; the browser SDK is `aleatoria/client`.
 */
export { createApp } from './app.ts';
export type { AppOptions, ConnectRequest } from './app.ts';
export { CONFIG_VARIABLES, ConfigError, parseConfig } from './core/config.ts';
export type { Config, Env } from './core/config.ts';
export { createLogger } from './core/log.ts';
export type { Logger } from './core/log.ts';
export { createSocketBridge } from './socket-bridge.ts';
export type { SocketBridge } from './socket-bridge.ts';
export type { ClientMessage, ServerMessage } from './core/protocol.ts';
