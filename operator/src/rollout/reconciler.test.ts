import { describe, expect, it } from '@jest/globals';
import type { TelemetryRollout } from '../api/types.generated.js';
import { ScriptedGates } from '../../../testkit/operator/rollout/fakes.js';
import { cond, drive, phase, stepStarts, world } from '../../../testkit/operator/rollout/world.js';
import { PROMOTE_ANNOTATION, RETRY_ANNOTATION, ABORT_ANNOTATION, RolloutReconciler } from './reconciler.js';
import { revisionOf } from './revision.js';

describe('RolloutReconciler: a healthy rollout', () => {
  it('plans LargestFirst, runs stages in order, and ends Succeeded with Ready=True', async () => {
    const w = world(
      { small: 20, big: 150, mid: 60 },
      {
        strategy: {
          stages: [
            { name: 'canary', clusters: 1, nodeSteps: [1, 10, 100], bakeSeconds: 30 },
            { name: 'rest', percent: 100, nodeSteps: [50, 100], bakeSeconds: 30, maxConcurrentClusters: 2 },
          ],
        },
      },
    );
    await drive(w, (ro) => ro.status?.phase === 'Succeeded');
    const st = w.store.current().status!;
    expect(st.clusters?.map((c) => [c.name, c.stage, c.phase])).toEqual([
      ['big', 'canary', 'Succeeded'],
      ['mid', 'rest', 'Succeeded'],
      ['small', 'rest', 'Succeeded'],
    ]);
    expect(st.progress).toBe('3/3 clusters');
    expect(cond(w, 'Ready')).toMatchObject({ status: 'True', reason: 'Succeeded', observedGeneration: 1 });
    expect(cond(w, 'Progressing')?.status).toBe('False');
    expect(st.observedGeneration).toBe(1);
    const rev = revisionOf(w.store.current().spec.collector);
    for (const n of ['big', 'mid', 'small']) {
      const c = w.cluster(n);
      expect(c.labelCounts()).toEqual({ [rev]: c.nodes.size });
      // The new revision is now stable: its DaemonSet also takes unlabelled (new) nodes.
      expect([...c.objects.values()].find((o) => o.kind === 'DaemonSet')?.metadata.labels?.['telemetry.rollout.dev/stable']).toBe('true');
    }
    // The big cluster went first and alone: every step of it started before any other cluster started.
    const starts = stepStarts(w);
    expect(starts.slice(0, 3)).toEqual(['big: step 1/3 (1% of nodes)', 'big: step 2/3 (10% of nodes)', 'big: step 3/3 (100% of nodes)']);
    expect(starts).toHaveLength(3 + 2 + 2);
  });

  it('moves exactly ceil(p% x nodes) nodes at each step (1% of 7 nodes is 1)', async () => {
    const w = world({ odd: 7 }, { strategy: { stages: [{ name: 'only', clusters: 1, nodeSteps: [1, 50, 100], bakeSeconds: 10 }] } });
    const seen: number[] = [];
    await drive(w, (ro) => ro.status?.phase === 'Succeeded', {
      onPass: () => {
        const c = w.store.current().status?.clusters?.[0];
        if (c?.phase === 'Baking' && seen[seen.length - 1] !== c.nodesUpdated) seen.push(c.nodesUpdated ?? -1);
      },
    });
    expect(seen).toEqual([1, 4, 7]);
  });

  it('handles a cluster with 0 nodes', async () => {
    const w = world({ empty: 0, one: 1 });
    await drive(w, (ro) => ro.status?.phase === 'Succeeded');
    expect(w.store.current().status?.clusters?.map((c) => [c.name, c.phase, c.nodesUpdated])).toEqual([
      ['one', 'Succeeded', 1],
      ['empty', 'Succeeded', 0],
    ]);
  });

  it('never runs more than maxConcurrentClusters clusters of a stage at once', async () => {
    const w = world(
      { a: 5, b: 5, c: 5, d: 5, e: 5 },
      { strategy: { order: 'AsListed', stages: [{ name: 'all', percent: 100, nodeSteps: [50, 100], bakeSeconds: 10, maxConcurrentClusters: 2 }] } },
    );
    let maxActive = 0;
    await drive(w, (ro) => ro.status?.phase === 'Succeeded', {
      onPass: () => {
        const active = (w.store.current().status?.clusters ?? []).filter((c) => ['Preflight', 'Progressing', 'Baking'].includes(c.phase ?? '')).length;
        maxActive = Math.max(maxActive, active);
      },
    });
    expect(maxActive).toBe(2);
  });

  it('paces node relabels at nodeRelabelQPS', async () => {
    const w = world({ big: 100 }, { strategy: { nodeRelabelQPS: 5, stages: [{ name: 's', clusters: 1, nodeSteps: [100], bakeSeconds: 10 }] } });
    const t0 = w.clock.nowMs();
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    const seconds = (w.clock.nowMs() - t0) / 1000;
    expect(w.cluster('big').relabels).toHaveLength(100);
    // 100 relabels at 5/s with a one-second burst take at least 19 s of (simulated) time.
    expect(seconds).toBeGreaterThanOrEqual(19);
  });

  it('keeps the bake at least as long as the signal lag', async () => {
    const w = world(
      { a: 2 },
      {
        strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [100], bakeSeconds: 0 }] },
        gates: { intervalSeconds: 5, windowSeconds: 30, scrapeIntervalSeconds: 15, coreDNS: { cacheTTLSeconds: 30 } },
      },
    );
    let bakeStart = 0;
    await drive(w, (ro) => ro.status?.phase === 'Succeeded', {
      onPass: () => {
        const c = w.store.current().status?.clusters?.[0];
        if (c?.phase === 'Baking' && !bakeStart) bakeStart = w.clock.nowMs();
      },
    });
    expect((w.clock.nowMs() - bakeStart) / 1000).toBeGreaterThanOrEqual(75);
  });
});

