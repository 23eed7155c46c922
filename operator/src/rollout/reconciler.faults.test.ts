import { describe, expect, it } from '@jest/globals';
import { FakeBreakGlass, ScriptedGates } from '../../../testkit/operator/rollout/fakes.js';
import { drive, phase, world } from '../../../testkit/operator/rollout/world.js';
import { RETRY_ANNOTATION, ABORT_ANNOTATION } from './reconciler.js';

describe('RolloutReconciler: an abort before the plan', () => {
  it('an abort while the rollout waits for its targets ends RolledBack and stays so; a retry then plans and rolls out', async () => {
    const w = world({ a: 4 });
    w.cluster('a').reachable = false;
    await w.make().reconcile('default/r');
    expect(phase(w)).toBe('Pending');
    w.store.annotate(ABORT_ANNOTATION, 'stop');
    await drive(w, () => phase(w) === 'RolledBack');
    // The target comes back: the aborted rollout must not plan and start by itself.
    w.cluster('a').reachable = true;
    for (let i = 0; i < 5; i++) {
      await w.make().reconcile('default/r');
      await w.clock.advance(15_000);
    }
    expect(phase(w)).toBe('RolledBack');
    expect(w.cluster('a').relabels).toHaveLength(0);
    w.store.annotate(RETRY_ANNOTATION, 'again');
    await drive(w, () => phase(w) === 'Succeeded');
    expect(w.store.current().status?.clusters?.map((c) => [c.name, c.phase])).toEqual([['a', 'Succeeded']]);
  });
});

describe('RolloutReconciler: resuming halted clusters', () => {
  it('a retry resumes each halted cluster where it stopped: one halted in preflight runs its preflight, none fails its deadline', async () => {
    const w = world({ a: 6, b: 4 }, { strategy: { stages: [{ name: 's', clusters: 2, nodeSteps: [50, 100], bakeSeconds: 10, maxConcurrentClusters: 2 }] } });
    await drive(w, () => (w.store.current().status?.clusters ?? []).some((c) => c.phase === 'Baking'));
    const st = w.store.current().status!;
    // A breach halted the fleet (onFailure: Pause) while one cluster was baking and the other was still
    // in preflight: the status the reconciler writes in that case.
    const [baking, fresh] = st.clusters!;
    baking!.phase = 'Paused';
    fresh!.phase = 'Paused';
    for (const k of ['step', 'stepPercent', 'stepStartedAt', 'bakeStartedAt'] as const) delete fresh![k];
    fresh!.nodesUpdated = 0;
    // Preflight had not applied anything yet: no objects, no labelled node.
    const target = w.cluster(fresh!.name);
    target.objects.clear();
    for (const n of target.nodes.values()) n.labels = {};
    await w.store.writeStatus(w.store.current(), { ...st, phase: 'Paused', reason: 'GateFailed' });
    w.store.annotate(RETRY_ANNOTATION, 'go');
    await drive(w, () => phase(w) === 'Succeeded' || phase(w) === 'RollingBack' || phase(w) === 'RolledBack');
    expect(phase(w)).toBe('Succeeded');
    const reasons = (w.store.current().status?.history ?? []).map((h) => h.reason);
    expect(reasons).not.toContain('ProgressDeadlineExceeded');
  });
});

