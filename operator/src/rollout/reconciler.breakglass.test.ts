// The reconciler with the operator's real break-glass actuator (TransportBreakGlass over an in-memory
// transport and inventory store): the fan-out outside the pass, the inventory from pods, recovery when a
// node was deleted during the outage, and an API server that answers but refuses the rollback's calls.
import { describe, expect, it } from '@jest/globals';
import { SystemClock } from '#core/clock.js';
import { TransportBreakGlass } from '../breakglass/actuator.js';
import { MemoryInventoryStore } from '../../../testkit/operator/breakglass/inventory.js';
import { ScriptedTransport } from '../../../testkit/operator/breakglass/transport.js';
import { ScriptedGates } from '../../../testkit/operator/rollout/fakes.js';
import { drive, phase, world, type Spec } from '../../../testkit/operator/rollout/world.js';
import { RETRY_ANNOTATION } from './reconciler.js';

const TRANSPORT = { type: 'local', local: { rootDir: '/nodes' } };

function incidentWorld(sizes: Record<string, number>, spec: Spec, failing: () => boolean) {
  const transport = new ScriptedTransport();
  const store = new MemoryInventoryStore();
  let bg: TransportBreakGlass | undefined;
  const w = world(
    sizes,
    spec,
    new ScriptedGates(() => (failing() ? 'Fail' : 'Pass')),
    {},
    () =>
      (bg = new TransportBreakGlass(
        { inventory: () => store, secrets: () => ({ readSecretKey: async () => '' }) },
        new SystemClock(),
        undefined,
        async () => transport,
      )),
  );
  return { w, transport, store, bg: () => bg! };
}

const clusterStatus = (w: ReturnType<typeof world>, name: string) => w.store.current().status?.clusters?.find((c) => c.name === name);
const reasons = (w: ReturnType<typeof world>) => (w.store.current().status?.history ?? []).map((h) => h.reason);