describe('RolloutReconciler: restarts', () => {
  it('a restart at every pass (every step boundary) neither skips nor repeats a step', async () => {
    const spec = {
      strategy: {
        stages: [
          { name: 'c', clusters: 1, nodeSteps: [5, 25, 100], bakeSeconds: 10 },
          { name: 'r', percent: 100, nodeSteps: [50, 100], bakeSeconds: 10 },
        ],
      },
    };
    const ref = world({ a: 40, b: 10 }, spec);
    await drive(ref, (ro) => ro.status?.phase === 'Succeeded');
    const w = world({ a: 40, b: 10 }, spec);
    await drive(w, (ro) => ro.status?.phase === 'Succeeded', { fresh: true });
    expect(stepStarts(w)).toEqual(stepStarts(ref));
    expect(stepStarts(w)).toEqual([
      'a: step 1/3 (5% of nodes)',
      'a: step 2/3 (25% of nodes)',
      'a: step 3/3 (100% of nodes)',
      'b: step 1/2 (50% of nodes)',
      'b: step 2/2 (100% of nodes)',
    ]);
    // Each node was labelled exactly once: no relabel was repeated or undone.
    for (const n of ['a', 'b']) expect(w.cluster(n).relabels).toHaveLength(w.cluster(n).nodes.size);
  });

  it('a crash after acting but before the status write repeats no step', async () => {
    const w = world({ a: 20 }, { strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [10, 50, 100], bakeSeconds: 10 }] } });
    let crashes = 0;
    await drive(w, (ro) => ro.status?.phase === 'Succeeded', {
      fresh: true,
      onPass: (i) => {
        // Every third pass, the next status write is lost (the process dies after acting).
        if (i % 3 === 0) {
          w.store.failNextWrites = 1;
          crashes++;
        }
      },
    });
    expect(crashes).toBeGreaterThan(5);
    expect(stepStarts(w)).toEqual(['a: step 1/3 (10% of nodes)', 'a: step 2/3 (50% of nodes)', 'a: step 3/3 (100% of nodes)']);
    expect(w.cluster('a').relabels).toHaveLength(20);
  });

  it('a stale read (conflict) fails the pass, and the retry on fresh data acts once', async () => {
    const w = world({ a: 4 }, { strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [50, 100], bakeSeconds: 10 }] } });
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    const stale = await w.store.get();
    await drive(w, (ro) => ro.status?.clusters?.[0]?.step === 1);
    // A replica whose cache still holds the old object decides from it; its status write must fail.
    const staleReader = { get: async () => JSON.parse(JSON.stringify(stale)) as TelemetryRollout };
    const r = new RolloutReconciler({ rollouts: staleReader, clusters: w.factory, gates: w.gates, status: w.store, events: w.events, clock: w.clock });
    await expect(r.reconcile('default/r')).rejects.toMatchObject({ code: 409 });
    await drive(w, (ro) => ro.status?.phase === 'Succeeded');
    expect(stepStarts(w)).toEqual(['a: step 1/2 (50% of nodes)', 'a: step 2/2 (100% of nodes)']);
  });
});

