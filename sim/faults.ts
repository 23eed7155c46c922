/**
 * The overlapping-fault scenarios: a second fault injected into the operator scenarios at a chosen state
 * of the rollout, with what each one must show measured into {@link FaultReport}.
 *
 * - `rollback-then-apiserver-dies`: the bad revision on a canary whose API server degrades but survives
 *   (its memory limit raised four-fold, so the gates, not an OOM, start the rollback); once the
 *   rollback has relabelled its first batch, the API server is killed for five minutes. Break-glass must
 *   stop the agents still on the bad revision during the rollback, and the recovery clear every stop file.
 * - `rollback-then-apiserver-dies-while-clearing`: the same, and the API server is killed a second time
 *   while the rollback clears the stop files.
 * - `operator-restart-mid-rollback`: the same canary; the operator process restarts while the rollback
 *   relabels (a new reconciler, queue and actuator on the same rollout status, inventories and ledger).
 * - `operator-restart-during-breakglass`: the API server killed during the rollback as above, and the
 *   operator restarted while the break-glass attempt is under way (the attempt in memory is lost).
 * - `operator-restart-mid-step`: the same canary; the operator restarts while the canary's first step
 *   relabels forward (before the fix of the gates' warm-up, this paused the rollout with the candidate
 *   running: the step's first evaluation NoData, then the new process's first scrape NoData again).
 * - `slow-pod-start-5000-nodes`: one cluster of 5,000 nodes, all Ready, whose agent pods start slowly
 *   (log-normal, median 20 s, p99 3 minutes), and a good revision: what the step deadline (600 s) and the
 *   relabel pace (5/s) make of it.
 *
 * The faulted cluster is the fleet's first (the largest: the canary of the default strategy).
 */
import type { ClusterStatus } from '../operator/src/api/types.generated.js';
import type { ClusterShape } from './fleet.js';
import type { Model } from './model/calibration.js';
import type { OperatorHandle, World } from './world.js';

/** The fault scenarios, in the order the replay runs them. */
export const FAULT_SCENARIOS = [
  'rollback-then-apiserver-dies',
  'rollback-then-apiserver-dies-while-clearing',
  'operator-restart-mid-rollback',
  'operator-restart-during-breakglass',
  'operator-restart-mid-step',
  'slow-pod-start-5000-nodes',
] as const;
/** A fault scenario's name. */
export type FaultScenarioName = (typeof FAULT_SCENARIOS)[number];

/** Whether `name` is a fault scenario. */
export const isFaultScenario = (name: string): name is FaultScenarioName => (FAULT_SCENARIOS as readonly string[]).includes(name);

/** Virtual-time limits (seconds after the revision is introduced), full and quick. */
export const FAULT_HORIZONS: Record<'full' | 'quick', Record<FaultScenarioName, number>> = {
  full: {
    'rollback-then-apiserver-dies': 3 * 3600,
    'rollback-then-apiserver-dies-while-clearing': 3 * 3600,
    'operator-restart-mid-rollback': 3 * 3600,
    'operator-restart-during-breakglass': 3 * 3600,
    'operator-restart-mid-step': 3 * 3600,
    'slow-pod-start-5000-nodes': 24 * 3600,
  },
  quick: {
    'rollback-then-apiserver-dies': 2 * 3600,
    'rollback-then-apiserver-dies-while-clearing': 2 * 3600,
    'operator-restart-mid-rollback': 2 * 3600,
    'operator-restart-during-breakglass': 2 * 3600,
    'operator-restart-mid-step': 2 * 3600,
    'slow-pod-start-5000-nodes': 12 * 3600,
  },
};

/** How long a killed API server stays down (past unreachableAfterSeconds, 60 s by default). */
export const KILL_SECONDS = 300;

/** Nodes of the slow-start cluster. */
export const SLOW_START_NODES = 5000;

/** One fault injected: when (seconds after the revision was introduced), what, and the rollout's state then. */
export interface Injection {
  t: number;
  what: string;
  rolloutPhase: string;
  clusterPhase: string;
  clusterMessage: string;
}

