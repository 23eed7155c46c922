import { describe, expect, it } from '@jest/globals';
import { FakeBreakGlass, ScriptedGates } from '../../../testkit/operator/rollout/fakes.js';
import { drive, phase, world } from '../../../testkit/operator/rollout/world.js';
import { ABORT_ANNOTATION } from './reconciler.js';

/** The reasons in status.history, in order. */
const reasons = (w: ReturnType<typeof world>) => (w.store.current().status?.history ?? []).map((h) => h.reason);
const cluster = (w: ReturnType<typeof world>, name: string) => w.store.current().status?.clusters?.find((c) => c.name === name);

describe('RolloutReconciler: overlapping faults during a rollback', () => {
  it('one cluster stopped by break-glass does not hold up the rollback of the others; the rollout stays RollingBack until it is back', async () => {
    let failing = false;
    let bg: FakeBreakGlass | undefined;
    const w = world(
      { a: 8, b: 6 },
      {
        strategy: { stages: [{ name: 's', clusters: 2, nodeSteps: [50, 100], bakeSeconds: 60, maxConcurrentClusters: 2 }] },
        gates: { intervalSeconds: 5, windowSeconds: 5, scrapeIntervalSeconds: 1, coreDNS: { cacheTTLSeconds: 0 }, failureLimit: 1, onFailure: 'Rollback' },
        breakGlass: { unreachableAfterSeconds: 60, reachableAfterSeconds: 30 },
      },
      new ScriptedGates((name) => (failing && name === 'a' ? 'Fail' : 'Pass')),
      {},
      (f) => (bg = new FakeBreakGlass(f)),
    );
    await drive(w, (ro) => (ro.status?.clusters ?? []).every((c) => c.phase === 'Baking'));
    // b (the newest, rolled back first) loses its API server as a's gate trips.
    w.cluster('b').reachable = false;
    failing = true;
    await drive(w, () => cluster(w, 'a')?.phase === 'RolledBack' && cluster(w, 'b')?.phase === 'BreakGlass');
    expect(phase(w)).toBe('RollingBack');
    expect(w.cluster('a').labelCounts()).toEqual({ '': 8 });
    expect(bg!.calls.map((c) => [c.op, c.cluster])).toEqual([['issue', 'b']]);
    // The reason stays the gate failure that started the rollback.
    expect(w.store.current().status?.reason).toBe('GateFailed');
    w.cluster('b').reachable = true;
    await drive(w, () => phase(w) === 'RolledBack');
    expect(w.cluster('b').labelCounts()).toEqual({ '': 6 });
    expect(bg!.calls.map((c) => [c.op, c.cluster])).toEqual([
      ['issue', 'b'],
      ['clear', 'b'],
    ]);
    // One rollback, announced once; the rolled-back clusters keep no stale reachability marks.
    expect(reasons(w).filter((r) => r === 'RollingBack')).toHaveLength(1);
    expect(cluster(w, 'b')).not.toHaveProperty('reachable');
    expect(w.store.current().status?.conditions?.find((c) => c.type === 'Degraded')?.reason).not.toBe('ClusterUnreachable');
  });

  it('a 403 on a write (a lost verb, a quota, a webhook) is an error of that step, not refused credentials: no CredentialsInvalid, no flapping', async () => {
    const w = world({ a: 6 }, { strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [50, 100], bakeSeconds: 10 }] } });
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    w.cluster('a').forbidden.add('setNodeRevision');
    const t0 = w.clock.nowMs();
    await drive(w, () => w.clock.nowMs() - t0 > 60_000);
    expect(cluster(w, 'a')?.message).toContain('HTTP 403');
    expect(cluster(w, 'a')?.credentialsInvalidSince).toBeUndefined();
    expect(reasons(w)).not.toContain('CredentialsInvalid');
    expect(reasons(w)).not.toContain('CredentialsAccepted');
    w.cluster('a').forbidden.clear();
    await drive(w, () => phase(w) === 'Succeeded');
  });

  it('a rollback of a cluster whose stable revision was never learned learns it first and keeps the stable collector', async () => {
    const w = world({ a: 6 }, { strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [100], bakeSeconds: 10 }] } }, new ScriptedGates(), {
      preflight: [(ro) => (ro.spec.collector.image === 'collector:2' ? 'collector:2 is refused' : undefined)],
    });
    await drive(w, () => phase(w) === 'Succeeded');
    const stable = w.store.current().status!.revision!;
    const objectsBefore = [...w.cluster('a').objects.keys()].sort();
    w.store.updateSpec((s) => (s.collector.image = 'collector:2'));
    await drive(w, () => phase(w) === 'Failed');
    // A status written before preflight learned the stable revision first has none.
    const st = w.store.current().status!;
    delete st.clusters![0]!.previousRevision;
    await w.store.writeStatus(w.store.current(), st);
    expect(w.store.current().status?.completedAt).toBeDefined();
    w.store.annotate(ABORT_ANNOTATION, 'undo');
    await w.make().reconcile('default/r');
    // Rolling back is not final: completedAt comes back with RolledBack.
    expect(phase(w)).toBe('RollingBack');
    expect(w.store.current().status?.completedAt).toBeUndefined();
    await drive(w, () => phase(w) === 'RolledBack');
    expect(w.store.current().status?.completedAt).toBeDefined();
    expect(cluster(w, 'a')?.previousRevision).toBe(stable);
    expect([...w.cluster('a').objects.keys()].sort()).toEqual(objectsBefore);
  });

  it('a break-glass attempt that reached no node while the candidate runs is not taken as confirmed', async () => {
    let bg: FakeBreakGlass | undefined;
    const w = world(
      { a: 10 },
      { strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [50, 100], bakeSeconds: 300 }] }, breakGlass: { unreachableAfterSeconds: 60 } },
      new ScriptedGates(),
      {},
      (f) => (bg = new FakeBreakGlass(f)),
    );
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    bg!.emptyAttempts = 1;
    w.cluster('a').reachable = false;
    await drive(w, (ro) => (ro.status?.clusters?.[0]?.breakGlass?.attempts ?? 0) >= 2);
    expect(bg!.calls.filter((c) => c.op === 'issue').map((c) => c.agentsRunning)).toEqual([0, 5]);
    expect(cluster(w, 'a')?.breakGlass).toMatchObject({ nodesTargeted: 5, nodesStopped: 5 });
  });
});
