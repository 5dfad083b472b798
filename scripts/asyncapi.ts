/**
 * The WebSocket API as an AsyncAPI 3.0 document, for code generators and docs sites. Served at
 * `GET /asyncapi.json`; built by scripts/build-web.ts into src/web/assets.generated.ts, since the
 * Worker has no file system and no valibot-to-JSON-Schema converter at run time.
 *
 * Nothing here is written by hand twice: every payload schema is the one `/protocol.json` publishes
 * (protocolSchema(), from the valibot unions), and every example is a ```json block of
 * docs/protocol.md (section "Client messages" for what a client sends, "Server messages" for what
 * it receives), matched by `type`. A message type without an example there, or an example the
 * valibot schemas refuse, throws: the build fails rather than let the page and the document drift.
 */
import { toJsonSchema } from '@valibot/to-json-schema';
import * as v from 'valibot';
import {
  CLIENT_MESSAGE_SCHEMAS,
  ClientMessage,
  ReconnectToken,
  ServerMessage,
} from '../src/core/protocol.ts';
import { protocolSchema } from './protocol-schema.ts';

type JsonSchema = { properties?: Record<string, JsonSchema>; [keyword: string]: unknown };

/** One ```json block of docs/protocol.md: its line, and the `###` heading it sits under. */
export interface DocExample {
  type: string;
  line: number;
  heading: string;
  payload: Record<string, unknown>;
}