/** What a fault scenario measured, besides the replay's own figures. */
export interface FaultReport {
  /** The faulted cluster. */
  cluster: string;
  /** The faults injected, in order (empty: the state they wait for never came). */
  injected: Injection[];
  /** Operator processes started (1 + restarts). */
  operatorProcesses: number;
  /** Whether break-glass was issued on the cluster while the rollout was RollingBack. */
  breakGlassDuringRollback: boolean;
  /** Ready nodes the DaemonSets placed the bad revision on when its API server was first killed (null: never killed). */
  nodesOnBadAtKill: number | null;
  /** Of those, the nodes that got a stop file. */
  ofThoseStopped: number | null;
  /** Bad agents running unstopped on the cluster when its API server answered again (null: never killed or never back). */
  badAgentsWhenBack: number | null;
  /** Nodes of the cluster on which a bad agent ever ran, and of those, the nodes that ever got a stop file. */
  nodesRanBad: number;
  ofThoseEverStopped: number;
  /** Nodes on which a stop file was ever written, and those (fleet-wide) still holding one at the end. */
  nodesEverStopped: number;
  stopFilesAtEnd: number;
  /** Relabels to the candidate that landed after a restart (a step redone by the new process). */
  forwardRelabelsAfterRestart: number;
  /** Nodes relabelled to the candidate more than once. */
  nodesRelabelledForwardTwice: number;
  /** Step starts (StepStarted events) recorded more than once for the same cluster and step. */
  stepsRepeated: number;
  /** The steps begun, in order (cluster: step). */
  steps: string[];
  /** A step that missed its progress deadline: when (seconds after the revision was introduced) and the message. */
  deadline: { t: number; message: string } | null;
}

/** A fault scenario: its fleet and model (if its own), which revision, and the faults it arms. */
export interface FaultPlan {
  /** A good revision (true) or the incident's (false). */
  good: boolean;
  fleet?: (fleet: ClusterShape[]) => ClusterShape[];
  model?: (model: Model) => Model;
  /** Arms the faults on the running world; returns what reports them at the end. */
  arm: (w: World, op: OperatorHandle, t0: number) => () => FaultReport;
}

/** A canary that degrades but survives the bad revision: kube-apiserver memory limits four-fold. */
function surviving(model: Model): Model {
  const a = model.apiserver;
  return { ...model, apiserver: { ...a, memoryLimitGiBByNodes: a.memoryLimitGiBByNodes.map(([n, gib]) => [n, gib * 4] as [number, number]) } };
}

/** Which faults one scenario injects. */
interface Faults {
  /** Kill the API server once the rollback has relabelled its first batch. */
  killDuringRollback?: boolean;
  /** Kill it again while the rollback clears the stop files. */
  killWhileClearing?: boolean;
  /** Restart the operator once the rollback has relabelled its first batch. */
  restartDuringRollback?: boolean;
  /** Restart the operator while a break-glass attempt is under way. */
  restartDuringBreakGlass?: boolean;
  /** Restart the operator while the first step relabels forward. */
  restartDuringFirstStep?: boolean;
}