describe('RolloutReconciler: break-glass', () => {
  const spec = { strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [50, 100], bakeSeconds: 300 }] }, breakGlass: { unreachableAfterSeconds: 60 } };

  it('Auto: stops the agents after unreachableAfterSeconds, rolls back when the API server returns, and clears the stop files only after the last agent is gone', async () => {
    let bg: FakeBreakGlass | undefined;
    const w = world({ a: 10, b: 10 }, spec, new ScriptedGates(), {}, (f) => (bg = new FakeBreakGlass(f)));
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    w.cluster('a').reachable = false;
    const down = w.clock.nowMs();
    await drive(w, () => phase(w) === 'BreakGlass');
    expect((w.clock.nowMs() - down) / 1000).toBeGreaterThanOrEqual(60);
    expect((w.clock.nowMs() - down) / 1000).toBeLessThan(70);
    const rev = w.store.current().status!.revision!;
    expect(bg!.calls).toEqual([{ op: 'issue', cluster: 'a', revision: rev, agentsRunning: 5 }]);
    expect(w.store.current().status?.clusters?.[0]?.breakGlass).toMatchObject({ nodesTargeted: 5, nodesStopped: 5, revision: rev });
    // Still down: nothing more happens, and nothing is cleared.
    await drive(w, () => false, { maxPasses: 10 }).catch(() => undefined);
    expect(bg!.calls).toHaveLength(1);
    w.cluster('a').reachable = true;
    await drive(w, () => phase(w) === 'RolledBack');
    expect(bg!.calls.map((c) => [c.op, c.agentsRunning])).toEqual([
      ['issue', 5],
      ['clear', 0],
    ]);
    const reasons = (w.store.current().status?.history ?? []).map((h) => h.reason);
    expect(reasons.indexOf('BreakGlass')).toBeLessThan(reasons.indexOf('RollingBack'));
    expect(reasons.indexOf('ClusterRolledBack')).toBeGreaterThan(reasons.lastIndexOf('BreakGlass'));
    expect(w.store.current().status?.reason).toBe('BreakGlass');
    expect(w.store.current().status?.clusters?.[0]?.breakGlass?.clearedAt).toBeDefined();
    expect(w.cluster('a').labelCounts()).toEqual({ '': 10 });
  });

  it('Manual (or no transport): reports the command to run and writes nothing', async () => {
    let bg: FakeBreakGlass | undefined;
    const w = world(
      { a: 10 },
      { ...spec, breakGlass: { unreachableAfterSeconds: 60, action: 'Manual' } },
      new ScriptedGates(),
      {},
      (f) => (bg = new FakeBreakGlass(f)),
    );
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    w.cluster('a').reachable = false;
    await drive(w, (ro) => (ro.status?.clusters?.[0]?.message ?? '').includes('break-glass needed'));
    expect(w.store.current().status?.clusters?.[0]?.message).toContain('kubectl tro break-glass r --cluster a');
    expect(bg!.calls).toEqual([]);
    expect(phase(w)).not.toBe('BreakGlass');
  });
});

describe('RolloutReconciler: two faults in one pass', () => {
  it('a gate breach starts the rollback and a later cluster goes unreachable in the same pass: both are recorded, nothing throws', async () => {
    const spec = {
      strategy: { stages: [{ name: 's', clusters: 2, nodeSteps: [50, 100], bakeSeconds: 300, maxConcurrentClusters: 2 }] },
      gates: { intervalSeconds: 5, windowSeconds: 5, scrapeIntervalSeconds: 1, coreDNS: { cacheTTLSeconds: 0 }, failureLimit: 1, onFailure: 'Rollback' },
    };
    let failing = false;
    const w = world({ a: 6, b: 4 }, spec, new ScriptedGates((cluster) => (failing && cluster === 'a' ? 'Fail' : 'Pass')));
    await drive(w, () => (w.store.current().status?.clusters ?? []).every((c) => c.phase === 'Baking'));
    // In the same pass: a's gate fails (the first cluster observed) and b's API server stops answering.
    failing = true;
    w.cluster('b').reachable = false;
    await w.clock.advance(10_000);
    await w.make().reconcile('default/r');
    const st = w.store.current().status!;
    expect(st.phase).toBe('RollingBack');
    expect(st.clusters?.find((c) => c.name === 'b')).toMatchObject({ reachable: false });
    expect((st.history ?? []).map((h) => h.reason)).toEqual(expect.arrayContaining(['GateFailed', 'RollingBack', 'ClusterUnreachable']));
  });
});
