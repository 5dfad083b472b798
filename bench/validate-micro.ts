/**
 * Frame validation alone, in process: valibot's `safeParse` against the compiled fast path
 * (src/core/schema-fast-path.ts) on the frames `npm run bench` sends, with `JSON.parse` of the same
 * text for scale. Batches alternate between the three; the fastest batch of each is reported (on a
 * shared machine, the minimum is what the code costs, the rest is other work).
 *
 *   node --import tsx bench/validate-micro.ts [--batches 15] [--per-batch 50000]
 */
import * as v from 'valibot';
import { CLIENT_MESSAGE_SCHEMAS } from '../src/core/protocol.ts';
import { compileFastPath, DECLINED } from '../src/core/schema-fast-path.ts';
import { directMessage } from './scenarios/dm.ts';

const argv = process.argv.slice(2);
const option = (name: string, fallback: number) =>
  argv.includes(`--${name}`) ? Number(argv[argv.indexOf(`--${name}`) + 1]) : fallback;
const batches = option('batches', 15);
const perBatch = option('per-batch', 50_000);

const FRAMES: Record<string, string> = {
  relay: directMessage('relay', 'r1', 1),
  'relay-flat': directMessage('relay-flat', 'r1', 1),
  chat: directMessage('chat', 'r1', 1),
  request_random_peer: '{"type":"request_random_peer","messageId":"q123"}',
  user_available_webrtc: '{"type":"user_available_webrtc"}',
  hangup: '{"type":"hangup","toUser":"p12","payload":{"reason":"bench"}}',
};
const CONFIG = { abortEarly: true } as const;

/** Microseconds per call of the fastest of `batches` batches. */
function time(run: () => void): () => number {
  let best = Infinity;
  return () => {
    const start = performance.now();
    run();
    best = Math.min(best, ((performance.now() - start) * 1000) / perBatch);
    return best;
  };
}

for (const [name, text] of Object.entries(FRAMES)) {
  const value = JSON.parse(text);
  const schema = CLIENT_MESSAGE_SCHEMAS.get(value.type)!;
  const fast = compileFastPath(schema)!;
  const timers = {
    valibot: time(() => {
      for (let i = 0; i < perBatch; i++)
        if (!v.safeParse(schema, value, CONFIG).success) throw new Error(name);
    }),
    fast: time(() => {
      for (let i = 0; i < perBatch; i++) if (fast(value) === DECLINED) throw new Error(name);
    }),
    'JSON.parse': time(() => {
      for (let i = 0; i < perBatch; i++) JSON.parse(text);
    }),
  };
  const best: Record<string, number> = {};
  for (let b = 0; b < batches; b++) for (const [k, t] of Object.entries(timers)) best[k] = t();
  console.log(
    `${name.padEnd(22)} ${Object.entries(best)
      .map(([k, us]) => `${k} ${us.toFixed(3)} us`)
      .join(', ')}`,
  );
}
