/**
 * GET /asyncapi.json: the AsyncAPI document is current, passes @asyncapi/parser, lists every
 * message type of the valibot unions with docs/protocol.md examples that its own payload schema
 * accepts, documents the /ws query as the server reads it, and cannot be built from a page that
 * lacks an example or shows a wrong one.
 */
import { Parser } from '@asyncapi/parser';
import { Ajv } from 'ajv';
import { readFileSync } from 'node:fs';
import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { asyncApiDocument, docExamples } from '../../scripts/asyncapi.ts';
import {
  CLIENT_MESSAGE_SCHEMAS,
  ReconnectToken,
  RoomName,
  ServerMessage,
  UserId,
} from '../../src/core/protocol.ts';
import { ASYNCAPI_JSON } from '../../src/web/assets.generated.ts';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const markdown = read('docs/protocol.md');
const { version } = JSON.parse(read('package.json')) as { version: string };

const CLIENT_TYPES = [...CLIENT_MESSAGE_SCHEMAS.keys()];
const SERVER_TYPES = ServerMessage.options.map((option) => option.entries.type.literal);

// strict: false: the parser annotates schemas with x-parser-* keys, which Ajv would refuse.
const ajv = new Ajv({ strict: false, allErrors: true });
// Parsed once: the parser loads its rulesets for seconds.
const parsed = new Parser().parse(ASYNCAPI_JSON);

/** The page with every ```json example of `type` cut out. */
const withoutExamplesOf = (type: string) =>
  markdown.replace(/```json\n(.*?)\n```/gs, (block, json: string) =>
    (JSON.parse(json) as { type: string }).type === type ? '' : block,
  );

describe('AsyncAPI document', () => {
  it('is what the server serves (the build is current)', () => {
    expect(JSON.parse(ASYNCAPI_JSON)).toEqual(asyncApiDocument(markdown, version));
  });

  it('passes @asyncapi/parser with no error and no warning', async () => {
    const { document, diagnostics } = await parsed;
    // Severity 0 is an error, 1 a warning; 2 and 3 are hints (such as "3.1.0 exists").
    const problems = diagnostics
      .filter((diagnostic) => diagnostic.severity <= 1)
      .map((diagnostic) => `${diagnostic.path.join('.')}: ${diagnostic.message}`);
    expect(problems).toEqual([]);
    expect(document?.version()).toBe('3.0.0');
  }, 30_000);

  it.each([
    { operation: 'send', types: CLIENT_TYPES },
    { operation: 'receive', types: SERVER_TYPES },
  ])(
    '$operation has every message type, each with examples its payload schema accepts',
    async ({ operation, types }) => {
      const { document } = await parsed;
      const found = document!.operations().get(operation)!;
      expect(
        found
          .channels()
          .all()
          .map((channel) => channel.address()),
      ).toEqual(['/ws']);
      const messages = found.messages().all();
      expect(messages.map((message) => message.name()).sort()).toEqual([...types].sort());
      for (const message of messages) {
        const examples = message.examples().all();
        expect(examples.length, message.name()).toBeGreaterThan(0);
        const valid = ajv.compile(message.payload()!.json());
        for (const example of examples) {
          expect((example.payload() as { type: string }).type).toBe(message.name());
          expect(valid(example.payload()), JSON.stringify([example.name(), valid.errors])).toBe(
            true,
          );
        }
      }
    },
    30_000,
  );

  it('documents the /ws query parameters with the rules the server applies', async () => {
    const { document } = await parsed;
    const binding = document!.channels().get('ws')!.bindings().get('ws')!;
    const query = (binding.value() as { query: { properties: Record<string, object> } }).query;
    expect(Object.keys(query.properties).sort()).toEqual(
      ['access_token', 'room', 'token', 'userId'].sort(),
    );
    const samples = ['alice', '', 'a\u0007b', 'x'.repeat(64), 'x'.repeat(65)];
    samples.push('x'.repeat(128), 'x'.repeat(129), 'x'.repeat(256), 'x'.repeat(257));
    const rules = {
      userId: (text: string) => v.is(UserId, text),
      // An empty room is read as absent (the Lobby), not refused.
      room: (text: string) => text === '' || v.is(RoomName, text),
      token: (text: string) => v.is(ReconnectToken, text),
    };
    for (const [name, rule] of Object.entries(rules)) {
      const valid = ajv.compile(query.properties[name]!);
      for (const sample of samples)
        expect(valid(sample), `${name} = ${JSON.stringify(sample)}`).toBe(rule(sample));
    }
  }, 30_000);

  it('takes its examples from the right section of the page', () => {
    const client = docExamples(markdown, 'Client messages');
    const server = docExamples(markdown, 'Server messages');
    expect(new Set(client.map((example) => example.type))).toEqual(new Set(CLIENT_TYPES));
    expect(new Set(server.map((example) => example.type))).toEqual(new Set(SERVER_TYPES));
    // A line number, for the build's error messages, and the heading the example sits under.
    expect(client[0]!.heading).toBe('chat_message to a room');
    expect(markdown.split('\n')[client[0]!.line - 1]).toBe('```json');
  });

  it.each(['get_rooms', 'no_peer_available'])(
    'is a build error when the page has no example of %s',
    (type) => {
      expect(() => asyncApiDocument(withoutExamplesOf(type), version)).toThrow(
        new RegExp(`no \`\`\`json example of ${type}$`),
      );
    },
  );

  it('is a build error when an example does not fit its schema, or names an unknown type', () => {
    const wrong = markdown.replace('{"type":"join_room","room":"music"', '{"type":"join_room"');
    expect(wrong).not.toBe(markdown);
    expect(() => asyncApiDocument(wrong, version)).toThrow(
      /^docs\/protocol\.md:\d+ \(join_room\): the join_room example does not fit/,
    );
    const unknown = markdown.replace('{"type":"get_rooms"', '{"type":"get_roms"');
    expect(() => asyncApiDocument(unknown, version)).toThrow(/get_roms example does not fit/);
  });
});
