/**
 * What the Worker and the hub object share: the bindings, the configuration parsed once per
 * isolate, and how the Worker hands a checked connect request to the object.
 */
import * as v from 'valibot';
import { parseConfig, type Config } from '../core/config.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { ReconnectToken, RoomName, UserId } from '../core/protocol.ts';
import type { HubObject } from './cloudflare-object.ts';

export interface Env {
  HUB: DurableObjectNamespace<HubObject>;
  [variable: string]: unknown;
}

/** Carries the checked connect request from the Worker to the object; the Worker builds it, a client never can. */
export const CONNECT_HEADER = 'x-aleatoria-connect';
export const HUB_NAME = 'hub';

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
