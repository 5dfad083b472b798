import { describe, expect, it } from 'vitest';
import { fanOut, mayRetry, retryOnce, stubBroken } from '../../src/cloudflare/fanout.ts';

/** An error as the Workers runtime throws them from a stub: flags on a plain Error. */
function platformError(flags: { retryable?: boolean; overloaded?: boolean; remote?: boolean }) {
  return Object.assign(new Error('Durable Object reset'), flags);
}

/** A call that fails with `errors` in turn, then answers `value`; counts its attempts. */
function scripted<T>(value: T, ...errors: unknown[]) {
  const call = {
    attempts: 0,
    run: (): Promise<T> => {
      const error = errors[call.attempts++];
      return error === undefined ? Promise.resolve(value) : Promise.reject(error);
    },
  };
  return call;
}

describe('which failed calls may be made again', () => {
  it('retries what the runtime marks retryable, unless the callee is overloaded', () => {
    expect(mayRetry(platformError({ retryable: true }))).toBe(true);
    expect(mayRetry(platformError({ retryable: true, overloaded: true }))).toBe(false);
    expect(mayRetry(platformError({ overloaded: true }))).toBe(false);
  });

  it('never retries an error thrown by the callee code, nor anything that is not an error', () => {
    expect(mayRetry(platformError({ remote: true }))).toBe(false);
    expect(mayRetry(new Error('boom'))).toBe(false);
    expect(mayRetry(undefined)).toBe(false);
    expect(mayRetry('retryable')).toBe(false);
    expect(mayRetry({ retryable: 'true' })).toBe(false);
  });
});

describe('which failures break the stub', () => {
  it('keeps a stub whose callee threw, and gives up one the platform failed', () => {
    expect(stubBroken(platformError({ remote: true }))).toBe(false);
    expect(stubBroken(platformError({ retryable: true }))).toBe(true);
    expect(stubBroken(new Error('network connection lost'))).toBe(true);
    expect(stubBroken(undefined)).toBe(true);
  });
});

describe('retryOnce', () => {
  it('answers at the first attempt when it succeeds', async () => {
    const call = scripted(7);
    await expect(retryOnce(call.run)).resolves.toBe(7);
    expect(call.attempts).toBe(1);
  });

  it('makes a retryable failure once more and answers the second attempt', async () => {
    const call = scripted(7, platformError({ retryable: true }));
    await expect(retryOnce(call.run)).resolves.toBe(7);
    expect(call.attempts).toBe(2);
  });

  it('gives up after the second attempt, with its error, however retryable', async () => {
    const second = platformError({ retryable: true });
    const call = scripted(7, platformError({ retryable: true }), second, undefined);
    await expect(retryOnce(call.run)).rejects.toBe(second);
    expect(call.attempts).toBe(2);
  });

  it('does not retry an overloaded callee or a thrown error', async () => {
    for (const error of [platformError({ retryable: true, overloaded: true }), new Error('x')]) {
      const call = scripted(7, error);
      await expect(retryOnce(call.run)).rejects.toBe(error);
      expect(call.attempts).toBe(1);
    }
  });
});

describe('fanOut', () => {
  it('makes every first call before it yields, in the order of the targets', () => {
    const order: string[] = [];
    void fanOut(['g1', 'g2', 'g3'], (target) => {
      order.push(target);
      return new Promise<number>(() => {});
    });
    expect(order).toEqual(['g1', 'g2', 'g3']);
  });

  it('adds up the members reached and lists the targets that hold none', async () => {
    const counts: Record<string, number> = { g1: 2, g2: 0, g3: 5 };
    const outcome = await fanOut(Object.keys(counts), async (target) => counts[target]!);
    expect(outcome).toEqual({ reached: 7, emptied: ['g2'], failed: [] });
  });

  it('retries a retryable failure of one target once, calling no other again', async () => {
    const calls: Record<string, ReturnType<typeof scripted<number>>> = {
      g1: scripted(1),
      g2: scripted(3, platformError({ retryable: true })),
    };
    const outcome = await fanOut(['g1', 'g2'], (target) => calls[target]!.run());
    expect(outcome).toEqual({ reached: 4, emptied: [], failed: [] });
    expect([calls.g1!.attempts, calls.g2!.attempts]).toEqual([1, 2]);
  });

  it('reports a target that failed for good and still delivers to the others', async () => {
    const error = new Error('gateway threw');
    const outcome = await fanOut(['g1', 'g2'], async (target) => {
      if (target === 'g1') throw error;
      return 2;
    });
    expect(outcome).toEqual({ reached: 2, emptied: [], failed: [{ target: 'g1', error }] });
  });

  it('never takes a nonsense answer for an empty gateway', async () => {
    const answers: Record<string, unknown> = { g1: Number.NaN, g2: -1, g3: '0', g4: 1.5 };
    const outcome = await fanOut(Object.keys(answers), async (target) => answers[target] as number);
    expect(outcome.emptied).toEqual([]);
    expect(outcome.failed.map((f) => f.target)).toEqual(['g1', 'g2', 'g3', 'g4']);
  });

  it('answers at once for no targets', async () => {
    await expect(fanOut([], async () => 1)).resolves.toEqual({
      reached: 0,
      emptied: [],
      failed: [],
    });
  });
});
