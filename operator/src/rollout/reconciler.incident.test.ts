import { describe, expect, it } from '@jest/globals';
import { FakeBreakGlass, ScriptedGates } from '../../../testkit/operator/rollout/fakes.js';
import { drive, phase, world } from '../../../testkit/operator/rollout/world.js';
import { ABORT_ANNOTATION, RETRY_ANNOTATION } from './reconciler.js';

/** The reasons in status.history, in order. */
const reasons = (w: ReturnType<typeof world>) => (w.store.current().status?.history ?? []).map((h) => h.reason);

describe('RolloutReconciler: the incident path', () => {
  it('a gate trips, the rollback is under way, then the API server dies: the agents are stopped; once it is back the rollback completes and the stop files go last', async () => {
    let failing = false;
    let bg: FakeBreakGlass | undefined;
    const w = world(
      { a: 40 },
      {
        // Slow relabelling, so the rollback is still under way when the API server goes.
        strategy: { nodeRelabelQPS: 0.5, stages: [{ name: 's', clusters: 1, nodeSteps: [50, 100], bakeSeconds: 60 }] },
        gates: { intervalSeconds: 5, windowSeconds: 5, scrapeIntervalSeconds: 1, coreDNS: { cacheTTLSeconds: 0 }, failureLimit: 1, onFailure: 'Rollback' },
        breakGlass: { unreachableAfterSeconds: 60 },
      },
      new ScriptedGates(() => (failing ? 'Fail' : 'Pass')),
      {},
      (f) => (bg = new FakeBreakGlass(f)),
    );
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    failing = true;
    await drive(w, (ro) => ro.status?.phase === 'RollingBack' && (ro.status.clusters?.[0]?.nodesUpdated ?? 0) < 20);
    const rev = w.store.current().status!.revision!;
    const stillOn = w.cluster('a').labelCounts()[rev] ?? 0;
    expect(stillOn).toBeGreaterThan(0);
    // The API server dies in the middle of the rollback: its agents are stopped, and the rollout stays
    // RollingBack (for the clusters it can still reach).
    w.cluster('a').reachable = false;
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'BreakGlass');
    expect(phase(w)).toBe('RollingBack');
    expect(bg!.calls).toEqual([{ op: 'issue', cluster: 'a', revision: rev, agentsRunning: w.cluster('a').labelCounts()[rev] ?? 0 }]);
    expect(bg!.calls[0]!.agentsRunning).toBeGreaterThan(0);
    expect(reasons(w).indexOf('RollingBack')).toBeLessThan(reasons(w).lastIndexOf('BreakGlass'));
    // Back: the rollback goes on through the API server, and the stop files are cleared only after the
    // candidate's last agent is gone.
    w.cluster('a').reachable = true;
    await drive(w, () => phase(w) === 'RolledBack');
    expect(bg!.calls.map((c) => [c.op, c.agentsRunning])).toEqual([
      ['issue', bg!.calls[0]!.agentsRunning],
      ['clear', 0],
    ]);
    expect(w.cluster('a').labelCounts()).toEqual({ '': 40 });
    expect(w.store.current().status?.clusters?.[0]?.breakGlass?.clearedAt).toBeDefined();
  });

  it('a later cluster refused by its preflight rolls back the clusters already on the candidate', async () => {
    const w = world(
      { big: 8, small: 4 },
      {
        strategy: {
          stages: [
            { name: 'canary', clusters: 1, nodeSteps: [100], bakeSeconds: 10 },
            { name: 'rest', percent: 100, nodeSteps: [100], bakeSeconds: 10 },
          ],
        },
      },
      new ScriptedGates(),
      { preflight: [(_ro, target) => (target.name === 'small' ? 'projected load exceeds the budget' : undefined)] },
    );
    await drive(w, () => phase(w) === 'RolledBack' || phase(w) === 'Failed');
    const st = w.store.current().status!;
    expect(st.phase).toBe('RolledBack');
    expect(st.reason).toBe('PreflightFailed');
    expect(st.clusters?.map((c) => [c.name, c.phase])).toEqual([
      ['big', 'RolledBack'],
      ['small', 'RolledBack'],
    ]);
    expect(w.cluster('big').labelCounts()).toEqual({ '': 8 });
    expect(w.cluster('small').relabels).toHaveLength(0);
    expect(reasons(w).indexOf('PreflightFailed')).toBeLessThan(reasons(w).indexOf('RollingBack'));
  });

  it('a refusal before any node moved fails the rollout; an abort then rolls it back and leaves the stable collector as it was', async () => {
    const w = world({ a: 6 }, { strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [100], bakeSeconds: 10 }] } }, new ScriptedGates(), {
      preflight: [(ro) => (ro.spec.collector.image === 'collector:2' ? 'collector:2 is refused' : undefined)],
    });
    await drive(w, () => phase(w) === 'Succeeded');
    const stable = w.store.current().status!.revision!;
    const objectsBefore = [...w.cluster('a').objects.keys()].sort();
    w.store.updateSpec((s) => (s.collector.image = 'collector:2'));
    await drive(w, () => phase(w) === 'Failed');
    expect(w.store.current().status?.clusters?.[0]).toMatchObject({ phase: 'Failed', previousRevision: stable });
    w.store.annotate(ABORT_ANNOTATION, 'undo');
    await drive(w, () => phase(w) === 'RolledBack');
    expect(w.cluster('a').labelCounts()).toEqual({ [stable]: 6 });
    // Nothing of the stable collector was taken away (its DaemonSet, ConfigMap, ServiceAccount, RBAC).
    expect([...w.cluster('a').objects.keys()].sort()).toEqual(objectsBefore);
  });
});

