/**
 * Where the Durable Object keeps each session: in its socket's attachment, which survives
 * hibernation, or in the object's storage when the state is larger than an attachment holds
 * (`serializeAttachment` takes at most 2,048 bytes). Validated on every read.
 */
import * as v from 'valibot';
import { exceedsUtf8Bytes } from '../core/frame.ts';
import { type ConnId, SessionState } from '../core/hub.ts';

/** Leaves room under the 2,048-byte limit: JSON size stands in for the structured-clone size. */
const MAX_ATTACHMENT_BYTES = 1900;
const PREFIX = 'session:';
const key = (conn: ConnId) => `${PREFIX}${conn}`;

const Attachment = v.object({
  conn: v.pipe(v.string(), v.maxLength(64)),
  ip: v.optional(v.pipe(v.string(), v.maxLength(64))),
  /** The session, when small enough to live here; absent once detached or when kept in storage. */
  state: v.optional(SessionState),
  stored: v.optional(v.boolean()),
});
type Attachment = v.InferOutput<typeof Attachment>;

function attachmentOf(ws: WebSocket): Attachment | undefined {
  const parsed = v.safeParse(Attachment, ws.deserializeAttachment());
  return parsed.success ? parsed.output : undefined;
}

export function createAttachedSessions(kv: SyncKvStorage) {
  return {
    /** The socket's connection and session; `state` undefined once detached. */
    read(ws: WebSocket): { conn: ConnId; ip: string | undefined; state: unknown } | undefined {
      const attachment = attachmentOf(ws);
      if (!attachment) return undefined;
      return {
        conn: attachment.conn,
        ip: attachment.ip,
        state: attachment.stored ? kv.get(key(attachment.conn)) : attachment.state,
      };
    },
    write(ws: WebSocket, conn: ConnId, ip: string | undefined, state: SessionState) {
      const inline: Attachment = { conn, ip, state };
      if (!exceedsUtf8Bytes(JSON.stringify(inline), MAX_ATTACHMENT_BYTES)) {
        if (attachmentOf(ws)?.stored) kv.delete(key(conn));
        ws.serializeAttachment(inline);
      } else {
        kv.put(key(conn), state);
        ws.serializeAttachment({ conn, ip, stored: true } satisfies Attachment);
      }
    },
    /** Keeps only the socket's identity: its session no longer lives here (it will not be restored). */
    detach(ws: WebSocket) {
      const attachment = attachmentOf(ws);
      if (!attachment) return;
      if (attachment.stored) kv.delete(key(attachment.conn));
      ws.serializeAttachment({ conn: attachment.conn, ip: attachment.ip } satisfies Attachment);
    },
    /** The socket is gone: drops what storage held for it. */
    forget(ws: WebSocket) {
      const attachment = attachmentOf(ws);
      if (attachment?.stored) kv.delete(key(attachment.conn));
    },
    /** No socket survived: whatever a previous life spilled to storage is stale. */
    clear() {
      for (const [name] of kv.list({ prefix: PREFIX })) kv.delete(name);
    },
  };
}
