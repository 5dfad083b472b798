/**
 * A gateway Durable Object: the sockets of the userIds that hash to it, and the hub over them
 * (`gateway-sockets.ts`). Each method hands its event on: a connect request, a socket's frame or
 * close, and what other objects ask of it (`GatewayRpc`), answered by the shards from the hub's
 * own users.
 */
import { DurableObject } from 'cloudflare:workers';
import type { Env } from './env.ts';
import { GatewaySockets } from './gateway-sockets.ts';
import type { GatewayRpc, KeepWire } from './rpc.ts';

export class GatewayObject extends DurableObject<Env> implements GatewayRpc {
  private readonly gateway: GatewaySockets;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.gateway = new GatewaySockets(ctx, env);
  }

  override fetch(request: Request): Promise<Response> {
    return this.gateway.connect(request);
  }

  async deliver(userId: string, text: string, keep?: KeepWire) {
    return this.gateway.shards.answer.deliver(userId, text, keep);
  }
  async pair(userId: string, partner: string, announce: string, match: number) {
    return this.gateway.shards.answer.pair(userId, partner, announce, match);
  }
  async endPair(userId: string, formerPartner: string, hangup?: string) {
    return this.gateway.shards.answer.endPair(userId, formerPartner, hangup);
  }
  async roomDeliver(room: string, text: string) {
    return this.gateway.shards.answer.roomDeliver(room, text);
  }
  async readHistory(conversation: string, before: string | undefined, limit: number) {
    return this.gateway.shards.answer.readHistory(conversation, before, limit);
  }
  /** `/stats` and `/metrics` of this gateway, for the Worker to add up; `rooms`: for `/admin`. */
  async figures(rooms = false) {
    return this.gateway.figures(rooms);
  }

  override webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): void {
    this.gateway.message(ws, message);
  }
  override webSocketClose(ws: WebSocket, code: number, reason: string, wasClean: boolean): void {
    this.gateway.closed(ws, code, reason, wasClean);
  }
  override webSocketError(ws: WebSocket): void {
    this.gateway.failed(ws);
  }
}