describe('RolloutReconciler: reachability hysteresis', () => {
  const spec = {
    strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [50, 100], bakeSeconds: 300 }] },
    breakGlass: { unreachableAfterSeconds: 60, reachableAfterSeconds: 30 },
  };

  it('a brief answer during an outage neither resets the break-glass timer nor counts as reachable', async () => {
    let bg: FakeBreakGlass | undefined;
    const w = world({ a: 10 }, spec, new ScriptedGates(), {}, (f) => (bg = new FakeBreakGlass(f)));
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    w.cluster('a').reachable = false;
    const down = w.clock.nowMs();
    await drive(w, () => w.clock.nowMs() - down >= 40_000);
    // 10 s of answers, then down again: the server never became stable.
    w.cluster('a').reachable = true;
    const flap = w.clock.nowMs();
    await drive(w, () => w.clock.nowMs() - flap >= 10_000);
    expect(w.store.current().status?.clusters?.[0]).toMatchObject({ reachable: false });
    expect(w.store.current().status?.clusters?.[0]?.reachableSince).toBeDefined();
    w.cluster('a').reachable = false;
    await drive(w, () => phase(w) === 'BreakGlass');
    // Break-glass came at the threshold counted from the first failure, not from the last one.
    expect((w.clock.nowMs() - down) / 1000).toBeLessThan(70);
    expect(bg!.calls.map((c) => c.op)).toEqual(['issue']);
    expect(reasons(w).filter((r) => r === 'Healthy')).toEqual([]);
  });

  it('recovery from break-glass starts only after the API server has answered every probe for reachableAfterSeconds', async () => {
    let bg: FakeBreakGlass | undefined;
    const w = world({ a: 10 }, spec, new ScriptedGates(), {}, (f) => (bg = new FakeBreakGlass(f)));
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    w.cluster('a').reachable = false;
    await drive(w, () => phase(w) === 'BreakGlass');
    // Flapping: answers for 20 s (less than 30), then down again, then answers for good.
    w.cluster('a').reachable = true;
    let t = w.clock.nowMs();
    await drive(w, () => w.clock.nowMs() - t >= 20_000);
    expect(phase(w)).toBe('BreakGlass');
    w.cluster('a').reachable = false;
    await drive(w, () => w.store.current().status?.clusters?.[0]?.reachableSince === undefined);
    w.cluster('a').reachable = true;
    t = w.clock.nowMs();
    await drive(w, () => phase(w) === 'RollingBack');
    expect((w.clock.nowMs() - t) / 1000).toBeGreaterThanOrEqual(30);
    await drive(w, () => phase(w) === 'RolledBack');
    expect(bg!.calls.map((c) => c.op)).toEqual(['issue', 'clear']);
    expect(reasons(w).filter((r) => r === 'Healthy')).toHaveLength(1);
  });
});

