/**
 * The rollout's phase table: for each phase, what it allows (capabilities) and its edges; every event
 * is an edge or explicitly ignored. The types and the one function that applies it are in machine.ts.
 */
import type { Edge, RolloutCapabilities, RolloutPhase, RolloutState } from './machine.js';

const caps = (c: Partial<Omit<RolloutCapabilities, 'conditions'>> & { conditions?: Partial<RolloutCapabilities['conditions']> }): RolloutCapabilities => ({
  probesReachability: false,
  breakGlassArmed: false,
  afterSuccessPolicy: false,
  gatesEvaluated: false,
  gatesAct: false,
  relabelsForward: false,
  relabelsBack: false,
  candidateMayRun: true,
  terminal: false,
  ...c,
  conditions: { Ready: false, Progressing: false, Paused: false, ...c.conditions },
});

/** A spec edit (a new revision) restarts from Pending in every phase. */
const specChanged: Edge<RolloutPhase> = { to: 'Pending', actions: ['supersedeRevision'] };
/** Promote ends the bake of the baking clusters; the rollout's phase stays. */
const promote = (p: RolloutPhase): Edge<RolloutPhase> => ({ to: p, actions: ['endBake'] });
const rollback = (action: string): Edge<RolloutPhase> => ({ to: 'RollingBack', actions: [action] });

