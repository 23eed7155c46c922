import { describe, expect, test } from '@jest/globals';
import { FakeClock } from '../../../testkit/core/fakeclock.js';
import { countOutcomes, outcomeMessage, runPerNode, type NodeOpResult, type NodeTarget } from './transport.js';

const nodes = (n: number): NodeTarget[] => Array.from({ length: n }, (_, i) => ({ name: `node-${i}`, addresses: [] }));

/** An op whose per-node completion the test controls, honouring the node signal like a killed child. */
function controlledOp() {
  const pending = new Map<string, { resolve: (r: NodeOpResult) => void }>();
  let inFlight = 0;
  let maxInFlight = 0;
  const op = (node: NodeTarget, signal: AbortSignal): Promise<NodeOpResult> =>
    new Promise<NodeOpResult>((resolve) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const done = (r: NodeOpResult): void => {
        if (!pending.has(node.name)) return;
        pending.delete(node.name);
        inFlight--;
        resolve(r);
      };
      pending.set(node.name, { resolve: done });
      // Like a killed process: the op ends with a failure once its signal aborts.
      signal.addEventListener('abort', () => done({ ok: false }), { once: true });
    });
  return {
    op,
    finish: (name: string, r: NodeOpResult) => pending.get(name)?.resolve(r),
    running: () => [...pending.keys()],
    get maxInFlight() {
      return maxInFlight;
    },
  };
}

describe('runPerNode', () => {
  test('records every node in input order: ok, failed with the message, thrown errors as failed', async () => {
    const clock = new FakeClock();
    const outcomes = await runPerNode(nodes(4), { concurrency: 2, timeoutMs: 10_000, clock }, async (n) => {
      if (n.name === 'node-1') return { ok: false, message: 'permission denied' };
      if (n.name === 'node-2') throw new Error('spawn EACCES');
      return { ok: true };
    });
    expect(outcomes).toEqual([
      { node: 'node-0', result: 'ok', durationMs: 0 },
      { node: 'node-1', result: 'failed', message: 'permission denied', durationMs: 0 },
      { node: 'node-2', result: 'failed', message: 'spawn EACCES', durationMs: 0 },
      { node: 'node-3', result: 'ok', durationMs: 0 },
    ]);
    expect(countOutcomes(outcomes)).toEqual({ ok: 2, failed: 2, timedOut: 0 });
  });

  test('a node past its time budget is aborted (its process killed) and recorded as timedOut; the others are not affected', async () => {
    const clock = new FakeClock();
    const c = controlledOp();
    const run = runPerNode(nodes(3), { concurrency: 3, timeoutMs: 5_000, clock }, c.op);
    await clock.flush();
    expect(c.running()).toEqual(['node-0', 'node-1', 'node-2']);
    c.finish('node-0', { ok: true });
    await clock.advance(2_000);
    c.finish('node-2', { ok: false, message: 'exit 1' });
    await clock.advance(3_000);
    const outcomes = await run;
    expect(outcomes).toEqual([
      { node: 'node-0', result: 'ok', durationMs: 0 },
      { node: 'node-1', result: 'timedOut', message: 'no result within 5s; killed', durationMs: 5_000 },
      { node: 'node-2', result: 'failed', message: 'exit 1', durationMs: 2_000 },
    ]);
    expect(clock.pendingTimers()).toBe(0);
  });

  test('a timed-out node frees its slot for the next one, so the bound holds and the queue still drains', async () => {
    const clock = new FakeClock();
    const c = controlledOp();
    const run = runPerNode(nodes(4), { concurrency: 2, timeoutMs: 1_000, clock }, c.op);
    await clock.flush();
    expect(c.running()).toEqual(['node-0', 'node-1']);
    await clock.advance(1_000);
    expect(c.running()).toEqual(['node-2', 'node-3']);
    c.finish('node-2', { ok: true });
    c.finish('node-3', { ok: true });
    expect((await run).map((o) => o.result)).toEqual(['timedOut', 'timedOut', 'ok', 'ok']);
    expect(c.maxInFlight).toBe(2);
  });

  test('the caller aborting: nodes in flight are killed and failed as aborted, nodes not started are "not attempted"', async () => {
    const clock = new FakeClock();
    const c = controlledOp();
    const ac = new AbortController();
    const run = runPerNode(nodes(5), { concurrency: 2, timeoutMs: 60_000, clock, signal: ac.signal }, c.op);
    await clock.flush();
    c.finish('node-0', { ok: true });
    await clock.flush();
    ac.abort(new Error('operator shutting down'));
    const outcomes = await run;
    expect(outcomes.map((o) => [o.node, o.result, o.message])).toEqual([
      ['node-0', 'ok', undefined],
      ['node-1', 'failed', 'aborted: operator shutting down'],
      ['node-2', 'failed', 'aborted: operator shutting down'],
      ['node-3', 'failed', 'not attempted: operator shutting down'],
      ['node-4', 'failed', 'not attempted: operator shutting down'],
    ]);
  });

  test('messages are redacted and shortened (child output could echo anything)', async () => {
    const clock = new FakeClock();
    const pem = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----';
    const [o] = await runPerNode(nodes(1), { concurrency: 1, timeoutMs: 1_000, clock }, async () => ({ ok: false, message: `bad: ${pem} token=abc.def` }));
    expect(o?.message).toBe('bad: [REDACTED PEM] token=[REDACTED]');
    expect(outcomeMessage('x'.repeat(2_000))).toHaveLength(500);
  });
});
