/**
 * Break-glass through the real reconciler, in `Progressing` and in `RollingBack`: the time from the
 * trigger (the target's API server unreachable for `unreachableAfterSeconds`) to every inventoried node
 * of the revision having its stop file on disk.
 *
 * The reconciler runs over the unit-test world (fake target cluster, fake rollout store, scripted gates,
 * a fake clock for the rollout's own time) with the real break-glass actuator (`TransportBreakGlass`:
 * inventory from an in-memory store the reconciler itself fills, the transport built from the rollout's
 * spec) over a real transport that writes real files (local, or exec running a shell per node).
 * The rollout is driven on the fake clock to the phase, the API server is made unreachable, the clock is
 * moved to the threshold, and from there the real time is measured: one reconcile pass, then polling the
 * disk until every stop file is there (so the figure holds whether the fan-out runs inside the pass, as
 * today, or in a runner behind it).
 *
 * What this relies on, for whoever changes how the actuator is called:
 *   - `RolloutReconciler` deps `breakGlass` and `inventory` (both the actuator), `reconcile('default/r')`;
 *   - the world of testkit/operator/rollout/world.ts (`world`, `drive`; its `make` is replaced here to
 *     pass the real actuator) and `FakeCluster.reachable`;
 *   - the status fields `clusters[0].reachable`, `unreachableSince`, `phase`, `nodesUpdated`, `breakGlass`;
 *   - the trigger being `unreachableSince + unreachableAfterSeconds` on the reconciler's clock, and a pass
 *     at that moment being what starts the fan-out (a runner must be started by that pass, or be polled
 *     by something this module does not do).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { TelemetryRollout } from '../../operator/src/api/types.generated.js';
import { TransportBreakGlass } from '../../operator/src/breakglass/actuator.js';
import { parseStopFile } from '../../operator/src/breakglass/stopfile.js';
import { REVISION_LABEL } from '../../operator/src/rollout/interfaces.js';
import { RolloutReconciler } from '../../operator/src/rollout/reconciler.js';
import { MemoryInventoryStore } from '../../testkit/operator/breakglass/inventory.js';
import { ScriptedGates } from '../../testkit/operator/rollout/fakes.js';
import { drive, world, type World } from '../../testkit/operator/rollout/world.js';
import { execCommand, exists, stopFileOnDisk } from './breakglass-setup.js';

/** The rollout phases the benchmark measures break-glass in. */
export type BenchPhase = 'Progressing' | 'RollingBack';

/** Options of {@link measurePhase}. */
export interface PhaseOptions {
  phase: BenchPhase;
  transport: 'local' | 'exec';
  nodes: number;
  /** `spec.breakGlass.unreachableAfterSeconds` (default 60, the CRD's default). */
  unreachableAfterSeconds?: number;
  /** Real-time bound on waiting for the files, so a fan-out that never finishes ends the round (default 120 s). */
  deadlineMs?: number;
}

/** Figures of one phase round. */
export interface PhaseFigures {
  phase: BenchPhase;
  transport: 'local' | 'exec';
  /** Nodes of the target cluster. */
  nodes: number;
  /** The transport's concurrency (the spec's, defaulted by the CRD). */
  concurrency: number;
  /** Inventoried nodes labelled with the revision at the trigger: the stop files expected. */
  nodesInventoried: number;
  /** Nodes the candidate's agents actually ran on at the trigger (a subset of the inventoried ones). */
  nodesRunningCandidate: number;
  /** Real time from the trigger to the last expected stop file found on disk. */
  triggerToAllStoppedMs: number;
  /** Real time of the reconcile pass at the trigger. */
  passMs: number;
  /** Expected stop files found (equals nodesInventoried unless the deadline was hit). */
  filesOnDisk: number;
  /** Files found that name the revision being stopped. */
  filesNamingRevision: number;
  /** Whether every node running the candidate had its stop file. */
  allRunningStopped: boolean;
  /** The rollout's and the cluster's phase after the pass. */
  rolloutPhaseAfter: string;
  clusterPhaseAfter: string;
  /** The cluster's break-glass status message after the pass. */
  statusMessage: string;
}

const CLUSTER = 'a';

