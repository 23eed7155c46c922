import { describe, expect, test } from '@jest/globals';
import { mapLimit } from './maplimit.js';

/** A promise with its resolve/reject exposed, so the test decides when each item finishes. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: Error) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('mapLimit', () => {
  test.each([1, 3, 7, 20])('never more than %i in flight, fills every free slot, keeps input order', async (limit) => {
    const n = 25;
    const gates = Array.from({ length: n }, () => deferred<void>());
    let inFlight = 0;
    let maxInFlight = 0;
    const started: number[] = [];
    const run = mapLimit([...Array(n).keys()], limit, async (i) => {
      started.push(i);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await gates[i]!.promise;
      inFlight--;
      return i * 10;
    });
    await tick();
    expect(started).toEqual([...Array(Math.min(limit, n)).keys()]);
    // Finish items in reverse order of start within each wave: the bound must hold whatever the order.
    for (let i = n - 1; i >= 0; i--) {
      gates[i]!.resolve();
      await tick();
      expect(inFlight).toBeLessThanOrEqual(limit);
    }
    expect(await run).toEqual([...Array(n).keys()].map((i) => i * 10));
    expect(maxInFlight).toBe(Math.min(limit, n));
    expect(started.sort((a, b) => a - b)).toEqual([...Array(n).keys()]);
  });

  test('on a rejection it starts nothing new, waits for the calls in flight, then rethrows the first error', async () => {
    const gates = Array.from({ length: 6 }, () => deferred<void>());
    const started: number[] = [];
    const finished: number[] = [];
    const run = mapLimit([0, 1, 2, 3, 4, 5], 2, async (i) => {
      started.push(i);
      await gates[i]!.promise;
      finished.push(i);
    });
    await tick();
    gates[0]!.reject(new Error('boom 0'));
    await tick();
    let settled = false;
    void run.catch(() => undefined).then(() => (settled = true));
    await tick();
    // Item 1 is still running: mapLimit must not have returned yet.
    expect(settled).toBe(false);
    gates[1]!.resolve();
    await expect(run).rejects.toThrow('boom 0');
    expect(started).toEqual([0, 1]);
    expect(finished).toEqual([1]);
  });

  test('empty input, and invalid limits', async () => {
    expect(await mapLimit([], 3, async () => 1)).toEqual([]);
    await expect(mapLimit([1], 0, async () => 1)).rejects.toThrow(RangeError);
    await expect(mapLimit([1], 1.5, async () => 1)).rejects.toThrow(RangeError);
  });
});
