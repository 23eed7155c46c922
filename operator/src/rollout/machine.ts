/**
 * The rollout's life as data: the phases of a rollout and of each cluster, the events that move them, and
 * what each phase allows. The reconciler turns observations into these events and applies them through
 * `transition()`, which refuses any change that is not an edge of the table, so the table is what runs,
 * not a description beside it. docs/concepts.md's state diagram is generated from it.
 */
import type { ClusterStatus, TelemetryRolloutStatus } from '../api/types.generated.js';
import { CLUSTER_MACHINE } from './clustertable.js';
import { ROLLOUT_MACHINE } from './rollouttable.js';

// The tables are data in files of their own; every reader takes them from here.
export { CLUSTER_MACHINE, ROLLOUT_MACHINE };

/** A rollout's phase (the CRD's enum). */
export type RolloutPhase = NonNullable<TelemetryRolloutStatus['phase']>;
/** A cluster's phase (the CRD's enum). */
export type ClusterPhase = NonNullable<ClusterStatus['phase']>;

/** Every rollout phase, in the order the diagram lists them. */
export const ROLLOUT_PHASES: readonly RolloutPhase[] = ['Pending', 'Progressing', 'Paused', 'BreakGlass', 'RollingBack', 'RolledBack', 'Succeeded', 'Failed'];
/** Every cluster phase. */
export const CLUSTER_PHASES: readonly ClusterPhase[] = [
  'Pending',
  'Preflight',
  'Progressing',
  'Baking',
  'Paused',
  'BreakGlass',
  'RollingBack',
  'RolledBack',
  'Succeeded',
  'Failed',
];

/**
 * Events that move a rollout. Controls are a person's requests (spec.paused, the abort/retry/promote
 * annotations, a spec edit); the rest are the reconciler's observations.
 */
export const ROLLOUT_EVENTS = [
  'SpecChanged',
  'Planned',
  'Pause',
  'Resume',
  'Abort',
  'Retry',
  'Promote',
  'GateFailed',
  'GateNoData',
  'ProjectionExceedsSLO',
  'ProgressDeadlineExceeded',
  'PreflightRefused',
  'PreflightRefusedMidRollout',
  'Unreachable',
  'CredentialsInvalid',
  'CredentialsAccepted',
  'BreakGlassIssued',
  'Reachable',
  'AllClustersSucceeded',
  'AllClustersRolledBack',
] as const;
/** A rollout event. */
export type RolloutEvent = (typeof ROLLOUT_EVENTS)[number];

/** The events that are a person's requests; with break-glass, the only ones that may leave a terminal phase. */
export const CONTROL_EVENTS: ReadonlySet<RolloutEvent> = new Set<RolloutEvent>(['SpecChanged', 'Pause', 'Resume', 'Abort', 'Retry', 'Promote']);

/**
 * The one observation that may leave a terminal phase: stopping the candidate's agents on a target whose
 * API server is gone. A final verdict on the rollout does not make the agents it left harmless.
 */
export const SAFETY_EVENTS: ReadonlySet<RolloutEvent> = new Set<RolloutEvent>(['BreakGlassIssued']);

/** Events that move one cluster. */
export const CLUSTER_EVENTS = [
  'Start',
  'StepBegan',
  'PreflightRefused',
  'StepReady',
  'ProgressDeadlineExceeded',
  'LastStepBaked',
  'Halt',
  'Resume',
  'ResumeBake',
  'ResumePreflight',
  'BreakGlassIssued',
  'RollBack',
  'RolledBack',
  'Reset',
] as const;
/** A cluster event. */
export type ClusterEvent = (typeof CLUSTER_EVENTS)[number];

/**
 * A gate breach's policy (spec.gates.onFailure / onNoData): the same event leads to RollingBack or
 * Paused, so the edge names both targets and the caller names the policy.
 */
export type BreachPolicy = 'Rollback' | 'Pause';

/** An edge's target: one phase, or one per breach policy. */
export type Target<P> = P | { readonly Rollback: P; readonly Pause: P };

/** One edge: where the event leads and what the reconciler does on it (names, for the reader and the diagram). */
export interface Edge<P> {
  readonly to: Target<P>;
  readonly actions?: readonly string[];
}

/**
 * What a rollout phase allows, so a property can be asserted over every phase. The values are the
 * behaviour that runs; a gap shows as a row (for example break-glass not armed while rolling back).
 */
export interface RolloutCapabilities {
  /** Targets' API servers are probed and reachability recorded. */
  readonly probesReachability: boolean;
  /** A target running the candidate that stays unreachable past unreachableAfterSeconds gets break-glass. */
  readonly breakGlassArmed: boolean;
  /**
   * Targets are probed and an outage handled as `spec.breakGlass.afterSuccess` says (Manual: reported;
   * Auto: that cluster's agents stopped, no halt, no rollback; Off: not probed). The phase after
   * success, where no older revision is left to go back to.
   */
  readonly afterSuccessPolicy: boolean;
  /** Gates are evaluated on the clusters running the candidate. */
  readonly gatesEvaluated: boolean;
  /** A gate breach at the failure limit halts the fleet (pause or rollback). */
  readonly gatesAct: boolean;
  /** Nodes are relabelled towards the candidate. */
  readonly relabelsForward: boolean;
  /** Nodes are relabelled back to the stable revision. */
  readonly relabelsBack: boolean;
  /** An agent of the candidate revision may be running on some target. */
  readonly candidateMayRun: boolean;
  /** Final: only a person's control leaves it. */
  readonly terminal: boolean;
  /** The Ready, Progressing and Paused conditions' status in this phase. */
  readonly conditions: { readonly Ready: boolean; readonly Progressing: boolean; readonly Paused: boolean };
}