/** Arms `f` on the fleet's first cluster and measures the outcome. */
function armFaults(f: Faults): FaultPlan['arm'] {
  return (w, op, t0) => {
    const name = [...w.clusters.keys()][0]!;
    const cluster = w.clusters.get(name)!;
    const injected: Injection[] = [];
    const status = (): ClusterStatus | undefined => op.store.current().status?.clusters?.find((c) => c.name === name);
    const note = (what: string): void => {
      const c = status();
      injected.push({
        t: Math.round((w.clock.nowMs() - t0) / 1000),
        what,
        rolloutPhase: op.store.current().status?.phase ?? 'Pending',
        clusterPhase: c?.phase ?? 'Pending',
        clusterMessage: (c?.message ?? '').slice(0, 200),
      });
    };
    // The rollback has begun on the cluster and still has nodes to relabel.
    const relabellingBack = (): boolean => {
      const c = status();
      return op.store.current().status?.phase === 'RollingBack' && c?.phase === 'RollingBack' && (c.nodesUpdated ?? 0) > 0;
    };
    let onBadAtKill: number[] | undefined;
    let badWhenBack: number | null = null;
    const kill = (what: string): void => {
      note(what);
      if (onBadAtKill === undefined) {
        onBadAtKill = [];
        // Ready nodes only: a NotReady node runs no agent, and its sshd does not answer a stop file either.
        for (let i = 0; i < cluster.size; i++) if (cluster.nodeReady(i) && cluster.agentOf(i).target === candidateOf(op)) onBadAtKill.push(i);
      }
      w.crash(name, KILL_SECONDS);
      w.when(
        () => cluster.api.up,
        () => {
          badWhenBack ??= cluster.activeByBehaviour('list-everything');
        },
      );
    };
    let restartedAt: number | undefined;
    const restart = (what: string): void => {
      note(what);
      restartedAt ??= w.clock.nowMs();
      op.restart();
    };
    if (f.killDuringRollback) w.when(relabellingBack, () => kill('API server killed while the rollback relabels'));
    if (f.restartDuringRollback) w.when(relabellingBack, () => restart('operator restarted while the rollback relabels'));
    if (f.restartDuringFirstStep) {
      w.when(
        () => op.store.current().status?.phase === 'Progressing' && /^step 1: labelled/.test(status()?.message ?? ''),
        () => restart('operator restarted while the first step relabels'),
        100,
      );
    }
    if (f.killWhileClearing) {
      w.when(
        () => injected.length > 0 && status()?.phase === 'RollingBack' && (status()?.message ?? '').includes('clearing the stop files'),
        () => kill('API server killed again while the rollback clears the stop files'),
        100,
      );
    }
    if (f.restartDuringBreakGlass) {
      w.when(
        () => injected.length > 0 && status()?.breakGlass?.inProgress === true,
        () => restart('operator restarted while break-glass writes the stop files'),
        100,
      );
    }
    let breakGlassDuringRollback = false;
    w.when(
      () => op.store.current().status?.phase === 'RollingBack' && status()?.breakGlass?.issuedAt !== undefined,
      () => {
        breakGlassDuringRollback = true;
      },
      100,
    );
    return () => {
      const rev = candidateOf(op);
      const forward = cluster.labelLog.filter((e) => e.revision === rev);
      const perNode = new Map<number, number>();
      for (const e of forward) perNode.set(e.node, (perNode.get(e.node) ?? 0) + 1);
      let everStopped = 0;
      let ranBad = 0;
      let ranBadStopped = 0;
      for (let i = 0; i < cluster.size; i++) {
        if (cluster.wasStopped(i)) everStopped++;
        if (!cluster.exposedTo('list-everything', i)) continue;
        ranBad++;
        if (cluster.wasStopped(i)) ranBadStopped++;
      }
      let stopFilesAtEnd = 0;
      for (const c of w.clusters.values()) stopFilesAtEnd += c.nodesWithStopFiles();
      const steps = stepsBegun(w);
      return {
        cluster: name,
        injected,
        operatorProcesses: op.generation(),
        breakGlassDuringRollback,
        nodesOnBadAtKill: onBadAtKill?.length ?? null,
        ofThoseStopped: onBadAtKill ? onBadAtKill.filter((i) => cluster.wasStopped(i)).length : null,
        badAgentsWhenBack: badWhenBack,
        nodesRanBad: ranBad,
        ofThoseEverStopped: ranBadStopped,
        nodesEverStopped: everStopped,
        stopFilesAtEnd,
        forwardRelabelsAfterRestart: restartedAt === undefined ? 0 : forward.filter((e) => e.t >= restartedAt!).length,
        nodesRelabelledForwardTwice: [...perNode.values()].filter((n) => n > 1).length,
        stepsRepeated: steps.length - new Set(steps).size,
        steps,
        deadline: deadlineMissed(w, t0),
      };
    };
  };
}

/** The candidate revision's name (status.revision; the rollout's before its first pass). */
function candidateOf(op: OperatorHandle): string {
  return op.store.current().status?.revision ?? '';
}

/** The StepStarted events, as `cluster: step n/m`. */
function stepsBegun(w: World): string[] {
  return w.events.filter((e) => e.reason === 'StepStarted').map((e) => e.message.replace(/ \(.*$/, ''));
}

/** The first step that missed its progress deadline (the rollback it started says so), or null. */
function deadlineMissed(w: World, t0: number): { t: number; message: string } | null {
  const e = w.events.find((x) => / agents ready(, none more for| after) \d+s/.test(x.message));
  return e ? { t: Math.round(w.start / 1000 + e.t - t0 / 1000), message: e.message.slice(0, 300) } : null;
}

/**
 * Slow agent start-up on 5,000 Ready nodes: log-normal with a median of 20 s and a p99 of 3 minutes
 * (sigma ln(9)/2.326): slow image pulls on busy nodes.
 */
function slowStart(model: Model): Model {
  return { ...model, cluster: { ...model.cluster, notReadyFraction: 0, podStartMedianSeconds: 20, podStartSigma: Math.log(9) / 2.326 } };
}

/** Each fault scenario's plan. */
export const FAULT_PLANS: Record<FaultScenarioName, FaultPlan> = {
  'rollback-then-apiserver-dies': { good: false, model: surviving, arm: armFaults({ killDuringRollback: true }) },
  'rollback-then-apiserver-dies-while-clearing': { good: false, model: surviving, arm: armFaults({ killDuringRollback: true, killWhileClearing: true }) },
  'operator-restart-mid-rollback': { good: false, model: surviving, arm: armFaults({ restartDuringRollback: true }) },
  'operator-restart-during-breakglass': { good: false, model: surviving, arm: armFaults({ killDuringRollback: true, restartDuringBreakGlass: true }) },
  'operator-restart-mid-step': { good: false, model: surviving, arm: armFaults({ restartDuringFirstStep: true }) },
  'slow-pod-start-5000-nodes': {
    good: true,
    fleet: () => [{ name: 'c000', nodes: SLOW_START_NODES }],
    model: slowStart,
    arm: armFaults({}),
  },
};
