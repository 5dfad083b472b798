/**
 * `rate`: direct chat messages at a fixed offered rate (open loop: due messages go out every few
 * milliseconds whatever came back), spread round-robin over P sender/receiver pairs. Reports the
 * rate delivered to receivers and send -> receiver latency; sender copies are not counted.
 * Args: --pairs P --rate MSGS_PER_S --tick MS --ms DURATION
 */
import { intArg, openLoop } from './common.ts';
import { directMessage, openPairs } from './dm.ts';

export async function rate() {
  const pairs = await openPairs(intArg('pairs', 200, 1, 5000));
  let next = 0;
  let seq = 0;
  return openLoop(
    pairs.map((p) => p.receiver),
    intArg('rate', 10_000, 1, 200_000),
    () => {
      const { sender, receiverId } = pairs[next]!;
      next = (next + 1) % pairs.length;
      sender.send(directMessage('chat', receiverId, seq++));
    },
  );
}
