// The pass signal from the work queue into the reconciler's collaborators: requests are cancelled when
// it aborts, nothing shaped by the abort reaches the reconciler, and a pass either commits its status
// or writes nothing.
import { describe, expect, it } from '@jest/globals';
import {
  PassSignal,
  interruptibleBreakGlass,
  interruptibleClusters,
  interruptibleGates,
  interruptibleInventory,
  interruptibleStatus,
} from './interruptible.js';
import type { TelemetryRollout, TelemetryRolloutStatus } from './api/types.generated.js';
import { FakeBreakGlass, FakeCluster, FakeClusterFactory, FakeEvents, FakeRolloutStore, ScriptedGates } from '../../testkit/operator/rollout/fakes.js';
import type { ClusterClient, GateContext, GateEvaluation, GateEvaluator, NodeInfo, ResolvedTarget, StatusWriter } from './rollout/interfaces.js';
import { RolloutReconciler } from './rollout/reconciler.js';
import { abortReason } from '#core/clock.js';
import { FakeClock } from '../../testkit/core/fakeclock.js';

const manifest = {
  apiVersion: 'telemetry.rollout.dev/v1alpha1',
  kind: 'TelemetryRollout',
  metadata: { name: 'r', namespace: 'default' },
  spec: {
    collector: { image: 'collector:1' },
    targets: { clusters: [{ name: 'east', kubeconfigSecretRef: { name: 'east-kc' } }] },
    gates: { intervalSeconds: 5, windowSeconds: 5, scrapeIntervalSeconds: 1, coreDNS: { cacheTTLSeconds: 0 } },
  },
};
const TARGET: ResolvedTarget = { name: 'east', secretName: 'east-kc', secretKey: 'value' };
/** The reason the manager aborts the work signal with. */
const shutdown = (): Error => Object.assign(new Error('shutting down: received SIGTERM'), { name: 'AbortError' });

/** Resolves when `signal` aborts, rejecting with its reason: a request that never gets an answer. */
function hang(signal: AbortSignal | undefined): Promise<never> {
  return new Promise<never>((_resolve, reject) => {
    if (signal === undefined) return;
    if (signal.aborted) reject(abortReason(signal));
    signal.addEventListener('abort', () => reject(abortReason(signal)), { once: true });
  });
}

/** A target whose node LIST hangs while `hanging` is set (an API server that accepted and went silent). */
class HangingCluster extends FakeCluster {
  hanging = true;
  listSignals: Array<AbortSignal | undefined> = [];
  override async listNodes(signal?: AbortSignal): Promise<NodeInfo[]> {
    this.listSignals.push(signal);
    if (this.hanging) return hang(signal);
    return super.listNodes();
  }
}

