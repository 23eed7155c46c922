/**
 * Break-glass through the real reconciler, in `Progressing` and in `RollingBack`: the time from the
 * trigger (the target's API server unreachable for `unreachableAfterSeconds`) to every node the actuator
 * targets from the inventory having its stop file on disk.
 *
 * The reconciler runs over the unit-test world (fake target cluster, fake rollout store, scripted gates,
 * a fake clock for the rollout's own time) with the real break-glass actuator (`TransportBreakGlass`:
 * inventory from an in-memory store the reconciler itself fills, the transport built from the rollout's
 * spec) over a real transport that writes real files (local, or exec running a shell per node).
 * The rollout is driven on the fake clock to the phase, the API server is made unreachable, the clock is
 * moved to the threshold, and from there the real time is measured: one reconcile pass (which starts the
 * actuator's attempt in the background and returns), then polling the disk until every stop file
 * (`<node root>/<stop directory>/auto-<revision>`) is there, then waiting for the attempt to end
 * (`settled()`), and one more pass, which reads the attempt's outcome into the status.
 *
 * What this relies on, for whoever changes how the actuator is called:
 *   - `RolloutReconciler` deps `breakGlass` and `inventory` (both the actuator), `reconcile('default/r')`;
 *   - `TransportBreakGlass.issue` starting the fan-out in the background (`inProgress`) and returning the
 *     outcome on a later call, `settled()` waiting for the attempt, `close()` cancelling what is left;
 *   - the world of testkit/operator/rollout/world.ts (`world`, `drive`; its `make` is replaced here to
 *     pass the real actuator) and `FakeCluster.reachable`;
 *   - the status fields `clusters[0].reachable`, `unreachableSince`, `phase`, `nodesUpdated`, `breakGlass`
 *     (`issuedAt`, `inProgress`, `nodesPending`, `message`);
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
import { selectTargets, transportFromSpec } from '../../operator/src/breakglass/breakglass.js';
import { parseStopFile, stopFileName } from '../../operator/src/breakglass/stopfile.js';
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
  /**
   * Inventoried nodes the actuator targets at the trigger (labelled with the revision, or with a pod of it
   * in the inventory's last pod list): the stop files expected.
   */
  nodesInventoried: number;
  /** Nodes the candidate's agents actually ran on at the trigger (a subset of the inventoried ones). */
  nodesRunningCandidate: number;
  /** Real time from the trigger to the last expected stop file found on disk. */
  triggerToAllStoppedMs: number;
  /** Real time of the reconcile pass at the trigger (it starts the fan-out and returns). */
  passMs: number;
  /** Whether the status said the fan-out was still under way after that pass. */
  inProgressAfterPass: boolean;
  /** Real time from the trigger to the end of the actuator's attempt (`settled()`: outcomes in, transport closed). */
  attemptEndMs: number;
  /** `breakGlass.nodesPending` after the pass that read the outcome (0: every inventoried node confirmed). */
  nodesPendingAfter: number;
  /** Expected stop files found (equals nodesInventoried unless the deadline was hit). */
  filesOnDisk: number;
  /** Files found that name the revision being stopped. */
  filesNamingRevision: number;
  /** Whether every node running the candidate had its stop file. */
  allRunningStopped: boolean;
  /** The rollout's and the cluster's phase after the pass that read the outcome. */
  rolloutPhaseAfter: string;
  clusterPhaseAfter: string;
  /** The cluster's break-glass status message after the pass that read the outcome. */
  statusMessage: string;
}

const CLUSTER = 'a';

/** Drives a rollout to `opts.phase`, cuts the API server, and measures the break-glass (see the module comment). */
export async function measurePhase(opts: PhaseOptions): Promise<PhaseFigures> {
  const threshold = opts.unreachableAfterSeconds ?? 60;
  const rootDir = await mkdtemp(join(tmpdir(), `tro-bench-phase-${opts.transport}-`));
  let actuator: TransportBreakGlass | undefined;
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
    const bg = new TransportBreakGlass(
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
    actuator = bg;
    const make = (): RolloutReconciler =>
      new RolloutReconciler({
        rollouts: w.store,
        clusters: w.factory,
        gates: w.gates,
        status: w.store,
        events: w.events,
        clock: w.clock,
        options: { pollMs: 1000 },
        breakGlass: bg,
        inventory: bg,
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
    // The nodes the actuator targets, chosen as it chooses them: labelled with the revision, or with a pod of it seen there.
    const expected = selectTargets(inv?.nodes ?? [], { revision, scope: 'revision' }).map((n) => n.name);
    const running = w.cluster(CLUSTER).nodesRunning(revision, false);
    // The stop directory as the actuator's transport will have it (the spec's, else the default).
    const probe = await transportFromSpec(w.store.current().spec.breakGlass.transport!);
    await probe.close();
    const file = stopFileName('auto', revision);
    const pathOf = (node: string) => stopFileOnDisk(rootDir, node, probe.stopDirectory, file);

    const t0 = performance.now();
    await make().reconcile(`default/r`);
    const passMs = performance.now() - t0;
    const inProgressAfterPass = cluster(w.store.current())?.breakGlass?.inProgress === true;
    const pending = new Set(expected);
    const deadline = t0 + (opts.deadlineMs ?? 120_000);
    while (pending.size > 0 && performance.now() < deadline) {
      const found = await Promise.all([...pending].map(async (n) => [n, await exists(pathOf(n))] as const));
      for (const [n, ok] of found) if (ok) pending.delete(n);
      if (pending.size > 0) await new Promise((r) => setTimeout(r, 2));
    }
    const triggerToAllStoppedMs = performance.now() - t0;
    await bg.settled();
    const attemptEndMs = performance.now() - t0;
    // The attempt's outcome reaches the status on the next pass (the reconciler requeues after 1 s).
    await w.clock.advance(1000);
    await make().reconcile(`default/r`);

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
      inProgressAfterPass,
      attemptEndMs: Math.round(attemptEndMs),
      nodesPendingAfter: cluster(after)?.breakGlass?.nodesPending ?? 0,
      filesOnDisk: written.length,
      filesNamingRevision: naming.filter(Boolean).length,
      allRunningStopped: running.every((n) => !pending.has(n) && expected.includes(n)),
      rolloutPhaseAfter: after.status?.phase ?? '',
      clusterPhaseAfter: cluster(after)?.phase ?? '',
      statusMessage: cluster(after)?.breakGlass?.message ?? '',
    };
  } finally {
    // Cancels an attempt still under way (a round that hit its deadline) before its files are removed.
    await actuator?.close();
    await rm(rootDir, { recursive: true, force: true });
  }
}
