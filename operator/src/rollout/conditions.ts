/**
 * Condition types, reasons (PascalCase, in one place) and the helper that keeps lastTransitionTime
 * when a condition's status does not change (as apimachinery's SetStatusCondition does).
 */
import type { Condition } from '../api/types.generated.js';

/** Condition types the rollout reports. `kubectl wait --for=condition=Ready` waits for success. */
export const CONDITION = {
  Ready: 'Ready',
  Progressing: 'Progressing',
  Paused: 'Paused',
  Degraded: 'Degraded',
  CredentialsInvalid: 'CredentialsInvalid',
  /** A target is unreachable past unreachableAfterSeconds with our revision on it and no confirmed stop. */
  BreakGlassNeeded: 'BreakGlassNeeded',
  /** Stop files of ours are in place on some target (issued, not cleared). */
  AgentsStopped: 'AgentsStopped',
  /** The break-glass transport passed its check at preflight on every cluster it was checked on (ssh). */
  BreakGlassReady: 'BreakGlassReady',
} as const;

/** Every reason the operator writes into conditions, events and history. */
export const REASON = {
  Succeeded: 'Succeeded',
  Progressing: 'Progressing',
  Planning: 'Planning',
  ClusterUnavailable: 'ClusterUnavailable',
  ClusterUnreachable: 'ClusterUnreachable',
  CredentialsInvalid: 'CredentialsInvalid',
  CredentialsAccepted: 'CredentialsAccepted',
  PausedByUser: 'PausedByUser',
  Resumed: 'Resumed',
  GateFailed: 'GateFailed',
  GateNoData: 'GateNoData',
  GatePassed: 'GatePassed',
  ProjectionExceedsSLO: 'ProjectionExceedsSLO',
  ProgressDeadlineExceeded: 'ProgressDeadlineExceeded',
  PreflightFailed: 'PreflightFailed',
  RollingBack: 'RollingBack',
  RolledBack: 'RolledBack',
  Aborted: 'Aborted',
  Retried: 'Retried',
  Promoted: 'Promoted',
  RevisionStarted: 'RevisionStarted',
  ClusterStarted: 'ClusterStarted',
  StepStarted: 'StepStarted',
  StepBaking: 'StepBaking',
  ClusterSucceeded: 'ClusterSucceeded',
  ClusterRollingBack: 'ClusterRollingBack',
  ClusterRolledBack: 'ClusterRolledBack',
  BreakGlass: 'BreakGlass',
  InventoryChanged: 'InventoryChanged',
  NoStopFiles: 'NoStopFiles',
  BreakGlassCheckFailed: 'BreakGlassCheckFailed',
  NotNeeded: 'NotNeeded',
  Healthy: 'Healthy',
  Failed: 'Failed',
} as const;

/**
 * Sets a condition in place: lastTransitionTime changes only when the status changes; reason, message
 * and observedGeneration always follow the latest pass.
 */
export function setCondition(
  conditions: Condition[],
  c: { type: string; status: Condition['status']; reason: string; message: string; observedGeneration?: number },
  now: Date,
): void {
  const existing = conditions.find((x) => x.type === c.type);
  if (!existing) {
    conditions.push({ ...c, lastTransitionTime: now.toISOString() });
    return;
  }
  if (existing.status !== c.status) existing.lastTransitionTime = now.toISOString();
  existing.status = c.status;
  existing.reason = c.reason;
  existing.message = c.message;
  if (c.observedGeneration !== undefined) existing.observedGeneration = c.observedGeneration;
}

/** Marks a condition True (Flux's conditions.MarkTrue): see setCondition. */
export function markTrue(conditions: Condition[], type: string, reason: string, message: string, now: Date, observedGeneration?: number): void {
  setCondition(conditions, { type, status: 'True', reason, message, ...(observedGeneration === undefined ? {} : { observedGeneration }) }, now);
}

/** Marks a condition False (Flux's conditions.MarkFalse): see setCondition. */
export function markFalse(conditions: Condition[], type: string, reason: string, message: string, now: Date, observedGeneration?: number): void {
  setCondition(conditions, { type, status: 'False', reason, message, ...(observedGeneration === undefined ? {} : { observedGeneration }) }, now);
}
