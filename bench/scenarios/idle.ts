/**
 * `idle`: holds N open sockets, prints `{"ready":true,...}` once all are open, and holds them until
 * stdin closes, so the runner can read the server's memory meanwhile.
 * Args: --sockets N
 */
import { intArg, openAll, run } from './common.ts';

export async function idle(): Promise<never> {
  const count = intArg('sockets', 2000, 1, 100_000);
  const started = performance.now();
  const held = await openAll(Array.from({ length: count }, (_, i) => `idle${run}${i}`));
  console.log(
    JSON.stringify({ ready: true, sockets: held.length, connectMs: performance.now() - started }),
  );
  process.stdin.resume();
  process.stdin.once('end', () => process.exit(0));
  return new Promise<never>(() => {});
}