describe('RolloutReconciler with the real break-glass actuator', () => {
  it('one cluster whose nodes hang does not delay the stop of another', async () => {
    const { w, transport } = incidentWorld(
      { a: 6, b: 6 },
      {
        strategy: { stages: [{ name: 's', clusters: 2, maxConcurrentClusters: 2, nodeSteps: [100], bakeSeconds: 600 }] },
        breakGlass: { unreachableAfterSeconds: 30, transport: TRANSPORT },
      },
      () => false,
    );
    await drive(w, (ro) => (ro.status?.clusters ?? []).every((c) => c.phase === 'Baking'));
    for (const n of w.cluster('a').nodes.keys()) transport.hanging.add(n);
    w.cluster('a').reachable = false;
    w.cluster('b').reachable = false;
    await drive(w, () => clusterStatus(w, 'b')?.breakGlass?.nodesStopped === 6 && clusterStatus(w, 'b')?.breakGlass?.inProgress === undefined);
    // b is done while a's writes still hang: a is still in progress, nothing confirmed.
    expect(clusterStatus(w, 'a')?.breakGlass).toMatchObject({ inProgress: true, nodesStopped: 0 });
    expect([...transport.files.keys()].filter((n) => n.startsWith('b-'))).toHaveLength(6);
    transport.release();
    await drive(w, () => clusterStatus(w, 'a')?.breakGlass?.nodesStopped === 6 && clusterStatus(w, 'a')?.breakGlass?.inProgress === undefined);
    expect(phase(w)).toBe('BreakGlass');
  });

  it("the watcher's node gets the stop file although it never carries the revision label", async () => {
    const { w, transport } = incidentWorld(
      { a: 10 },
      {
        strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [20, 100], bakeSeconds: 600 }] },
        breakGlass: { unreachableAfterSeconds: 30, transport: TRANSPORT },
      },
      () => false,
    );
    w.cluster('a').watcherNode = 'a-node-0009';
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    const rev = w.store.current().status!.revision!;
    expect(w.cluster('a').nodes.get('a-node-0009')?.labels['telemetry.rollout.dev/revision']).toBeUndefined();
    w.cluster('a').reachable = false;
    await drive(w, () => clusterStatus(w, 'a')?.breakGlass?.nodesPending === 0 && !clusterStatus(w, 'a')?.breakGlass?.inProgress);
    expect([...transport.files.keys()].sort()).toEqual(['a-node-0000', 'a-node-0001', 'a-node-0009']);
    expect(clusterStatus(w, 'a')?.breakGlass?.revision).toBe(rev);
  });

  it('a node that fails for good and is deleted during the outage leaves the inventory; recovery completes and clears the stop files', async () => {
    const { w, transport } = incidentWorld(
      { a: 8 },
      {
        strategy: { nodeRelabelQPS: 50, stages: [{ name: 's', clusters: 1, nodeSteps: [100], bakeSeconds: 600 }] },
        breakGlass: { unreachableAfterSeconds: 30, reachableAfterSeconds: 10, transport: TRANSPORT },
      },
      () => false,
    );
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    transport.failing.add('a-node-0003');
    w.cluster('a').reachable = false;
    await drive(w, () => (clusterStatus(w, 'a')?.breakGlass?.attempts ?? 0) >= 3);
    const bgs = clusterStatus(w, 'a')!.breakGlass!;
    expect(bgs).toMatchObject({ nodesStopped: 7, nodesPending: 1 });
    expect(bgs.failingNodes).toEqual([{ node: 'a-node-0003', message: expect.stringContaining('Permission denied') }]);
    // The node is gone by the time the API server is back.
    w.cluster('a').nodes.delete('a-node-0003');
    w.cluster('a').reachable = true;
    await drive(w, () => phase(w) === 'RolledBack');
    expect(reasons(w)).toContain('InventoryChanged');
    const history = w.store.current().status!.history!.find((h) => h.reason === 'InventoryChanged');
    expect(history?.message).toContain('a-node-0003');
    expect(clusterStatus(w, 'a')?.breakGlass?.clearedAt).toBeDefined();
    expect(transport.files.size).toBe(0);
  });

  it('an API server that answers but refuses the rollback (429) for unreachableAfterSeconds gets its agents stopped', async () => {
    let failing = false;
    const { w, transport } = incidentWorld(
      { a: 20 },
      {
        strategy: { nodeRelabelQPS: 1, stages: [{ name: 's', clusters: 1, nodeSteps: [100], bakeSeconds: 600 }] },
        gates: { intervalSeconds: 5, windowSeconds: 5, scrapeIntervalSeconds: 1, coreDNS: { cacheTTLSeconds: 0 }, failureLimit: 1, onFailure: 'Rollback' },
        breakGlass: { unreachableAfterSeconds: 30, transport: TRANSPORT },
      },
      () => failing,
    );
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    failing = true;
    await drive(w, (ro) => ro.status?.phase === 'RollingBack' && (ro.status.clusters?.[0]?.nodesUpdated ?? 20) < 18);
    w.cluster('a').overloaded.add('setNodeRevision');
    await drive(w, () => clusterStatus(w, 'a')?.breakGlass?.nodesPending === 0 && !clusterStatus(w, 'a')?.breakGlass?.inProgress);
    const c = clusterStatus(w, 'a')!;
    expect(c.refusedSince).toBeDefined();
    expect(c.reachable).not.toBe(false);
    expect(transport.files.size).toBe(c.breakGlass?.nodesTargeted);
    expect(c.breakGlass?.nodesTargeted).toBeGreaterThan(0);
    expect(w.store.current().status?.history?.some((h) => h.reason === 'BreakGlass' && (h.message ?? '').includes('refused'))).toBe(true);
    // The API server takes work again: the rollback completes and the stop files go last.
    w.cluster('a').overloaded.clear();
    await drive(w, () => phase(w) === 'RolledBack');
    expect(transport.files.size).toBe(0);
    expect(clusterStatus(w, 'a')?.refusedSince).toBeUndefined();
  });

  it("probes every cluster at once: a dead API server's timeout does not hold up another cluster's probe", async () => {
    const { w } = incidentWorld(
      { a: 4, b: 4 },
      {
        strategy: { stages: [{ name: 's', clusters: 2, maxConcurrentClusters: 2, nodeSteps: [100], bakeSeconds: 600 }] },
        breakGlass: { unreachableAfterSeconds: 30, transport: TRANSPORT },
      },
      () => false,
    );
    await drive(w, (ro) => (ro.status?.clusters ?? []).every((c) => c.phase === 'Baking'));
    // a's probe answers only once b's probe has started: probed one after the other, the pass would hang.
    let bStarted!: () => void;
    const started = new Promise<void>((resolve) => (bStarted = resolve));
    w.cluster('a').probeWait = () => started;
    w.cluster('b').probeWait = async () => bStarted();
    await w.make().reconcile('default/r');
    expect(w.cluster('a').calls.probe).toBeGreaterThan(0);
    expect(w.cluster('b').calls.probe).toBeGreaterThan(0);
  });

  it('a spec edit during an outage waits: break-glass stays armed for the current revision, and the new one starts once the incident is over', async () => {
    const { w, transport } = incidentWorld(
      { a: 6 },
      {
        strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [100], bakeSeconds: 600 }] },
        breakGlass: { unreachableAfterSeconds: 30, reachableAfterSeconds: 10, transport: TRANSPORT },
      },
      () => false,
    );
    await drive(w, (ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    const rev = w.store.current().status!.revision!;
    w.cluster('a').reachable = false;
    // The edit lands while the API server is down, before break-glass is due.
    w.store.updateSpec((s) => (s.collector.image = 'collector:2'));
    await drive(w, () => clusterStatus(w, 'a')?.breakGlass?.nodesPending === 0 && !clusterStatus(w, 'a')?.breakGlass?.inProgress);
    expect(w.store.current().status?.revision).toBe(rev);
    expect(transport.files.size).toBe(6);
    expect(w.store.current().status?.message).toContain('(a spec change) waits until the incident on a is over');
    // Back: the old revision is rolled back, its stop files cleared, then the new revision starts.
    w.cluster('a').reachable = true;
    await drive(w, () => w.store.current().status?.revision !== rev && phase(w) === 'Progressing');
    expect(transport.files.size).toBe(0);
    expect(reasons(w).indexOf('RolledBack')).toBeLessThan(reasons(w).lastIndexOf('RevisionStarted'));
    expect(w.store.current().status?.message ?? '').not.toContain('waits until the incident');
  });

  it('clusters recover independently: one whose stop files cannot all be cleared does not hold up another, and is not reported recovered', async () => {
    const { w, transport } = incidentWorld(
      { a: 4, b: 4 },
      {
        strategy: { nodeRelabelQPS: 50, stages: [{ name: 's', clusters: 2, maxConcurrentClusters: 2, nodeSteps: [100], bakeSeconds: 600 }] },
        breakGlass: { unreachableAfterSeconds: 30, reachableAfterSeconds: 10, transport: TRANSPORT },
      },
      () => false,
    );
    await drive(w, (ro) => (ro.status?.clusters ?? []).every((c) => c.phase === 'Baking'));
    w.cluster('a').reachable = false;
    w.cluster('b').reachable = false;
    const stopped = (n: string) => clusterStatus(w, n)?.breakGlass?.nodesPending === 0 && !clusterStatus(w, n)?.breakGlass?.inProgress;
    await drive(w, () => stopped('a') && stopped('b'));
    // A node of b (the newest, rolled back first) cannot be written any more: its stop file stays.
    transport.failing.add('b-node-0002');
    w.cluster('a').reachable = true;
    w.cluster('b').reachable = true;
    await drive(w, () => clusterStatus(w, 'a')?.phase === 'RolledBack');
    const b = clusterStatus(w, 'b')!;
    expect(b.phase).toBe('RollingBack');
    expect(b.breakGlass?.clearedAt).toBeUndefined();
    expect(b.message).toContain('b-node-0002');
    expect(phase(w)).not.toBe('RolledBack');
    expect(transport.files.get('b-node-0002')).toEqual([expect.stringMatching(/^auto-/)]);
    transport.failing.clear();
    await drive(w, () => phase(w) === 'RolledBack');
    expect(transport.files.size).toBe(0);
  });

  it('after success with afterSuccess Auto: the outage stops that cluster only, the stop stays after recovery, and a retry lifts it', async () => {
    const { w, transport } = incidentWorld(
      { a: 4, b: 4 },
      {
        strategy: { stages: [{ name: 's', clusters: 2, nodeSteps: [100], bakeSeconds: 10 }] },
        breakGlass: { unreachableAfterSeconds: 30, reachableAfterSeconds: 10, afterSuccess: 'Auto', transport: TRANSPORT },
      },
      () => false,
    );
    await drive(w, () => phase(w) === 'Succeeded');
    w.cluster('a').reachable = false;
    await drive(w, () => clusterStatus(w, 'a')?.breakGlass?.nodesStopped === 4 && !clusterStatus(w, 'a')?.breakGlass?.inProgress);
    const cond = (t: string) => w.store.current().status?.conditions?.find((c) => c.type === t)?.status;
    expect(phase(w)).toBe('Succeeded');
    expect(cond('AgentsStopped')).toBe('True');
    expect([...transport.files.keys()].every((n) => n.startsWith('a-'))).toBe(true);
    expect(w.cluster('b').relabels.filter(([, r]) => r === null)).toEqual([]);
    w.cluster('a').reachable = true;
    await drive(w, () => clusterStatus(w, 'a')?.reachable === true && (clusterStatus(w, 'a')?.message ?? '').includes('kubectl tro retry'));
    expect(transport.files.size).toBe(4);
    w.store.annotate(RETRY_ANNOTATION, 'lift-1');
    await drive(w, () => clusterStatus(w, 'a')?.breakGlass?.clearedAt !== undefined);
    expect(transport.files.size).toBe(0);
    expect(cond('AgentsStopped')).toBe('False');
    expect(phase(w)).toBe('Succeeded');
  });
});
