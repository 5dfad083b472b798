/**
 * A client's text frame to a checked {@link ClientMessage}, or the `error_response` it deserves:
 * JSON (depth-limited), then the schema of the frame's own `type`. Details name the field and the
 * rule, never the input. Each schema runs through its compiled fast path first
 * (`schema-fast-path.ts`); valibot itself decides whatever the fast path does not accept, so
 * every rejection (and its details) is valibot's.
 */
import * as v from 'valibot';
import { MAX_JSON_DEPTH, parseJson } from './json.ts';
import { CLIENT_MESSAGE_SCHEMAS, type ClientMessage, type ResponseErrorCode } from './protocol.ts';
import { compileFastPath, DECLINED, type FastPath } from './schema-fast-path.ts';

export type Inbound =
  | { ok: true; message: ClientMessage }
  | { ok: false; code: ResponseErrorCode; error: string; details: string };

const PARSE_CONFIG = { abortEarly: true } as const;
/** Each type's generated fast path; none where the runtime forbids generating code (Workers). */
const FAST_PATHS = new Map<string, FastPath>();
for (const [type, schema] of CLIENT_MESSAGE_SCHEMAS) {
  const fast = compileFastPath(schema);
  if (fast) FAST_PATHS.set(type, fast);
}
const INVALID = 'Invalid message structure';

function describeIssue(issue: v.BaseIssue<unknown>): string {
  const path = v.getDotPath(issue) ?? 'message';
  // Valibot's messages end in "but received <the input>": never echo client input back.
  return `${path}: ${issue.message.replace(/ but received[\s\S]*$/, '')}`;
}

export function parseClientFrame(text: string): Inbound {
  const parsed = parseJson(text);
  if (!parsed.ok) {
    const details =
      parsed.reason === 'depth'
        ? `JSON nested deeper than ${MAX_JSON_DEPTH} levels`
        : 'not valid JSON';
    return { ok: false, code: 'invalid_json', error: INVALID, details };
  }
  const value = parsed.value;
  const type =
    typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as { type?: unknown }).type
      : undefined;
  if (typeof type !== 'string') {
    return {
      ok: false,
      code: 'invalid_message',
      error: INVALID,
      details: 'type: expected a string naming the message type',
    };
  }
  // A type with a fast path is a client type; what the fast path accepts needs nothing more.
  const fast = FAST_PATHS.get(type);
  const accepted = fast ? fast(value) : DECLINED;
  if (accepted !== DECLINED) return { ok: true, message: accepted as ClientMessage };
  // Server-only types (assign_role, room_joined...) are not here either: never relayed, unknown_type.
  const schema = CLIENT_MESSAGE_SCHEMAS.get(type);
  if (!schema)
    return {
      ok: false,
      code: 'unknown_type',
      error: 'Unknown message type',
      details: 'type: not a client message type',
    };
  const result = v.safeParse(schema, value, PARSE_CONFIG);
  if (!result.success)
    return {
      ok: false,
      code: 'invalid_message',
      error: INVALID,
      details: describeIssue(result.issues[0]),
    };
  return { ok: true, message: result.output };
}