describe('RolloutReconciler: credentials refused', () => {
  const spec = {
    strategy: { stages: [{ name: 's', clusters: 2, nodeSteps: [50, 100], bakeSeconds: 60, maxConcurrentClusters: 2 }] },
    gates: { intervalSeconds: 5, windowSeconds: 5, scrapeIntervalSeconds: 1, coreDNS: { cacheTTLSeconds: 0 }, failureLimit: 1, onNoData: 'Rollback' },
    breakGlass: { unreachableAfterSeconds: 60 },
  };
  const cond = (w: ReturnType<typeof world>) => w.store.current().status?.conditions?.find((c) => c.type === 'CredentialsInvalid');

  for (const kind of ['no-rights', 'expired'] as const) {
    it(`a token ${kind === 'expired' ? 'that expired' : 'stripped of its rights'} mid-rollout: the cluster holds, the condition names it and its Secret, no break-glass, no fleet breaker; the other cluster goes on; mended, it resumes`, async () => {
      let bg: FakeBreakGlass | undefined;
      // As the real scrape would: /metrics refused means no data (and onNoData: Rollback, limit 1).
      const refused = new Set<string>();
      const gates = new ScriptedGates((cluster) => (refused.has(cluster) ? 'NoData' : 'Pass'));
      const w = world({ a: 8, b: 6 }, spec, gates, {}, (f) => (bg = new FakeBreakGlass(f)));
      await drive(w, (ro) => (ro.status?.clusters ?? []).every((c) => c.phase === 'Baking'));
      w.cluster('a').credentials = kind;
      refused.add('a');
      // Long past unreachableAfterSeconds, and past many gate intervals.
      const t0 = w.clock.nowMs();
      await drive(w, (ro) => ro.status?.clusters?.find((c) => c.name === 'b')?.phase === 'Succeeded' && w.clock.nowMs() - t0 > 120_000);
      const st = w.store.current().status!;
      expect(st.phase).toBe('Progressing');
      expect(st.clusters?.find((c) => c.name === 'a')).toMatchObject({ phase: 'Baking', reachable: true });
      expect(st.clusters?.find((c) => c.name === 'a')?.credentialsInvalidSince).toBeDefined();
      expect(cond(w)).toMatchObject({ status: 'True', reason: 'CredentialsInvalid' });
      expect(cond(w)?.message).toContain('Secret default/a-kc');
      expect(w.store.current().status?.conditions?.find((c) => c.type === 'Degraded')).toMatchObject({ status: 'True', reason: 'CredentialsInvalid' });
      expect(bg!.calls).toEqual([]);
      expect(reasons(w)).not.toContain('ClusterUnreachable');
      expect(reasons(w)).not.toContain('RollingBack');
      expect(reasons(w).filter((r) => r === 'CredentialsInvalid')).toHaveLength(1);
      // The Secret is mended: the cluster goes on by itself, and the rollout finishes.
      w.cluster('a').credentials = 'valid';
      refused.delete('a');
      await drive(w, () => phase(w) === 'Succeeded');
      expect(cond(w)).toMatchObject({ status: 'False', reason: 'CredentialsAccepted' });
      expect(reasons(w)).toContain('CredentialsAccepted');
      expect(w.cluster('a').labelCounts()).toEqual({ [w.store.current().status!.revision!]: 8 });
    });
  }
});

