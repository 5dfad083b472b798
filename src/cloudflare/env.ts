/**
 * What the Worker and the Durable Objects share: the bindings, the configuration parsed once per
 * isolate, how a userId picks its gateway, and how the Worker hands a checked connect request to
 * the gateway. What the objects ask of each other: `rpc.ts`.
 */
import * as v from 'valibot';
import { parseConfig, type Config } from '../core/config.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { ReconnectToken, RoomName, UserId } from '../core/protocol.ts';
import { gatewayOf } from '../core/shard.ts';
import type { GatewayRpc, MatchmakerRpc, RoomRpc } from './rpc.ts';

type Rpc<T> = Rpc.DurableObjectBranded & T;

export interface Env {
  /** The gateways: `gateway-{n}` holds the sockets of the userIds that hash to n. */
  GATEWAY: DurableObjectNamespace<Rpc<GatewayRpc>>;
  /** One object per room (named by the room). */
  ROOM: DurableObjectNamespace<Rpc<RoomRpc>>;
  /** The one matchmaker (`MATCHMAKER_NAME`). */
  MATCHMAKER: DurableObjectNamespace<Rpc<MatchmakerRpc>>;
  [variable: string]: unknown;
}

export const MATCHMAKER_NAME = 'matchmaker';
export { gatewayOf };

/** The gateway object of `name`. */
export const gateway = (env: Env, name: string) => env.GATEWAY.get(env.GATEWAY.idFromName(name));
/** The object of `room`. */
export const roomObject = (env: Env, room: string) => env.ROOM.get(env.ROOM.idFromName(room));
/** The matchmaker. */
export const matchmaker = (env: Env) =>
  env.MATCHMAKER.get(env.MATCHMAKER.idFromName(MATCHMAKER_NAME));

/** Carries the checked connect request from the Worker to the object; the Worker builds it, a client never can. */
export const CONNECT_HEADER = 'x-aleatoria-connect';
/** Tells a gateway its own name (objects cannot read it from their id in every runtime). */
export const GATEWAY_HEADER = 'x-aleatoria-gateway';

/** What the Worker checked, as the object reads it back. */
export const ConnectRequestSchema = v.object({
  userId: UserId,
  room: v.optional(RoomName),
  token: v.optional(ReconnectToken),
  ip: v.optional(v.pipe(v.string(), v.maxLength(64))),
  protocol: v.optional(v.pipe(v.string(), v.maxLength(8192))),
});

const configs = new WeakMap<object, Config>();
/** Configuration from the Worker's `[vars]` and secrets, parsed once per isolate. */
export function configFor(env: Env): Config {
  let config = configs.get(env);
  if (!config) configs.set(env, (config = parseConfig(env)));
  return config;
}

export const logFor = (config: Config): Logger =>
  createLogger(config.logLevel, (line) => console.log(line));
