/**
 * A WebSocket the SDK tests drive by hand: it records what the client sends, and the test opens
 * it, feeds it server frames and drops it. Every instance made is kept in `instances`.
 */
export class FakeWebSocket {
  static instances: FakeWebSocket[] = [];
  readyState = 0;
  sent: string[] = [];
  closedWith: number | undefined;
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;

  constructor(readonly url: string) {
    FakeWebSocket.instances.push(this);
  }
  send(data: string): void {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.sent.push(data);
  }
  close(code?: number): void {
    this.readyState = 2;
    this.closedWith = code ?? 1005;
  }

  open(): void {
    this.readyState = 1;
    this.onopen?.(new Event('open'));
  }
  /** A server frame: an object is sent as its JSON, a string as is. */
  receive(message: unknown): void {
    this.onmessage?.({
      data: typeof message === 'string' ? message : JSON.stringify(message),
    } as MessageEvent);
  }
  drop(code = 1006, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason } as CloseEvent);
  }
  frames(): Record<string, unknown>[] {
    return this.sent.map((text) => JSON.parse(text) as Record<string, unknown>);
  }
  /** The last frame sent of `type`. */
  last(type: string): Record<string, unknown> & { messageId: string } {
    const frame = this.frames().findLast((f) => f.type === type);
    if (!frame) throw new Error(`no ${type} was sent`);
    return frame as Record<string, unknown> & { messageId: string };
  }
  count(type: string): number {
    return this.frames().filter((f) => f.type === type).length;
  }
}