describe('RolloutReconciler: a hold is not time the step was watched', () => {
  // Found by the fleet simulator (token-expires-mid-rollout): a hold longer than the progress deadline
  // rolled the whole fleet back on the first pass after it, and a NoData before and after a hold paused it.
  const spec = (failureLimit: number) => ({
    strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [50, 100], bakeSeconds: 60 }] },
    gates: { intervalSeconds: 5, windowSeconds: 5, scrapeIntervalSeconds: 1, coreDNS: { cacheTTLSeconds: 0 }, failureLimit, onNoData: 'Pause' },
    breakGlass: { unreachableAfterSeconds: 3600 },
  });
  const held = async (w: ReturnType<typeof world>, seconds: number, heldOn: () => boolean) => {
    const t0 = w.clock.nowMs();
    await drive(w, () => w.clock.nowMs() - t0 > seconds * 1000);
    expect(heldOn()).toBe(true);
  };

  for (const hold of ['credentials refused', 'API server unreachable'] as const) {
    it(`${hold} for 20 minutes while a step waits for its agents: the step goes on with its deadline counted from what was watched, no rollback`, async () => {
      const w = world({ a: 8 }, spec(3));
      await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Progressing' && ro.status.clusters[0].nodesUpdated === 4);
      const rev = w.store.current().status!.revision!;
      // The step's agents are not ready yet (a slow image pull), and then the cluster is held.
      w.cluster('a').notReady.add(rev);
      if (hold === 'credentials refused') w.cluster('a').credentials = 'expired';
      else w.cluster('a').reachable = false;
      await held(w, 1200, () => {
        const c = w.store.current().status!.clusters![0]!;
        return c.phase === 'Progressing' && (c.credentialsInvalidSince !== undefined || c.reachable === false);
      });
      w.cluster('a').credentials = 'valid';
      w.cluster('a').reachable = true;
      // Back, and the agents still need a minute: far less than the deadline since the step was last watched.
      const back = w.clock.nowMs();
      await drive(w, () => w.clock.nowMs() - back > 60_000);
      expect(phase(w)).toBe('Progressing');
      w.cluster('a').notReady.delete(rev);
      await drive(w, () => phase(w) === 'Succeeded' || phase(w) === 'RolledBack');
      expect(phase(w)).toBe('Succeeded');
      expect(reasons(w)).not.toContain('ProgressDeadlineExceeded');
    });
  }

  it('a NoData before a hold and the first one after it are not two in a row: no pause', async () => {
    let noData = true;
    const w = world({ a: 8 }, spec(2), new ScriptedGates(() => (noData ? 'NoData' : 'Pass')));
    await drive(w, (ro) => ro.status?.clusters?.[0]?.lastGate?.verdict === 'NoData');
    expect(w.store.current().status!.clusters![0]!.lastGate!.consecutiveFailures).toBe(1);
    w.cluster('a').credentials = 'expired';
    await held(w, 1200, () => w.store.current().status!.clusters![0]!.credentialsInvalidSince !== undefined);
    w.cluster('a').credentials = 'valid';
    // The first evaluation after the hold is NoData (a new baseline), the next ones pass.
    await drive(w, (ro) => (ro.status?.clusters?.[0]?.lastGate?.time ?? '') > new Date(w.clock.nowMs() - 1).toISOString() || phase(w) === 'Paused');
    expect(phase(w)).not.toBe('Paused');
    noData = false;
    await drive(w, () => phase(w) === 'Succeeded' || phase(w) === 'Paused' || phase(w) === 'RolledBack');
    expect(phase(w)).toBe('Succeeded');
  });
});

