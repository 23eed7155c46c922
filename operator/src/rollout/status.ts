/**
 * The end of a pass: the rollout-level summary (progress, health, message) and the conditions. Ready,
 * Progressing and Paused follow the phase as the machine's table declares them; Degraded follows what
 * the pass observed (unavailable or unreachable targets, a failing gate, a phase that means trouble).
 */
import type { Condition, TelemetryRolloutStatus } from '../api/types.generated.js';
import { breakGlassNeeded } from './breakglass.js';
import { CONDITION, markFalse, markTrue, REASON } from './conditions.js';
import { isActive, rolloutCapabilities } from './machine.js';
import type { Pass } from './pass.js';

/**
 * Brings a status written by an older operator to today's field names, so an upgrade mid-step neither
 * fails the step nor wedges its bake: a step without its start time starts now (the progress deadline
 * counts from the upgrade), a bake without its start time starts again.
 */
export function migrateStatus(p: Pass): void {
  for (const c of p.status.clusters ?? []) {
    const old = c as { stepBeganAt?: string };
    if (old.stepBeganAt !== undefined) {
      // Before the rename, stepBeganAt was the step's start and stepStartedAt the bake's.
      if (c.phase === 'Baking') c.bakeStartedAt ??= c.stepStartedAt ?? p.now.toISOString();
      c.stepStartedAt = old.stepBeganAt;
      delete old.stepBeganAt;
    }
    // A cluster halted mid-step (Paused) had begun its step too: without a start it would resume into
    // its preflight and begin step 1 again.
    if (c.phase === 'Progressing' || (c.phase === 'Paused' && (c.nodesUpdated ?? 0) > 0)) c.stepStartedAt ??= p.now.toISOString();
    if (c.phase === 'Baking') c.bakeStartedAt ??= p.now.toISOString();
  }
}

/** Derives the rollout-level fields and the conditions from the clusters and the phase. */
export function summarize(p: Pass): void {
  const s = p.status;
  const gen = p.rollout.metadata?.generation;
  const clusters = s.clusters ?? [];
  s.observedGeneration = gen;
  s.progress = `${clusters.filter((c) => c.phase === 'Succeeded').length}/${clusters.length} clusters`;
  const verdicts = clusters.filter((c) => c.lastGate && c.phase !== 'RolledBack' && c.phase !== 'Pending').map((c) => c.lastGate?.verdict);
  s.health = verdicts.includes('Fail') ? 'Fail' : verdicts.includes('NoData') ? 'NoData' : verdicts.includes('Pass') ? 'Pass' : (s.health ?? 'Unknown');
  if (s.phase === 'Progressing') {
    const moving = clusters.filter((c) => isActive(c.phase));
    s.message = moving.length ? moving.map((c) => `${c.name}: ${c.message ?? c.phase}`).join('; ') : s.message;
  } else if (s.phase === 'Paused') {
    s.message = `paused (${s.reason ?? ''})${s.message && !s.message.startsWith('paused') ? `: ${s.message}` : ''}`;
  } else if (s.phase === 'Succeeded') {
    s.message = `revision ${p.revision} on all ${clusters.length} clusters`;
  }
  if (p.deferredRevision) {
    const d = p.deferredRevision;
    const waits = `revision ${d.revision} (a spec change) waits until the incident on ${d.clusters.join(', ')} is over`;
    if (!s.message?.startsWith(waits))
      s.message = s.message ? `${waits}; ${s.message.replace(/^revision \S+ \(a spec change\) waits until the incident on [^;]*; /, '')}` : waits;
  }
  s.conditions = conditions(p, s, gen);
}