describe('RolloutReconciler: controls', () => {
  const spec = { strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [25, 50, 100], bakeSeconds: 60 }] } };

  it('pause stops progress mid-step; resume continues from the same step', async () => {
    const w = world({ a: 8 }, spec);
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    w.store.updateSpec((s) => (s.paused = true));
    await drive(w, () => phase(w) === 'Paused');
    const labelled = w.cluster('a').labelCounts();
    const step = w.store.current().status?.clusters?.[0]?.step;
    await drive(w, () => false, { maxPasses: 20 }).catch(() => undefined);
    expect(w.cluster('a').labelCounts()).toEqual(labelled);
    expect(w.store.current().status?.clusters?.[0]?.step).toBe(step);
    expect(cond(w, 'Paused')).toMatchObject({ status: 'True', reason: 'PausedByUser', observedGeneration: 2 });
    expect(w.events.events.map((e) => e.reason)).toContain('PausedByUser');
    w.store.updateSpec((s) => (s.paused = false));
    await drive(w, (ro) => ro.status?.phase === 'Succeeded');
    expect(stepStarts(w)).toEqual(['a: step 1/3 (25% of nodes)', 'a: step 2/3 (50% of nodes)', 'a: step 3/3 (100% of nodes)']);
    expect(w.events.events.map((e) => e.reason)).toContain('Resumed');
  });

  it('abort rolls every touched cluster back, newest first, and removes a collector that had no predecessor', async () => {
    const w = world(
      { a: 10, b: 10, c: 10 },
      { strategy: { order: 'AsListed', stages: [{ name: 's', percent: 100, nodeSteps: [50, 100], bakeSeconds: 60, maxConcurrentClusters: 2 }] } },
    );
    await drive(w, (ro) => (ro.status?.clusters ?? []).filter((c) => c.phase === 'Baking').length === 2);
    w.store.annotate(ABORT_ANNOTATION, 'stop-it');
    await drive(w, () => phase(w) === 'RolledBack');
    const st = w.store.current().status!;
    expect(st.reason).toBe('Aborted');
    const rolledBack = (st.history ?? []).filter((h) => h.reason === 'ClusterRolledBack').map((h) => h.cluster);
    expect(rolledBack).toEqual(['b', 'a']);
    for (const n of ['a', 'b', 'c']) {
      expect(w.cluster(n).labelCounts()).toEqual({ '': 10 });
      expect([...w.cluster(n).objects.keys()]).toEqual(n === 'c' ? [] : ['Namespace//telemetry-system']);
    }
    expect(st.clusters?.find((c) => c.name === 'c')?.phase).toBe('Pending');
    expect(cond(w, 'Ready')).toMatchObject({ status: 'False', reason: 'RolledBack' });
    expect(cond(w, 'Degraded')?.status).toBe('True');
    expect(st.handledRequests?.abort).toBe('stop-it');
  });

  it('retry after a rollback starts the revision again from the first step', async () => {
    const w = world({ a: 4 }, spec);
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    w.store.annotate(ABORT_ANNOTATION, '1');
    await drive(w, () => phase(w) === 'RolledBack');
    w.store.annotate(RETRY_ANNOTATION, 'again');
    await drive(w, (ro) => ro.status?.phase === 'Succeeded');
    expect(stepStarts(w)).toEqual(['a: step 1/3 (25% of nodes)', 'a: step 1/3 (25% of nodes)', 'a: step 2/3 (50% of nodes)', 'a: step 3/3 (100% of nodes)']);
    expect(w.events.events.map((e) => e.reason)).toContain('Retried');
  });

  it('promote skips the rest of the current bake, once', async () => {
    const w = world({ a: 4 }, { strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [50, 100], bakeSeconds: 3600 }] } });
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    const t0 = w.clock.nowMs();
    w.store.annotate(PROMOTE_ANNOTATION, 'p1');
    await drive(w, (ro) => ro.status?.clusters?.[0]?.step === 1);
    expect((w.clock.nowMs() - t0) / 1000).toBeLessThan(60);
    expect(w.store.current().status?.handledRequests?.promote).toBe('p1');
    // The second step bakes in full: the same promote value does not act again.
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    const t1 = w.clock.nowMs();
    await drive(w, (ro) => ro.status?.phase === 'Succeeded');
    expect((w.clock.nowMs() - t1) / 1000).toBeGreaterThanOrEqual(3600);
  });

  it('a new revision mid-rollout supersedes the old one and hands its nodes back', async () => {
    const w = world({ a: 10 }, spec);
    await drive(w, (ro) => ro.status?.clusters?.[0]?.step === 1 && ro.status.clusters[0].phase === 'Baking');
    const old = w.store.current().status?.revision;
    w.store.updateSpec((s) => (s.collector.image = 'collector:2'));
    const rev2 = revisionOf(w.store.current().spec.collector);
    await drive(w, (ro) => ro.status?.phase === 'Succeeded');
    expect(w.cluster('a').labelCounts()).toEqual({ [rev2]: 10 });
    expect([...w.cluster('a').objects.values()].filter((o) => o.kind === 'DaemonSet').map((o) => o.metadata.name)).toEqual([`telemetry-collector-${rev2}`]);
    expect(w.store.current().status?.history?.some((h) => h.message?.includes(`supersedes ${old}`))).toBe(true);
  });
});

