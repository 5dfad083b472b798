/**
 * What the Node and Deno factories (`aleatoria()` in node.ts and deno.ts) share: their options,
 * what they return, the configuration and logger they resolve, and the wait of their drain.
 */
import type { Hono } from 'hono';
import type { ClusterAdmin } from '../admin/cluster.ts';
import { parseConfig, type Config, type Env } from '../core/config.ts';
import type { HubSeams } from '../core/hub-api.ts';
import { CloseCode } from '../core/hub.ts';
import { createLogger, type Logger } from '../core/log.ts';
import type { BridgeSocket, SocketBridge } from '../socket-bridge.ts';

export interface ChatOptions {
  /**
   * The configuration as environment variables (`process.env`, `Deno.env.toObject()`), parsed as
   * `npm start` parses its own; a bad value throws `ConfigError`. Ignored when `config` is given.
   */
  env?: Env;
  config?: Config;
  /** Default: JSON lines on standard output at `LOG_LEVEL`. */
  log?: Logger;
  /** Where the hub's state lives when this process is one node of a cluster. */
  seams?: HubSeams;
  /** The operator page's view of that cluster (`src/admin/cluster.ts`). */
  cluster?: ClusterAdmin;
}

export interface Chat<Socket extends BridgeSocket> {
  /** The chat's routes (`/ws`, `/health`, the page...), to serve as is or mount under a path. */
  readonly app: Hono;
  readonly config: Config;
  readonly bridge: SocketBridge<Socket>;
  /**
   * Refuses new upgrades (503), closes every socket with 1012, and resolves once all are gone (on
   * a cluster node, once the calls held for their users have moved too) or the drain window ends.
   */
  shutdown(): Promise<void>;
}

/** The configuration and logger of `options`, parsed or made as the server itself would. */
export function resolveChat(
  options: ChatOptions,
  writeLine: (line: string) => void,
): { config: Config; log: Logger } {
  const config = options.config ?? parseConfig(options.env ?? {});
  return { config, log: options.log ?? createLogger(config.logLevel, writeLine) };
}

/**
 * The drain after SIGTERM: every socket closed with 1012, then a wait until `open()` is 0 and, on
 * a cluster node, until every call held for its user has moved with it to another node, or
 * `timeoutMs`; a call still held then ends as a disconnect does (its partner gets the hangup).
 */
export async function drain(
  bridge: SocketBridge<BridgeSocket>,
  open: () => number,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // One process has nobody to hand a call to: a call held for a user who dropped earlier ends now.
  const handsOver = bridge.closeAll(CloseCode.serviceRestart, 'service restart');
  while ((open() > 0 || (handsOver && bridge.hub.waiting > 0)) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  bridge.hub.endWaits();
}
