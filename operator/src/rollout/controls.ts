/**
 * A person's controls: spec.paused (pause/resume) and the abort, retry and promote annotations. Each
 * annotation request acts exactly once: its value is remembered in status.handledRequests, and whether
 * it acts in the current phase is the machine's table (an ignored request is still remembered).
 */
import type { ClusterStatus } from '../api/types.generated.js';
import { REASON } from './conditions.js';
import { nextRolloutPhase } from './machine.js';
import type { Pass } from './pass.js';
import { effectiveBakeSeconds } from './plan.js';
import { clearObservations, startRollback } from './rollback.js';

/** Annotation requesting an abort (rolls back). Its value identifies the request; any new value acts once. */
export const ABORT_ANNOTATION = 'telemetry.rollout.dev/abort';
/** Annotation requesting a retry after a failure or a gate pause. */
export const RETRY_ANNOTATION = 'telemetry.rollout.dev/retry';
/** Annotation requesting to skip the rest of the current bake. */
export const PROMOTE_ANNOTATION = 'telemetry.rollout.dev/promote';

/** Applies pause/resume, abort, retry and promote. */
export function handleControls(p: Pass): void {
  const s = p.status;
  const ann = p.rollout.metadata?.annotations ?? {};
  s.handledRequests ??= {};

  const retry = ann[RETRY_ANNOTATION];
  if (retry !== undefined && retry !== s.handledRequests.retry) {
    s.handledRequests.retry = retry;
    if (s.phase === 'RolledBack' || s.phase === 'Failed') {
      // Start the same revision again from the beginning; the plan is kept.
      for (const c of s.clusters ?? []) resetCluster(p, c);
      p.rolloutEvent('Retry');
      delete s.completedAt;
      p.record('Normal', REASON.Retried, `retrying revision ${p.revision} from the first step`);
    } else if (s.phase === 'Succeeded') {
      // After success, a retry is how a person lifts the stops afterSuccess Auto left in place (the
      // cause is understood): they are removed once each API server answers (observe).
      const held = (s.clusters ?? []).filter((c) => c.breakGlass?.issuedAt && !c.breakGlass.clearedAt);
      for (const c of held) if (c.breakGlass) c.breakGlass.clearRequestedAt = p.now.toISOString();
      p.rolloutEvent('Retry');
      p.record(
        'Normal',
        REASON.Retried,
        held.length ? `removing the stop files after success on ${held.map((c) => c.name).join(', ')}` : 'retry: nothing to do after success',
      );
    } else if (s.phase === 'Paused' && s.reason !== REASON.PausedByUser) {
      for (const c of s.clusters ?? []) {
        if (c.lastGate) c.lastGate.consecutiveFailures = 0;
        // After a breach a step's agents are checked again and its bake starts over (a clean bake after
        // the failure); a cluster halted before its first step runs its preflight.
        if (c.phase === 'Paused') p.clusterEvent(c, c.stepStartedAt ? 'Resume' : 'ResumePreflight');
      }
      p.rolloutEvent('Retry');
      p.record('Normal', REASON.Retried, 'retrying after the gate pause; failure counts reset');
    }
  }

  // After the retry: an abort and a retry read in the same pass end rolled back (the safe one wins,
  // whichever came first), not restarted.
  const abort = ann[ABORT_ANNOTATION];
  if (abort !== undefined && abort !== s.handledRequests.abort) {
    s.handledRequests.abort = abort;
    if (nextRolloutPhase(s.phase ?? 'Pending', 'Abort')) startRollback(p, 'Abort', REASON.Aborted, `aborted by request ${JSON.stringify(abort)}`);
  }

  const promote = ann[PROMOTE_ANNOTATION];
  if (promote !== undefined && promote !== s.handledRequests.promote) {
    s.handledRequests.promote = promote;
    p.rolloutEvent('Promote');
    const baking = (s.clusters ?? []).filter((c) => c.phase === 'Baking');
    // Backdating the bake start ends the bake now; a passing gate evaluation is still required.
    for (const c of baking) c.bakeStartedAt = new Date(p.now.getTime() - bakeSeconds(p, c) * 1000).toISOString();
    p.record(
      'Normal',
      REASON.Promoted,
      baking.length ? `skipping the rest of the bake on ${baking.map((c) => c.name).join(', ')}` : 'promote requested; no cluster is baking',
    );
  }

  const paused = p.rollout.spec.paused;
  if (paused && s.phase === 'Progressing') {
    p.rolloutEvent('Pause', REASON.PausedByUser);
    p.record('Normal', REASON.PausedByUser, 'paused by spec.paused');
  } else if (!paused && s.phase === 'Paused' && s.reason === REASON.PausedByUser) {
    p.rolloutEvent('Resume');
    p.record('Normal', REASON.Resumed, 'resumed');
  }
}

/** The bake a cluster's current step needs (bakeSeconds or the signal lag, the longer). */
export function bakeSeconds(p: Pass, c: ClusterStatus): number {
  const g = p.rollout.spec.gates;
  const stage = p.rollout.spec.strategy.stages.find((x) => x.name === c.stage);
  return effectiveBakeSeconds(stage?.bakeSeconds ?? 0, {
    cacheTTLSeconds: g.coreDNS.cacheTTLSeconds,
    scrapeIntervalSeconds: g.scrapeIntervalSeconds,
    windowSeconds: g.windowSeconds,
  });
}

/** Back to Pending with no step, for a retry from the first step. */
function resetCluster(p: Pass, c: ClusterStatus): void {
  p.clusterEvent(c, 'Reset');
  c.nodesUpdated = 0;
  delete c.step;
  delete c.stepPercent;
  delete c.stepStartedAt;
  delete c.bakeStartedAt;
  delete c.lastGate;
  delete c.baseline;
  delete c.projection;
  clearObservations(c);
  c.message = 'retrying';
}