describe('RolloutReconciler: gates and failures', () => {
  const spec = (onFailure: string) => ({
    strategy: {
      order: 'AsListed',
      stages: [
        { name: 'c', clusters: 1, nodeSteps: [10, 50, 100], bakeSeconds: 30 },
        { name: 'r', percent: 100, nodeSteps: [100], bakeSeconds: 30 },
      ],
    },
    gates: { intervalSeconds: 5, windowSeconds: 5, scrapeIntervalSeconds: 1, coreDNS: { cacheTTLSeconds: 0 }, failureLimit: 2, onFailure },
  });

  it('a gate failing failureLimit times in a row halts the fleet and rolls back', async () => {
    // Healthy at 10 %, failing from 50 % on: the regression shows as the batch grows.
    const gates = new ScriptedGates((c, f) => (c === 'a' && f >= 0.5 ? 'Fail' : 'Pass'));
    const w = world({ a: 10, b: 10 }, spec('Rollback'), gates);
    await drive(w, () => phase(w) === 'RolledBack');
    const st = w.store.current().status!;
    expect(st.reason).toBe('GateFailed');
    expect(st.clusters?.find((c) => c.name === 'a')?.lastGate).toMatchObject({ verdict: 'Fail', consecutiveFailures: 2 });
    expect(st.clusters?.find((c) => c.name === 'b')?.phase).toBe('Pending');
    expect(w.cluster('a').labelCounts()).toEqual({ '': 10 });
    const fails = gates.evaluations.filter((e) => e.verdict === 'Fail');
    expect(fails).toHaveLength(2);
    expect(w.events.events.filter((e) => e.reason === 'GateFailed')).toHaveLength(1);
  });

  it('one failure followed by a pass resets the count', async () => {
    let n = 0;
    const gates = new ScriptedGates(() => (++n === 3 ? 'Fail' : 'Pass'));
    const w = world({ a: 10 }, spec('Rollback'), gates);
    await drive(w, (ro) => ro.status?.phase === 'Succeeded');
    expect(gates.evaluations.filter((e) => e.verdict === 'Fail')).toHaveLength(1);
  });

  it('onFailure Pause pauses instead, and retry resumes', async () => {
    let failing = true;
    const gates = new ScriptedGates((_c, f) => (failing && f >= 0.5 ? 'Fail' : 'Pass'));
    const w = world({ a: 10 }, spec('Pause'), gates);
    await drive(w, () => phase(w) === 'Paused');
    expect(w.store.current().status?.reason).toBe('GateFailed');
    expect(cond(w, 'Paused')).toMatchObject({ status: 'True', reason: 'GateFailed' });
    failing = false;
    w.store.annotate(RETRY_ANNOTATION, 'fixed');
    await drive(w, (ro) => ro.status?.phase === 'Succeeded');
  });

  it('NoData pauses by default and does not progress', async () => {
    const gates = new ScriptedGates(() => 'NoData');
    const w = world({ a: 10 }, spec('Rollback'), gates);
    await drive(w, () => phase(w) === 'Paused');
    expect(w.store.current().status?.reason).toBe('GateNoData');
    const step = w.store.current().status?.clusters?.[0]?.step;
    await drive(w, () => false, { maxPasses: 30 }).catch(() => undefined);
    expect(w.store.current().status?.clusters?.[0]?.step).toBe(step);
    expect(phase(w)).toBe('Paused');
  });

  it('an unreachable cluster is not NoData: it is reported, and the step waits', async () => {
    const gates = new ScriptedGates();
    const w = world({ a: 10 }, spec('Rollback'), gates);
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    w.cluster('a').reachable = false;
    await drive(w, (ro) => ro.status?.clusters?.[0]?.reachable === false);
    const evals = gates.evaluations.length;
    await drive(w, () => false, { maxPasses: 10 }).catch(() => undefined);
    expect(gates.evaluations.length).toBe(evals);
    expect(cond(w, 'Degraded')).toMatchObject({ status: 'True', reason: 'ClusterUnreachable' });
    w.cluster('a').reachable = true;
    await drive(w, (ro) => ro.status?.phase === 'Succeeded');
  });

  it('a missing kubeconfig Secret keeps the rollout Pending with a condition naming the cluster', async () => {
    const w = world({ a: 3, b: 3 });
    w.factory.missingSecrets.add('b');
    await drive(w, () => false, { maxPasses: 3 }).catch(() => undefined);
    expect(phase(w)).toBe('Pending');
    expect(cond(w, 'Degraded')).toMatchObject({ status: 'True', reason: 'ClusterUnavailable' });
    expect(cond(w, 'Degraded')?.message).toContain('b (SecretNotFound: Secret b-kc not found)');
    w.factory.missingSecrets.delete('b');
    await drive(w, (ro) => ro.status?.phase === 'Succeeded');
  });

  it('agents that never become ready fail the step at the progress deadline and roll back', async () => {
    const w = world({ a: 4 }, spec('Pause'), new ScriptedGates(), { progressDeadlineSeconds: 120 });
    w.cluster('a').notReady.add(revisionOf((await w.store.get()).spec.collector));
    await drive(w, () => phase(w) === 'RolledBack');
    expect(w.store.current().status?.reason).toBe('ProgressDeadlineExceeded');
  });

  it('a step that keeps moving outlives the progress deadline (it counts time without progress, as a Deployment does); one that stops fails it', async () => {
    // 40 nodes at 0.1 relabels/s: 400 s of relabelling alone, past a 120 s deadline, every node a
    // progress; the last agents then take a minute to be ready (a slow image pull).
    const slow = { strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [100], bakeSeconds: 10 }], nodeRelabelQPS: 0.1 } };
    const w = world({ a: 40 }, slow, new ScriptedGates(), { progressDeadlineSeconds: 120 });
    const t0 = w.clock.nowMs();
    await drive(w, (ro) => (ro.status?.clusters?.[0]?.nodesUpdated ?? 0) >= 39);
    const rev = w.store.current().status!.revision!;
    w.cluster('a').notReady.add(rev);
    await drive(w, (ro) => (ro.status?.clusters?.[0]?.nodesUpdated ?? 0) >= 40);
    const labelledAt = w.clock.nowMs();
    await drive(w, () => w.clock.nowMs() - labelledAt > 60_000 || phase(w) === 'RolledBack');
    expect(phase(w)).toBe('Progressing');
    w.cluster('a').notReady.delete(rev);
    await drive(w, () => phase(w) === 'Succeeded' || phase(w) === 'RolledBack');
    expect(phase(w)).toBe('Succeeded');
    expect(w.clock.nowMs() - t0).toBeGreaterThan(300_000);
    // The same step whose agents stop becoming ready half-way: rolled back once 120 s pass without progress.
    const w2 = world({ a: 40 }, slow, new ScriptedGates(), { progressDeadlineSeconds: 120 });
    await drive(w2, (ro) => (ro.status?.clusters?.[0]?.nodesUpdated ?? 0) >= 20);
    w2.cluster('a').notReady.add(w2.store.current().status!.revision!);
    await drive(w2, () => phase(w2) === 'RolledBack');
    expect(w2.store.current().status?.reason).toBe('ProgressDeadlineExceeded');
  });

  it("a step's first gate evaluation waits a gate interval after its baseline (no evaluation without a window), and failureLimit 1 does not pause every step", async () => {
    const times: Array<{ op: 'baseline' | 'evaluate'; at: number }> = [];
    class Timed extends ScriptedGates {
      private readonly now: () => number;
      constructor(now: () => number) {
        super();
        this.now = now;
      }
      override async captureBaseline() {
        times.push({ op: 'baseline', at: this.now() });
        return { baseline: { capturedAt: new Date(this.now()).toISOString(), values: { apiServerP99Seconds: 0.1 } } };
      }
      override async evaluate(ctx: Parameters<ScriptedGates['evaluate']>[0]) {
        times.push({ op: 'evaluate', at: this.now() });
        return super.evaluate(ctx);
      }
    }
    const steps = {
      strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [25, 50, 100], bakeSeconds: 30 }] },
      gates: { intervalSeconds: 10, failureLimit: 1 },
    };
    let now = () => 0;
    const w = world({ a: 8 }, steps, new Timed(() => now()));
    now = () => w.clock.nowMs();
    await drive(w, () => phase(w) === 'Succeeded' || phase(w) === 'Paused' || phase(w) === 'RolledBack');
    expect(phase(w)).toBe('Succeeded');
    let lastBaseline: number | undefined;
    for (const t of times) {
      if (t.op === 'baseline') lastBaseline = t.at;
      else if (lastBaseline !== undefined) expect(t.at - lastBaseline).toBeGreaterThanOrEqual(10_000);
    }
    expect(times.filter((t) => t.op === 'baseline').length).toBeGreaterThanOrEqual(3);
  });

  it('a preflight refusal fails the rollout before any node moves', async () => {
    const w = world({ a: 4 }, {}, new ScriptedGates(), { preflight: [() => 'projected 900 req/s exceeds the budget of 50 req/s'] });
    await drive(w, () => phase(w) === 'Failed');
    expect(w.store.current().status?.message).toContain('projected 900 req/s');
    expect(w.cluster('a').relabels).toHaveLength(0);
  });
});
