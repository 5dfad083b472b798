/**
 * The protocol as JSON Schema, generated from the valibot schemas of src/core/protocol.ts, for
 * clients in other languages. Served at `GET /protocol.json`.
 *
 * Valibot `check` actions have no JSON Schema form of their own; the two that bound fields are
 * mapped by hand (control characters -> pattern, content length -> maxLength, which JSON Schema
 * counts in code points as the server does). What stays server-side only: UTF-8 byte caps on SDP,
 * and "exactly one of room or toUser" on chat_message.
 */
import { toJsonSchema, type ConversionConfig } from '@valibot/to-json-schema';
import { ClientMessage, MAX_CONTENT_CHARS, ServerMessage } from '../src/core/protocol.ts';

const NO_CONTROL_CHARS = '^[^\\u0000-\\u001f\\u007f-\\u009f]*$';

export function protocolSchema(): object {
  const options: ConversionConfig = {
    errorMode: 'ignore',
    overrideAction({ valibotAction, jsonSchema }) {
      if (valibotAction.type !== 'check') return undefined;
      const message = 'message' in valibotAction ? valibotAction.message : undefined;
      if (message === 'must not contain control characters')
        return { ...jsonSchema, pattern: NO_CONTROL_CHARS };
      if (message === `at most ${MAX_CONTENT_CHARS} characters`)
        return { ...jsonSchema, maxLength: MAX_CONTENT_CHARS };
      return undefined;
    },
  };
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'Aleatoria protocol',
    description:
      'Frames of GET /ws, as JSON text. ClientMessage: what a client may send; ServerMessage: what the server sends.',
    definitions: {
      ClientMessage: toJsonSchema(ClientMessage, options),
      ServerMessage: toJsonSchema(ServerMessage, options),
    },
  };
}