/** Drives a rollout to `opts.phase`, cuts the API server, and measures the break-glass (see the module comment). */
export async function measurePhase(opts: PhaseOptions): Promise<PhaseFigures> {
  const threshold = opts.unreachableAfterSeconds ?? 60;
  const rootDir = await mkdtemp(join(tmpdir(), `tro-bench-phase-${opts.transport}-`));
  try {
    const transport = opts.transport === 'local' ? { type: 'local', local: { rootDir } } : { type: 'exec', exec: { command: execCommand(rootDir) } };
    let failing = false;
    const rollingBack = opts.phase === 'RollingBack';
    const w = world(
      { [CLUSTER]: opts.nodes },
      {
        // RollingBack: slow relabelling, so the rollback is still under way when the API server goes.
        strategy: { nodeRelabelQPS: rollingBack ? 2 : 50, stages: [{ name: 's', clusters: 1, nodeSteps: [100], bakeSeconds: 3600 }] },
        gates: { intervalSeconds: 5, windowSeconds: 5, scrapeIntervalSeconds: 1, coreDNS: { cacheTTLSeconds: 0 }, failureLimit: 1, onFailure: 'Rollback' },
        breakGlass: { action: 'Auto', unreachableAfterSeconds: threshold, transport },
      },
      new ScriptedGates(() => (failing ? 'Fail' : 'Pass')),
    );
    const inventory = new MemoryInventoryStore();
    const actuator = new TransportBreakGlass(
      {
        inventory: () => inventory,
        secrets: () => ({
          readSecretKey: async () => {
            throw new Error('the local and exec transports read no Secret');
          },
        }),
      },
      w.clock,
    );
    const make = (): RolloutReconciler =>
      new RolloutReconciler({
        rollouts: w.store,
        clusters: w.factory,
        gates: w.gates,
        status: w.store,
        events: w.events,
        clock: w.clock,
        options: { pollMs: 1000 },
        breakGlass: actuator,
        inventory: actuator,
      });
    const real: World = { ...w, make };
    const cluster = (ro: TelemetryRollout) => ro.status?.clusters?.[0];

    await drive(real, (ro) => cluster(ro)?.phase === 'Baking' && cluster(ro)?.nodesUpdated === opts.nodes);
    if (rollingBack) {
      failing = true;
      await drive(real, (ro) => ro.status?.phase === 'RollingBack' && (cluster(ro)?.nodesUpdated ?? 0) <= opts.nodes / 2);
    }
    const revision = w.store.current().status!.revision!;
    w.cluster(CLUSTER).reachable = false;
    await drive(real, (ro) => cluster(ro)?.reachable === false);
    const since = cluster(w.store.current())?.unreachableSince;
    if (since === undefined) throw new Error('the cluster was not marked unreachable');
    if (cluster(w.store.current())?.breakGlass?.issuedAt !== undefined) throw new Error('break-glass was issued before the threshold');
    const phaseBefore = w.store.current().status?.phase;
    if (phaseBefore !== opts.phase) throw new Error(`the rollout is ${phaseBefore}, not ${opts.phase}, when the API server goes`);

    // The trigger: the reconciler's clock at the threshold. Everything from here is real time.
    await w.clock.advance(Math.max(0, Date.parse(since) + threshold * 1000 - w.clock.nowMs()));
    const inv = await inventory.load(CLUSTER);
    const expected = (inv?.nodes ?? []).filter((n) => n.labels[REVISION_LABEL] === revision).map((n) => n.name);
    const running = w.cluster(CLUSTER).nodesRunning(revision, false);
    const stopFilePath = w.store.current().spec.breakGlass.transport!.stopFilePath;
    const pathOf = (node: string) => stopFileOnDisk(rootDir, node, stopFilePath);

    const t0 = performance.now();
    await make().reconcile(`default/r`);
    const passMs = performance.now() - t0;
    const pending = new Set(expected);
    const deadline = t0 + (opts.deadlineMs ?? 120_000);
    while (pending.size > 0 && performance.now() < deadline) {
      const found = await Promise.all([...pending].map(async (n) => [n, await exists(pathOf(n))] as const));
      for (const [n, ok] of found) if (ok) pending.delete(n);
      if (pending.size > 0) await new Promise((r) => setTimeout(r, 2));
    }
    const triggerToAllStoppedMs = performance.now() - t0;

    const written = expected.filter((n) => !pending.has(n));
    const naming = await Promise.all(written.map(async (n) => parseStopFile(await readFile(pathOf(n), 'utf8')).revision === revision));
    const after = w.store.current();
    return {
      phase: opts.phase,
      transport: opts.transport,
      nodes: opts.nodes,
      concurrency: after.spec.breakGlass.transport!.concurrency,
      nodesInventoried: expected.length,
      nodesRunningCandidate: running.length,
      triggerToAllStoppedMs: Math.round(triggerToAllStoppedMs),
      passMs: Math.round(passMs),
      filesOnDisk: written.length,
      filesNamingRevision: naming.filter(Boolean).length,
      allRunningStopped: running.every((n) => !pending.has(n) && expected.includes(n)),
      rolloutPhaseAfter: after.status?.phase ?? '',
      clusterPhaseAfter: cluster(after)?.phase ?? '',
      statusMessage: cluster(after)?.breakGlass?.message ?? '',
    };
  } finally {
    await rm(rootDir, { recursive: true, force: true });
  }
}
