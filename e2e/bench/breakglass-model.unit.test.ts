import { describe, expect, it } from '@jest/globals';
import { concurrencyFor, modelFleet } from './breakglass-model.js';

describe('the ssh fleet model (runPerNode over replayed per-connection costs, fake clock)', () => {
  it('takes what bounded concurrency makes of the costs: 100 nodes of 100 ms, 10 at a time, is 1 s', async () => {
    expect(await modelFleet({ nodes: 100, concurrency: 10, costsMs: [100], timeoutMs: 10_000 })).toEqual({
      nodes: 100,
      concurrency: 10,
      wallMs: 1000,
      ok: 100,
      timedOut: 0,
    });
  });

  it('replays the measured spread in turn, and a connection past the timeout is a timed-out node', async () => {
    // Two slots, nodes costing 100, 300, 100, 300 ms: the first free slot takes the next node, so slot A
    // runs nodes 0, 2 and 3 (100 + 100 + 300) while slot B runs node 1 (300): 500 ms, not 400.
    expect((await modelFleet({ nodes: 4, concurrency: 2, costsMs: [100, 300], timeoutMs: 10_000 })).wallMs).toBe(500);
    const slow = await modelFleet({ nodes: 3, concurrency: 3, costsMs: [50, 20_000], timeoutMs: 1000 });
    expect(slow).toMatchObject({ ok: 2, timedOut: 1, wallMs: 1000 });
  });

  it('finds the smallest concurrency that fits the budget', async () => {
    const base = { nodes: 1000, costsMs: [100], timeoutMs: 10_000 };
    // 1000 × 100 ms within 2 s needs 50 at once; 49 takes 21 rounds (2.1 s).
    expect(await concurrencyFor(2000, base)).toBe(50);
    expect(await concurrencyFor(50, base)).toBeUndefined();
  });
});