describe('RolloutReconciler: break-glass retried until confirmed', () => {
  it('an attempt in which nodes fail is sent again with backoff until every node confirms, then never again', async () => {
    let bg: FakeBreakGlass | undefined;
    const w = world(
      { a: 10 },
      { strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [50, 100], bakeSeconds: 300 }] }, breakGlass: { unreachableAfterSeconds: 60 } },
      new ScriptedGates(),
      {},
      (f) => (bg = new FakeBreakGlass(f)),
    );
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    bg!.failingAttempts = 3;
    w.cluster('a').reachable = false;
    await drive(w, () => phase(w) === 'BreakGlass');
    const first = Date.parse(w.store.current().status!.clusters![0]!.breakGlass!.lastAttemptAt!);
    expect(w.store.current().status!.clusters![0]!.breakGlass).toMatchObject({ attempts: 1, nodesFailed: 2 });
    await drive(w, (ro) => (ro.status?.clusters?.[0]?.breakGlass?.attempts ?? 0) >= 4);
    const b = w.store.current().status!.clusters![0]!.breakGlass!;
    expect(b).toMatchObject({ attempts: 4, nodesStopped: 5, nodesFailed: 0 });
    // Backoff 5 + 10 + 20 s between the four attempts.
    expect((Date.parse(b.lastAttemptAt!) - first) / 1000).toBeGreaterThanOrEqual(35);
    // Confirmed: still down, but no more attempts.
    await drive(w, () => false, { maxPasses: 30 }).catch(() => undefined);
    expect(bg!.calls.filter((c) => c.op === 'issue')).toHaveLength(4);
  });

  it('a break-glass transport that fails its check holds the cluster in Preflight, with a condition naming what failed, until it passes', async () => {
    let bg: FakeBreakGlass | undefined;
    const w = world({ a: 4 }, { strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [100], bakeSeconds: 10 }] } }, new ScriptedGates(), {}, (f) => {
      bg = new FakeBreakGlass(f);
      bg.checkResult = { ok: false, message: 'ssh check failed on a-node-0000 (Host key verification failed.)' };
      return bg;
    });
    await drive(w, (ro) => (ro.status?.conditions ?? []).some((c) => c.type === 'BreakGlassReady' && c.status === 'False'));
    const st = w.store.current().status!;
    expect(st.clusters?.[0]?.phase).toBe('Preflight');
    expect(st.conditions?.find((c) => c.type === 'BreakGlassReady')?.message).toContain('Host key verification failed');
    expect(w.cluster('a').relabels).toHaveLength(0);
    // Mended: the next check passes and the rollout goes on.
    bg!.checkResult = { ok: true, message: 'ssh to a-node-0000: connected, stop directory writable' };
    await drive(w, () => phase(w) === 'Succeeded');
    expect(w.store.current().status?.conditions?.find((c) => c.type === 'BreakGlassReady')?.status).toBe('True');
    expect(bg!.checks.length).toBeGreaterThanOrEqual(2);
  });

  it('action Manual skips the transport check (nothing acts on it by itself)', async () => {
    let bg: FakeBreakGlass | undefined;
    const w = world(
      { a: 4 },
      { strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [100], bakeSeconds: 10 }] }, breakGlass: { action: 'Manual' } },
      new ScriptedGates(),
      {},
      (f) => {
        bg = new FakeBreakGlass(f);
        bg.checkResult = { ok: false, message: 'would fail' };
        return bg;
      },
    );
    await drive(w, () => phase(w) === 'Succeeded');
    expect(bg!.checks).toEqual([]);
  });

  it('an abort and a retry read in the same pass end rolled back: the abort wins', async () => {
    const w = world({ a: 4 }, { strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [100], bakeSeconds: 10 }] } });
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    w.store.annotate(ABORT_ANNOTATION, 'a1');
    await drive(w, () => phase(w) === 'RolledBack');
    w.store.annotate(RETRY_ANNOTATION, 'r1');
    w.store.annotate(ABORT_ANNOTATION, 'a2');
    await drive(w, () => phase(w) === 'RolledBack' && w.store.current().status?.handledRequests?.abort === 'a2', { maxPasses: 200 });
    await drive(w, () => phase(w) === 'RolledBack' || phase(w) === 'Succeeded');
    expect(phase(w)).toBe('RolledBack');
    expect(w.cluster('a').labelCounts()).toEqual({ '': 4 });
  });

  it('a rollback after a finalize that reached only some clusters completes: the stable candidate gives the unlabelled nodes back', async () => {
    let bg: FakeBreakGlass | undefined;
    const w = world(
      { a: 2, b: 2 },
      { strategy: { stages: [{ name: 's', clusters: 2, nodeSteps: [100], bakeSeconds: 10 }] }, breakGlass: { unreachableAfterSeconds: 30 } },
      new ScriptedGates(),
      {},
      (f) => (bg = new FakeBreakGlass(f)),
    );
    // a goes down exactly when every cluster has succeeded: finalize reaches b, not a.
    await drive(w, (ro) => (ro.status?.clusters ?? []).every((c) => c.phase === 'Succeeded'));
    expect(phase(w)).toBe('Progressing');
    w.cluster('a').reachable = false;
    await w.make().reconcile('default/r');
    const stableOn = (c: string) =>
      [...w.cluster(c).objects.values()].some(
        (o) =>
          o.kind === 'DaemonSet' &&
          o.metadata.labels?.['telemetry.rollout.dev/collector-revision'] === w.store.current().status?.revision &&
          o.metadata.labels?.['telemetry.rollout.dev/stable'] === 'true',
      );
    // The half-done finalize this test is about: the candidate is stable on b only.
    expect([stableOn('a'), stableOn('b'), phase(w)]).toEqual([false, true, 'Progressing']);
    await drive(w, () => phase(w) !== 'Progressing', { maxPasses: 500 });
    w.store.annotate(ABORT_ANNOTATION, 'stop');
    w.cluster('a').reachable = true;
    await drive(w, () => phase(w) === 'RolledBack', { maxPasses: 2000 });
    for (const c of ['a', 'b']) expect(w.cluster(c).labelCounts()).toEqual({ '': 2 });
    // Nothing of the candidate runs anywhere, and any stop issued meanwhile was cleared.
    const rev = w.store.current().status!.revision!;
    for (const c of ['a', 'b']) expect([...w.cluster(c).placement().values()].filter((r) => r === rev)).toEqual([]);
    const issued = bg!.calls.filter((c) => c.op === 'issue').length;
    expect(bg!.calls.filter((c) => c.op === 'clear').length).toBe(issued > 0 ? 1 : 0);
  });

  it('a stop issued by a pass whose status write was lost is still cleared at recovery (the stop ledger), after a restart too', async () => {
    let bg: FakeBreakGlass | undefined;
    const w = world(
      { a: 4 },
      {
        strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [100], bakeSeconds: 600 }] },
        breakGlass: { unreachableAfterSeconds: 30, reachableAfterSeconds: 0 },
      },
      new ScriptedGates(),
      {},
      (f) => (bg = new FakeBreakGlass(f)),
    );
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    w.cluster('a').reachable = false;
    // Passes until the one that issues the stop; that pass's status write is lost.
    for (let i = 0; i < 100 && !bg!.calls.some((c) => c.op === 'issue'); i++) {
      const before = bg!.calls.length;
      w.store.failNextWrites = 1;
      await w
        .make()
        .reconcile('default/r')
        .catch(() => undefined);
      if (bg!.calls.length === before) {
        // Nothing issued: that pass's write should have landed; redo it without the injected failure.
        w.store.failNextWrites = 0;
        await w.make().reconcile('default/r');
      }
      await w.clock.advance(5000);
    }
    expect(bg!.calls.filter((c) => c.op === 'issue')).toHaveLength(1);
    expect(w.store.current().status?.clusters?.[0]?.breakGlass).toBeUndefined();
    // The API server is back before any pass issues it again; an abort rolls the cluster back.
    w.cluster('a').reachable = true;
    w.store.annotate(ABORT_ANNOTATION, 'after-the-lost-write');
    await drive(w, () => phase(w) === 'RolledBack', { fresh: true });
    expect(bg!.calls.filter((c) => c.op === 'clear').map((c) => [c.cluster, c.agentsRunning])).toEqual([['a', 0]]);
    expect(bg!.ledger.size).toBe(0);
  });
});