/** The ```json blocks of the `## N. <section>` part of the markdown, each a message with a `type`. */
export function docExamples(markdown: string, section: string): DocExample[] {
  const lines = markdown.split('\n');
  // By title, not number: renumbering the page's sections must not lose its examples.
  const start = lines.findIndex((line) => /^## (?:\d+\. )?(.*)$/.exec(line)?.[1] === section);
  if (start < 0) throw new Error(`docs/protocol.md has no "## ${section}" section`);
  const examples: DocExample[] = [];
  let heading = section;
  for (let i = start + 1; i < lines.length && !lines[i]!.startsWith('## '); i++) {
    const text = lines[i]!;
    if (text.startsWith('### ')) heading = text.slice(4).replaceAll('`', '');
    if (text.trim() !== '```json') continue;
    const end = lines.indexOf('```', i + 1);
    const line = i + 1;
    if (end < 0) throw new Error(`docs/protocol.md:${line}: the json block is never closed`);
    const where = `docs/protocol.md:${line} (${heading})`;
    let payload: unknown;
    try {
      payload = JSON.parse(lines.slice(i + 1, end).join('\n'));
    } catch (error) {
      throw new Error(`${where}: not JSON: ${(error as Error).message}`);
    }
    const type = (payload as { type?: unknown } | null)?.type;
    if (typeof type !== 'string') throw new Error(`${where}: the example has no string "type"`);
    examples.push({ type, line, heading, payload: payload as Record<string, unknown> });
    i = end;
  }
  return examples;
}

/** Each message of one direction as an AsyncAPI message object, keyed `<prefix>_<type>`. */
function messages(
  prefix: 'client' | 'server',
  union: typeof ClientMessage | typeof ServerMessage,
  types: readonly string[],
  schemas: JsonSchema[],
  examples: DocExample[],
): Record<string, object> {
  const section = prefix === 'client' ? 'Client messages' : 'Server messages';
  for (const example of examples) {
    const parsed = v.safeParse(union, example.payload);
    if (!parsed.success)
      throw new Error(
        `docs/protocol.md:${example.line} (${example.heading}): the ${example.type} example does not fit the ${prefix} message schemas: ${v.summarize(parsed.issues)}`,
      );
  }
  const result: Record<string, object> = {};
  for (const type of types) {
    const payload = schemas.find((schema) => schema.properties?.type?.const === type);
    if (!payload) throw new Error(`protocolSchema() has no ${prefix} message ${type}`);
    const own = examples.filter((example) => example.type === type);
    if (own.length === 0)
      throw new Error(`docs/protocol.md, "${section}": no \`\`\`json example of ${type}`);
    result[`${prefix}_${type}`] = {
      name: type,
      title: type,
      payload,
      examples: own.map((example, index) => ({
        name: own.length === 1 ? type : `${type}_${index + 1}`,
        summary: example.heading,
        payload: example.payload,
      })),
    };
  }
  return result;
}

/**
 * The AsyncAPI 3.0 document of `GET /ws`: `markdown` is docs/protocol.md, `version` the
 * package's version.
 */
export function asyncApiDocument(markdown: string, version: string): object {
  const definitions = (protocolSchema() as { definitions: Record<string, { oneOf: JsonSchema[] }> })
    .definitions;
  const client = messages(
    'client',
    ClientMessage,
    [...CLIENT_MESSAGE_SCHEMAS.keys()],
    definitions.ClientMessage!.oneOf,
    docExamples(markdown, 'Client messages'),
  );
  const server = messages(
    'server',
    ServerMessage,
    ServerMessage.options.map((option) => option.entries.type.literal),
    definitions.ServerMessage!.oneOf,
    docExamples(markdown, 'Server messages'),
  );
  const field = (key: string, name: string) =>
    (client[key] as { payload: JsonSchema }).payload.properties![name]!;
  // The query takes the message fields' rules: userId is UserId (as `toUser`), room is RoomName
  // (as join_room's `room`) or empty, which the server reads as absent. No message carries the
  // reconnect token, so ReconnectToken is converted here; its control-character check, which the
  // converter drops, gets the pattern protocolSchema() gives the same check on `toUser`.
  const toUser = field('client_webrtc_offer', 'toUser');
  const { $schema: _, ...token } = toJsonSchema(ReconnectToken, { errorMode: 'ignore' });
  const query = {
    type: 'object',
    properties: {
      userId: {
        ...toUser,
        description:
          'Who you are: the address of your direct messages and signaling. Required, unless token auth is on (then the JWT subject is the userId).',
      },
      room: {
        anyOf: [field('client_join_room', 'room'), { const: '' }],
        description: 'The room joined on connect; absent or empty means Lobby.',
      },
      token: {
        ...token,
        pattern: toUser.pattern,
        description:
          'A secret the client picks once and presents on every reconnect, to take its own session over.',
      },
      access_token: {
        type: 'string',
        description: 'Only with token auth: the JWT, when it is not sent as a subprotocol.',
      },
    },
  };
  const refs = (keys: Record<string, object>) =>
    Object.keys(keys).map((key) => ({ $ref: `#/channels/ws/messages/${key}` }));
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'Aleatoria',
      version,
      description:
        "Real-time chat and WebRTC signaling over one WebSocket. Written from a client's side: `send` is what a client sends, `receive` what the server sends it. Every frame is one JSON text message; the full reference, with the rules the schemas cannot carry, is docs/protocol.md.",
    },
    servers: {
      secure: {
        host: '{host}',
        protocol: 'wss',
        description: 'A deployment behind TLS.',
        variables: {
          host: { description: 'Host name, and port if not 443.', examples: ['chat.example.com'] },
        },
      },
      plain: {
        host: '{host}',
        protocol: 'ws',
        description: 'A server without TLS, such as one started locally (PORT, default 8085).',
        variables: { host: { description: 'Host name and port.', default: 'localhost:8085' } },
      },
    },
    defaultContentType: 'application/json',
    channels: {
      ws: {
        address: '/ws',
        title: 'The WebSocket endpoint',
        description:
          'One WebSocket per client, opened with GET /ws and the query parameters of the ws binding. How a connection is refused before the upgrade, taken over or closed: docs/protocol.md sections 2 and 8.',
        messages: Object.fromEntries(
          Object.keys({ ...client, ...server }).map((key) => [
            key,
            { $ref: `#/components/messages/${key}` },
          ]),
        ),
        bindings: { ws: { method: 'GET', query, bindingVersion: '0.1.0' } },
      },
    },
    operations: {
      send: {
        action: 'send',
        channel: { $ref: '#/channels/ws' },
        summary: 'What a client sends to the server.',
        messages: refs(client),
      },
      receive: {
        action: 'receive',
        channel: { $ref: '#/channels/ws' },
        summary: 'What the server sends to a client.',
        messages: refs(server),
      },
    },
    components: { messages: { ...client, ...server } },
  };
}