/**
 * A rollout phase's row: what it allows, its edges, and the events it ignores. Every event is named in
 * exactly one of `on` and `ignores` (a test checks), so a new event needs a decision in every phase.
 */
export interface RolloutState {
  readonly capabilities: RolloutCapabilities;
  readonly on: Partial<Record<RolloutEvent, Edge<RolloutPhase>>>;
  readonly ignores: readonly RolloutEvent[];
}

/** A cluster phase's row: whether it is moving, whether rollback visits it, its edges and what it ignores. */
export interface ClusterState {
  /** The cluster is moving forward (counts against the stage's maxConcurrentClusters). */
  readonly active: boolean;
  /** The cluster was started (has or had objects of the candidate): rollback visits it. */
  readonly touched: boolean;
  readonly on: Partial<Record<ClusterEvent, Edge<ClusterPhase>>>;
  /** Events this phase ignores; with `on`, every event is named exactly once (a test checks). */
  readonly ignores: readonly ClusterEvent[];
}

/** A change that is not an edge of the table: a defect in the reconciler, never a user error. */
export class IllegalTransitionError extends Error {
  /** Which machine refused. */
  readonly machine: 'rollout' | 'cluster';
  /** The phase the change was asked from. */
  readonly from: string;
  /** The event that has no edge there. */
  readonly event: string;

  constructor(machine: 'rollout' | 'cluster', from: string, event: string) {
    super(`illegal ${machine} transition: ${event} in phase ${from}`);
    this.name = 'IllegalTransitionError';
    this.machine = machine;
    this.from = from;
    this.event = event;
  }
}

function resolve<P extends string>(to: Target<P>, policy: BreachPolicy | undefined, machine: 'rollout' | 'cluster', from: string, event: string): P {
  if (typeof to === 'string') return to;
  if (!policy) throw new IllegalTransitionError(machine, from, `${event} (no breach policy given)`);
  return to[policy];
}

/** The rollout phase `event` leads to from `from`, or undefined when the phase ignores it. */
export function nextRolloutPhase(from: RolloutPhase, event: RolloutEvent, policy?: BreachPolicy): RolloutPhase | undefined {
  const edge = ROLLOUT_MACHINE[from].on[event];
  return edge ? resolve(edge.to, policy, 'rollout', from, event) : undefined;
}

/** The cluster phase `event` leads to from `from`, or undefined when the phase ignores it. */
export function nextClusterPhase(from: ClusterPhase, event: ClusterEvent): ClusterPhase | undefined {
  const edge = CLUSTER_MACHINE[from].on[event];
  return edge ? resolve(edge.to, undefined, 'cluster', from, event) : undefined;
}

/**
 * The one way a rollout's phase changes: returns the new phase, or throws IllegalTransitionError when
 * the table has no such edge. A status without a phase is Pending.
 */
export function applyRolloutEvent(status: TelemetryRolloutStatus, event: RolloutEvent, policy?: BreachPolicy): RolloutPhase {
  const from = status.phase ?? 'Pending';
  const to = nextRolloutPhase(from, event, policy);
  if (!to) throw new IllegalTransitionError('rollout', from, event);
  status.phase = to;
  return to;
}

/** The one way a cluster's phase changes (see applyRolloutEvent). A cluster without a phase is Pending. */
export function applyClusterEvent(cluster: ClusterStatus, event: ClusterEvent): ClusterPhase {
  const from = cluster.phase ?? 'Pending';
  const to = nextClusterPhase(from, event);
  if (!to) throw new IllegalTransitionError('cluster', from, event);
  cluster.phase = to;
  return to;
}

/** The capabilities of a rollout phase (a status without one is Pending). */
export function rolloutCapabilities(phase: RolloutPhase | undefined): RolloutCapabilities {
  return ROLLOUT_MACHINE[phase ?? 'Pending'].capabilities;
}

/**
 * The event that resumes a halted cluster where it stopped: a bake that had begun goes on, a step that
 * had begun waits for its agents again, and a cluster halted before its first step runs its preflight
 * (its objects may not exist yet).
 */
export function resumeEvent(c: ClusterStatus): ClusterEvent {
  if (c.bakeStartedAt) return 'ResumeBake';
  return c.stepStartedAt ? 'Resume' : 'ResumePreflight';
}

/** Whether a cluster in this phase is moving forward. */
export const isActive = (phase: ClusterPhase | undefined): boolean => CLUSTER_MACHINE[phase ?? 'Pending'].active;
/** Whether rollback visits a cluster in this phase. */
export const isTouched = (phase: ClusterPhase | undefined): boolean => CLUSTER_MACHINE[phase ?? 'Pending'].touched;