/** Lets pending continuations run (the pass reaches its hanging request). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function world() {
  const pass = new PassSignal();
  const cluster = new HangingCluster('east', 10);
  const factory = new FakeClusterFactory().add(cluster);
  const store = new FakeRolloutStore(manifest);
  const reconciler = new RolloutReconciler({
    rollouts: store,
    clusters: interruptibleClusters(factory, pass),
    gates: interruptibleGates(new ScriptedGates(), pass),
    status: interruptibleStatus(store, pass),
    events: new FakeEvents(),
    clock: new FakeClock(),
  });
  return { pass, cluster, store, reconciler };
}

describe('a reconcile pass under its signal', () => {
  it('cancels the request in flight when the signal aborts and then writes no status', async () => {
    const w = world();
    const ac = new AbortController();
    const running = w.pass.run(ac.signal, () => w.reconciler.reconcile('default/r'));
    await settle();
    // The reconciler passed no signal; the pass signal reached the target's request anyway.
    expect(w.cluster.listSignals).toHaveLength(1);
    expect(w.cluster.listSignals[0]?.aborted).toBe(false);
    ac.abort(shutdown());
    await expect(running).rejects.toThrow('shutting down: received SIGTERM');
    expect(w.cluster.listSignals[0]?.aborted).toBe(true);
    // The reconciler had recorded the aborted LIST as "unreachable"; none of that was written.
    expect(w.store.writes).toEqual([]);
  });

  it('commits the same pass when it is not interrupted', async () => {
    const w = world();
    w.cluster.hanging = false;
    await w.pass.run(new AbortController().signal, () => w.reconciler.reconcile('default/r'));
    expect(w.store.writes).toHaveLength(1);
    expect(w.store.writes[0]?.phase).toBe('Progressing');
  });

  it('lets a status write that has begun finish (the commit point), and refuses one after the abort', async () => {
    const pass = new PassSignal();
    const written: TelemetryRolloutStatus[] = [];
    let finishWrite!: () => void;
    const slow: StatusWriter = {
      writeStatus: async (_r, status) => {
        await new Promise<void>((resolve) => (finishWrite = resolve));
        written.push(status);
      },
    };
    const writer = interruptibleStatus(slow, pass);
    const rollout = { metadata: { name: 'r', namespace: 'default', resourceVersion: '1' } } as TelemetryRollout;
    const ac = new AbortController();
    const writing = pass.run(ac.signal, () => writer.writeStatus(rollout, { phase: 'Progressing' }));
    await settle();
    ac.abort(shutdown());
    finishWrite();
    await writing;
    expect(written).toEqual([{ phase: 'Progressing' }]);
    await expect(pass.run(ac.signal, () => writer.writeStatus(rollout, { phase: 'Failed' }))).rejects.toThrow('shutting down');
    expect(written).toHaveLength(1);
  });
});

describe('interruptible collaborators', () => {
  it('turn an answer that arrived after the abort into the abort, and call nothing once aborted', async () => {
    const pass = new PassSignal();
    const ac = new AbortController();
    // A probe that reports the aborted request as an unreachable API server (the real one never throws).
    const probing: ClusterClient = Object.assign(new FakeCluster('east', 1), {
      probe: async (signal?: AbortSignal) => {
        await hang(signal).catch(() => undefined);
        return { reachable: false, message: 'aborted' };
      },
    });
    const factory = new FakeClusterFactory().add(probing as FakeCluster);
    const clusters = interruptibleClusters(factory, pass);
    const rollout = {} as TelemetryRollout;
    const client = await pass.run(ac.signal, () => clusters.client(rollout, TARGET));
    // One wrapper per client, so the factory's cache keeps its identity.
    expect(await pass.run(ac.signal, () => clusters.client(rollout, TARGET))).toBe(client);
    const probe = pass.run(ac.signal, () => client.probe());
    await settle();
    ac.abort(shutdown());
    await expect(probe).rejects.toThrow('shutting down');
    const before = (probing as FakeCluster).calls.listNodes ?? 0;
    await expect(pass.run(ac.signal, () => client.listNodes())).rejects.toThrow('shutting down');
    expect((probing as FakeCluster).calls.listNodes ?? 0).toBe(before);
    await expect(pass.run(ac.signal, () => clusters.resolveTargets(rollout))).rejects.toThrow('shutting down');
  });

  it("give gate measurements the pass signal with the caller's own, and keep an absent project absent", async () => {
    const pass = new PassSignal();
    const seen: Array<AbortSignal | undefined> = [];
    const noData: GateEvaluation = { verdict: 'NoData', message: 'scrape aborted' };
    const inner: GateEvaluator = {
      measures: true,
      captureBaseline: async () => ({}),
      evaluate: async (ctx) => {
        seen.push(ctx.signal);
        await hang(ctx.signal).catch(() => undefined);
        return noData;
      },
    };
    const gates = interruptibleGates(inner, pass);
    expect('project' in gates).toBe(false);
    expect(gates.measures).toBe(true);
    const own = new AbortController();
    const ac = new AbortController();
    const ctx = { target: TARGET, signal: own.signal } as GateContext;
    const evaluating = pass.run(ac.signal, () => gates.evaluate(ctx));
    await settle();
    expect(seen[0]).not.toBe(own.signal);
    ac.abort(shutdown());
    // NoData caused by the abort would count as a gate failure: the pass gets the abort instead.
    await expect(evaluating).rejects.toThrow('shutting down');
    expect(seen[0]?.aborted).toBe(true);
    expect(own.signal.aborted).toBe(false);
    // The caller's own signal still works on its own.
    const again = pass.run(new AbortController().signal, () => gates.evaluate(ctx));
    await settle();
    own.abort(new Error('caller timeout'));
    await expect(again).resolves.toEqual(noData);
  });

  it('refuse break-glass and inventory writes once aborted, and pass everything through outside a pass', async () => {
    const pass = new PassSignal();
    const factory = new FakeClusterFactory().add(new FakeCluster('east', 2));
    const inner = new FakeBreakGlass(factory);
    const bg = interruptibleBreakGlass(inner, pass);
    const recorded: string[] = [];
    const inventory = interruptibleInventory({ record: async (_r, cluster) => void recorded.push(cluster) }, pass);
    const rollout = { metadata: { name: 'r', namespace: 'default' } } as TelemetryRollout;
    const ac = new AbortController();
    ac.abort(shutdown());
    await expect(pass.run(ac.signal, () => bg.issue(rollout, 'east', 'rev', 'unreachable'))).rejects.toThrow('shutting down');
    await expect(pass.run(ac.signal, () => bg.clear(rollout, 'east', 'rev'))).rejects.toThrow('shutting down');
    await expect(pass.run(ac.signal, () => inventory.record(rollout, 'east', []))).rejects.toThrow('shutting down');
    expect(inner.calls).toEqual([]);
    expect(recorded).toEqual([]);
    expect(bg.available(rollout)).toBe(true);
    // Outside a pass (tools, tests) there is no signal: calls go straight through.
    expect(pass.current()).toBeUndefined();
    await inventory.record(rollout, 'east', []);
    expect(recorded).toEqual(['east']);
  });
});