function conditions(p: Pass, s: TelemetryRolloutStatus, gen: number | undefined): Condition[] {
  const conds: Condition[] = s.conditions ?? [];
  const mark = (type: string, on: boolean, reason: string, message: string) => (on ? markTrue : markFalse)(conds, type, reason, message, p.now, gen);
  const phase = s.phase ?? 'Pending';
  const declared = rolloutCapabilities(phase).conditions;
  const why = s.reason ?? '';
  const message = s.message ?? phase;
  mark(CONDITION.Ready, declared.Ready, declared.Ready ? REASON.Succeeded : phase, message);
  mark(
    CONDITION.Progressing,
    declared.Progressing,
    declared.Progressing ? (phase === 'RollingBack' ? REASON.RollingBack : REASON.Progressing) : phase,
    message,
  );
  mark(CONDITION.Paused, declared.Paused, declared.Paused ? why : REASON.Progressing, declared.Paused ? (s.message ?? 'paused') : 'not paused');

  const clusters = s.clusters ?? [];
  const refused = clusters.filter((c) => c.credentialsInvalidSince);
  mark(
    CONDITION.CredentialsInvalid,
    refused.length > 0,
    refused.length ? REASON.CredentialsInvalid : REASON.CredentialsAccepted,
    refused.length ? refused.map((c) => `${c.name}: ${c.message ?? 'credentials refused'}`).join('; ') : 'every target accepts its credentials',
  );
  const needed = clusters.filter((c) => breakGlassNeeded(p, c));
  mark(
    CONDITION.BreakGlassNeeded,
    needed.length > 0,
    needed.length ? REASON.BreakGlass : REASON.NotNeeded,
    needed.length ? needed.map((c) => `${c.name}: ${c.message ?? 'unreachable'}`).join('; ') : 'no target needs break-glass',
  );
  const stopped = clusters.filter((c) => c.breakGlass?.issuedAt && !c.breakGlass.clearedAt);
  mark(
    CONDITION.AgentsStopped,
    stopped.length > 0,
    stopped.length ? REASON.BreakGlass : REASON.NoStopFiles,
    stopped.length
      ? stopped
          .map(
            (c) =>
              `${c.name}: ${c.breakGlass?.nodesStopped ?? 0}/${c.breakGlass?.nodesTargeted ?? 0} nodes stopped (revision ${c.breakGlass?.revision ?? '?'})`,
          )
          .join('; ')
      : 'no stop file of this rollout is in place',
  );
  const checked = clusters.filter((c) => c.breakGlassCheck);
  const uncheckable = checked.filter((c) => c.breakGlassCheck?.ok === false);
  mark(
    CONDITION.BreakGlassReady,
    uncheckable.length === 0,
    uncheckable.length ? REASON.BreakGlassCheckFailed : REASON.BreakGlass,
    uncheckable.length
      ? uncheckable.map((c) => `${c.name}: ${c.breakGlassCheck?.message ?? 'check failed'}`).join('; ')
      : checked.length
        ? `transport checked on ${checked.map((c) => c.name).join(', ')}`
        : 'nothing to check before it is needed (no ssh transport, or no cluster started)',
  );
  const unreachable = clusters.filter((c) => c.reachable === false).map((c) => c.name);
  const unavailable = [...p.unavailable.keys()];
  const degradedWhy: string[] = [];
  if (unavailable.length) degradedWhy.push(`unavailable: ${unavailable.map((n) => `${n} (${p.unavailable.get(n) ?? ''})`).join(', ')}`);
  if (p.targetsError) degradedWhy.push(p.targetsError);
  if (unreachable.length) degradedWhy.push(`unreachable: ${unreachable.join(', ')}`);
  if (refused.length) degradedWhy.push(`credentials refused: ${refused.map((c) => c.name).join(', ')}`);
  if (phase === 'RolledBack' || phase === 'RollingBack' || phase === 'Failed' || phase === 'BreakGlass') degradedWhy.push(message);
  if (s.health === 'Fail') degradedWhy.push('a health gate is failing');
  const degradedReason =
    unavailable.length || p.targetsError
      ? REASON.ClusterUnavailable
      : unreachable.length
        ? REASON.ClusterUnreachable
        : refused.length
          ? REASON.CredentialsInvalid
          : s.health === 'Fail' && declared.Progressing
            ? REASON.GateFailed
            : phase === 'Failed'
              ? REASON.Failed
              : why || phase;
  mark(
    CONDITION.Degraded,
    degradedWhy.length > 0,
    degradedWhy.length ? degradedReason : REASON.Healthy,
    degradedWhy.length ? degradedWhy.join('; ') : 'all targets healthy',
  );
  return conds;
}
