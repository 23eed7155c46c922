/**
 * The ssh fleet model of the break-glass benchmark: one loopback sshd on this machine is CPU-bound long
 * before a fleet's worth of connections, where a real fleet has one sshd per node. So the fan-out is run
 * through the transports' real engine (`runPerNode`: bounded concurrency, per-node timeout) over a
 * fleet of nodes whose operation costs what one ssh connection was measured to cost, on a fake clock:
 * the time to stop the fleet is then what the engine's scheduling makes of that cost, at any size, in
 * milliseconds of real time.
 */
import { runPerNode, type NodeTarget } from '../../operator/src/breakglass/transport.js';
import { FakeClock } from '../../testkit/core/fakeclock.js';

/** Options of {@link modelFleet}. */
export interface ModelOptions {
  nodes: number;
  concurrency: number;
  /**
   * Per-connection costs in ms, replayed in order (node i costs `costsMs[i % length]`): the measured
   * per-node durations, so the model keeps their spread, not only their median.
   */
  costsMs: readonly number[];
  /** The per-node timeout (the CRD's default `timeoutSeconds`, 10 s). */
  timeoutMs: number;
}

/** What the engine made of it. */
export interface ModelFigures {
  nodes: number;
  concurrency: number;
  /** Simulated time from the start to the last node's outcome. */
  wallMs: number;
  ok: number;
  timedOut: number;
}

/** Runs `runPerNode` over `opts.nodes` nodes, each costing its replayed cost, on a fake clock. */
export async function modelFleet(opts: ModelOptions): Promise<ModelFigures> {
  if (opts.costsMs.length === 0) throw new Error('modelFleet: no measured costs');
  const clock = new FakeClock();
  const targets: NodeTarget[] = Array.from({ length: opts.nodes }, (_, i) => ({ name: `node-${i}`, addresses: [] }));
  const costOf = new Map(targets.map((t, i) => [t.name, opts.costsMs[i % opts.costsMs.length]!]));
  const start = clock.nowMs();
  let done = false;
  const run = runPerNode(targets, { concurrency: opts.concurrency, timeoutMs: opts.timeoutMs, clock }, async (node, signal) => {
    await clock.sleep(costOf.get(node.name)!, signal);
    return { ok: true };
  }).finally(() => (done = true));
  // Time moves only to the next due timer: every connection in flight is a timer, so this visits each
  // completion in order and lets the engine start the next node in its slot.
  while (!done) {
    const next = clock.nextTimerInMs();
    await clock.advance(next ?? 0);
  }
  const outcomes = await run;
  return {
    nodes: opts.nodes,
    concurrency: opts.concurrency,
    wallMs: clock.nowMs() - start,
    ok: outcomes.filter((o) => o.result === 'ok').length,
    timedOut: outcomes.filter((o) => o.result === 'timedOut').length,
  };
}

/**
 * The smallest concurrency (up to `max`) at which the model stops every node within `budgetMs`, found by
 * bisection over model runs (time falls as concurrency rises); undefined when even `max` is too slow.
 */
export async function concurrencyFor(budgetMs: number, base: Omit<ModelOptions, 'concurrency'>, max = 512): Promise<number | undefined> {
  const fits = async (c: number): Promise<boolean> => {
    const f = await modelFleet({ ...base, concurrency: c });
    return f.ok === base.nodes && f.wallMs <= budgetMs;
  };
  if (!(await fits(max))) return undefined;
  let lo = 1;
  let hi = max;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (await fits(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
