/**
 * A small world for the rollout reconciler's unit tests: fake clusters of given sizes, a rollout store,
 * scripted gates, and `drive`, which runs passes on a fake clock until a condition holds.
 */
import type { TelemetryRollout } from '../../../operator/src/api/types.generated.js';
import { FakeClock } from '../../core/fakeclock.js';
import type { BreakGlassActuator, GateEvaluator, InventoryRecorder } from '../../../operator/src/rollout/interfaces.js';
import { RolloutReconciler, type ReconcilerOptions } from '../../../operator/src/rollout/reconciler.js';
import { FakeBreakGlass, FakeCluster, FakeClusterFactory, FakeEvents, FakeRolloutStore, ScriptedGates } from './fakes.js';

/** A partial rollout spec, merged over the test defaults. */
export type Spec = Record<string, unknown>;

/** A valid rollout manifest over `clusters` with short gates, merged with `spec`. */
export function manifest(clusters: string[], spec: Spec = {}): Record<string, unknown> {
  return {
    apiVersion: 'telemetry.rollout.dev/v1alpha1',
    kind: 'TelemetryRollout',
    metadata: { name: 'r', namespace: 'default' },
    spec: {
      collector: { image: 'collector:1' },
      targets: { clusters: clusters.map((name) => ({ name, kubeconfigSecretRef: { name: `${name}-kc` } })) },
      // Short bakes and gates keep the simulated time small; the signal lag (ttl+scrape+window) still applies.
      gates: { intervalSeconds: 5, windowSeconds: 5, scrapeIntervalSeconds: 1, coreDNS: { cacheTTLSeconds: 0 } },
      ...spec,
    },
  };
}

/** The fakes of one test and a factory for reconcilers over them (a new one is a restart). */
export interface World {
  clock: FakeClock;
  store: FakeRolloutStore;
  factory: FakeClusterFactory;
  events: FakeEvents;
  gates: GateEvaluator;
  make: () => RolloutReconciler;
  cluster: (n: string) => FakeCluster;
}

/** A world of fake clusters of the given sizes (names are the keys), with an optional break-glass fake. */
export function world(
  sizes: Record<string, number>,
  spec: Spec = {},
  gates: GateEvaluator = new ScriptedGates(),
  options: ReconcilerOptions = {},
  breakGlass?: (f: FakeClusterFactory) => FakeBreakGlass | (BreakGlassActuator & InventoryRecorder),
): World {
  const clock = new FakeClock();
  const factory = new FakeClusterFactory();
  for (const [n, size] of Object.entries(sizes)) factory.add(new FakeCluster(n, size));
  const store = new FakeRolloutStore(manifest(Object.keys(sizes), spec));
  const events = new FakeEvents();
  const bg = breakGlass?.(factory);
  const make = () =>
    new RolloutReconciler({
      rollouts: store,
      clusters: factory,
      gates,
      status: store,
      events,
      clock,
      options: { pollMs: 1000, ...options },
      ...(bg ? { breakGlass: bg } : {}),
      // The real actuator keeps the inventory it works from; the fake reads the clusters directly.
      ...(bg && 'record' in bg ? { inventory: bg } : {}),
    });
  return { clock, store, factory, events, gates, make, cluster: (n) => factory.clusters.get(n) as FakeCluster };
}

/**
 * Runs passes until `until` holds, advancing the fake clock by each requeue. `fresh` makes a new
 * reconciler for every pass: a restart (or leader change) at every step boundary.
 */
export async function drive(
  w: World,
  until: (ro: TelemetryRollout) => boolean,
  opts: { fresh?: boolean; maxPasses?: number; onPass?: (i: number) => void | Promise<void> } = {},
): Promise<number> {
  let r = w.make();
  const max = opts.maxPasses ?? 5000;
  for (let i = 0; i < max; i++) {
    if (opts.fresh) r = w.make();
    let res: { requeueAfterMs?: number };
    try {
      res = await r.reconcile('default/r');
    } catch {
      res = { requeueAfterMs: 1000 };
    }
    await opts.onPass?.(i);
    if (until(w.store.current())) return i + 1;
    await w.clock.advance(Math.max(res.requeueAfterMs ?? 30_000, 0) || 1);
  }
  throw new Error(`did not converge in ${max} passes; status: ${JSON.stringify(w.store.current().status, null, 1).slice(0, 3000)}`);
}

/** The rollout's phase. */
export const phase = (w: World) => w.store.current().status?.phase;
/** One of the rollout's conditions. */
export const cond = (w: World, type: string) => w.store.current().status?.conditions?.find((c) => c.type === type);
/** The (cluster, step) sequence in which steps started, from status.history. */
export const stepStarts = (w: World) => (w.store.current().status?.history ?? []).filter((h) => h.reason === 'StepStarted').map((h) => h.message);