/** The rollout's phase machine. */
export const ROLLOUT_MACHINE: Readonly<Record<RolloutPhase, RolloutState>> = {
  Pending: {
    capabilities: caps({ candidateMayRun: false, conditions: { Progressing: true } }),
    on: {
      SpecChanged: specChanged,
      Planned: { to: 'Progressing', actions: ['assignStages'] },
      Abort: rollback('haltFleet'),
      Promote: promote('Pending'),
    },
    ignores: [
      'Pause',
      'Resume',
      'Retry',
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
    ],
  },
  Progressing: {
    capabilities: caps({
      probesReachability: true,
      breakGlassArmed: true,
      gatesEvaluated: true,
      gatesAct: true,
      relabelsForward: true,
      conditions: { Progressing: true },
    }),
    on: {
      SpecChanged: specChanged,
      // A retried rollout that never had a plan (aborted while waiting for its targets) plans now.
      Planned: { to: 'Progressing', actions: ['assignStages'] },
      Pause: { to: 'Paused' },
      Abort: rollback('haltFleet'),
      Promote: promote('Progressing'),
      GateFailed: { to: { Rollback: 'RollingBack', Pause: 'Paused' }, actions: ['haltFleet'] },
      GateNoData: { to: { Rollback: 'RollingBack', Pause: 'Paused' }, actions: ['haltFleet'] },
      ProjectionExceedsSLO: { to: 'Paused', actions: ['haltFleet'] },
      ProgressDeadlineExceeded: rollback('haltFleet'),
      PreflightRefused: { to: 'Failed' },
      // A later cluster refused while earlier ones run the candidate: they are rolled back.
      PreflightRefusedMidRollout: rollback('haltFleet'),
      Unreachable: { to: 'Progressing', actions: ['recordUnreachable'] },
      CredentialsInvalid: { to: 'Progressing', actions: ['holdCluster'] },
      CredentialsAccepted: { to: 'Progressing', actions: ['resumeCluster'] },
      BreakGlassIssued: { to: 'BreakGlass', actions: ['haltFleet', 'writeStopFiles'] },
      Reachable: rollback('rollBackBreakGlassCluster'),
      AllClustersSucceeded: { to: 'Succeeded', actions: ['markStable', 'deleteOldRevisions'] },
    },
    ignores: ['Resume', 'Retry', 'AllClustersRolledBack'],
  },
  Paused: {
    capabilities: caps({ probesReachability: true, breakGlassArmed: true, gatesEvaluated: true, conditions: { Paused: true } }),
    on: {
      SpecChanged: specChanged,
      Resume: { to: 'Progressing' },
      Retry: { to: 'Progressing', actions: ['resetFailureCounts', 'resumeClusters'] },
      Abort: rollback('haltFleet'),
      Promote: promote('Paused'),
      Unreachable: { to: 'Paused', actions: ['recordUnreachable'] },
      CredentialsInvalid: { to: 'Paused', actions: ['holdCluster'] },
      CredentialsAccepted: { to: 'Paused', actions: ['resumeCluster'] },
      BreakGlassIssued: { to: 'BreakGlass', actions: ['haltFleet', 'writeStopFiles'] },
      Reachable: rollback('rollBackBreakGlassCluster'),
    },
    ignores: [
      'Planned',
      'Pause',
      'GateFailed',
      'GateNoData',
      'ProjectionExceedsSLO',
      'ProgressDeadlineExceeded',
      'PreflightRefused',
      'PreflightRefusedMidRollout',
      'AllClustersSucceeded',
      'AllClustersRolledBack',
    ],
  },
  BreakGlass: {
    capabilities: caps({ probesReachability: true, breakGlassArmed: true }),
    on: {
      SpecChanged: specChanged,
      Abort: rollback('haltFleet'),
      Promote: promote('BreakGlass'),
      Unreachable: { to: 'BreakGlass', actions: ['recordUnreachable'] },
      CredentialsInvalid: { to: 'BreakGlass', actions: ['holdCluster'] },
      CredentialsAccepted: { to: 'BreakGlass', actions: ['resumeCluster'] },
      BreakGlassIssued: { to: 'BreakGlass', actions: ['haltFleet', 'writeStopFiles'] },
      Reachable: rollback('rollBackBreakGlassCluster'),
    },
    ignores: [
      'Planned',
      'Pause',
      'Resume',
      'Retry',
      'GateFailed',
      'GateNoData',
      'ProjectionExceedsSLO',
      'ProgressDeadlineExceeded',
      'PreflightRefused',
      'PreflightRefusedMidRollout',
      'AllClustersSucceeded',
      'AllClustersRolledBack',
    ],
  },
  RollingBack: {
    // Armed: a rollback starts because the candidate hurts a control plane, which may then die; the
    // relabels of the rollback need that API server, the stop files do not.
    capabilities: caps({ probesReachability: true, breakGlassArmed: true, relabelsBack: true, conditions: { Progressing: true } }),
    on: {
      SpecChanged: specChanged,
      Promote: promote('RollingBack'),
      // The rollout stays RollingBack: the stopped cluster waits for its API server while the
      // reachable ones go on being rolled back (a cluster back after its break-glass is simply
      // rolled back in its turn).
      BreakGlassIssued: { to: 'RollingBack', actions: ['writeStopFiles'] },
      Unreachable: { to: 'RollingBack', actions: ['recordUnreachable'] },
      CredentialsInvalid: { to: 'RollingBack', actions: ['holdCluster'] },
      CredentialsAccepted: { to: 'RollingBack', actions: ['resumeCluster'] },
      AllClustersRolledBack: { to: 'RolledBack', actions: ['clearStopFiles'] },
    },
    ignores: [
      'Planned',
      'Pause',
      'Resume',
      'Abort',
      'Retry',
      'GateFailed',
      'GateNoData',
      'ProjectionExceedsSLO',
      'ProgressDeadlineExceeded',
      'PreflightRefused',
      'PreflightRefusedMidRollout',
      'Reachable',
      'AllClustersSucceeded',
    ],
  },
  RolledBack: {
    capabilities: caps({ candidateMayRun: false, terminal: true }),
    on: {
      SpecChanged: specChanged,
      Retry: { to: 'Progressing', actions: ['resetClusters'] },
      Promote: promote('RolledBack'),
    },
    ignores: [
      'Planned',
      'Pause',
      'Resume',
      'Abort',
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
    ],
  },
  Succeeded: {
    // The agents of the revision run everywhere and nothing older is left: an outage is handled by the
    // afterSuccess policy, not by the edges (Unreachable is recorded; BreakGlassIssued and Reachable are ignored).
    capabilities: caps({ afterSuccessPolicy: true, terminal: true, conditions: { Ready: true } }),
    on: {
      SpecChanged: specChanged,
      Promote: promote('Succeeded'),
      // Recorded for the afterSuccess policy; the phase stays.
      Unreachable: { to: 'Succeeded', actions: ['recordUnreachable'] },
      // Lifts the stops afterSuccess Auto left in place (the phase stays).
      Retry: { to: 'Succeeded', actions: ['liftStopsAfterSuccess'] },
    },
    ignores: [
      'Planned',
      'Pause',
      'Resume',
      'Abort',
      'GateFailed',
      'GateNoData',
      'ProjectionExceedsSLO',
      'ProgressDeadlineExceeded',
      'PreflightRefused',
      'PreflightRefusedMidRollout',
      'CredentialsInvalid',
      'CredentialsAccepted',
      'BreakGlassIssued',
      'Reachable',
      'AllClustersSucceeded',
      'AllClustersRolledBack',
    ],
  },
  Failed: {
    // Armed: a failed rollout may leave the candidate on clusters, and only a person's retry or
    // abort ends it, which may come after the control plane has gone.
    capabilities: caps({ probesReachability: true, breakGlassArmed: true, terminal: true }),
    on: {
      SpecChanged: specChanged,
      Retry: { to: 'Progressing', actions: ['resetClusters'] },
      Abort: rollback('haltFleet'),
      Promote: promote('Failed'),
      Unreachable: { to: 'Failed', actions: ['recordUnreachable'] },
      CredentialsInvalid: { to: 'Failed', actions: ['holdCluster'] },
      CredentialsAccepted: { to: 'Failed', actions: ['resumeCluster'] },
      BreakGlassIssued: { to: 'BreakGlass', actions: ['haltFleet', 'writeStopFiles'] },
    },
    ignores: [
      'Planned',
      'Pause',
      'Resume',
      'GateFailed',
      'GateNoData',
      'ProjectionExceedsSLO',
      'ProgressDeadlineExceeded',
      'PreflightRefused',
      'PreflightRefusedMidRollout',
      'Reachable',
      'AllClustersSucceeded',
      'AllClustersRolledBack',
    ],
  },
};
