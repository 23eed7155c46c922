/**
 * The control requests the plugin sends (pause/resume through `spec.paused`; abort, retry and promote
 * through annotations) and, as pure functions, what the operator will do with each given the rollout's
 * current status. The wording mirrors `handleControls` in rollout/controls.ts, and the annotation keys
 * are that file's own constants, so the plugin always sets what the operator reads.
 */
import type { TelemetryRollout } from '../api/types.generated.js';
import { REASON } from '../rollout/conditions.js';
import { ABORT_ANNOTATION, PROMOTE_ANNOTATION, RETRY_ANNOTATION } from '../rollout/controls.js';

/** The annotation-driven requests. */
export type RequestKind = 'abort' | 'retry' | 'promote';

/** The annotation key of each request kind. */
export const REQUEST_ANNOTATIONS: Readonly<Record<RequestKind, string>> = {
  abort: ABORT_ANNOTATION,
  retry: RETRY_ANNOTATION,
  promote: PROMOTE_ANNOTATION,
};

/**
 * A fresh request value: the ISO time plus 6 random base-36 characters, e.g.
 * `2026-11-25T10:00:00.000Z-k3j9x2`. The operator acts once per distinct value, so two requests in the
 * same millisecond must still differ; `random` returns [0, 1) (Math.random in production).
 */
export function requestId(now: Date, random: () => number): string {
  let suffix = '';
  for (let i = 0; i < 6; i++) suffix += Math.floor(random() * 36).toString(36);
  return `${now.toISOString()}-${suffix}`;
}

/**
 * The annotation value of an abort: the request id, followed by the reason when one is given (the
 * operator quotes the whole value in its history, so the reason shows up there). Newlines are folded
 * to spaces: the value is one line in the operator's messages.
 */
export function abortValue(id: string, reason: string | undefined): string {
  const r = reason?.replace(/\s+/g, ' ').trim();
  return r ? `${id} ${r}` : id;
}

/** The merge patch that sets one request annotation. */
export function requestPatch(kind: RequestKind, value: string): { metadata: { annotations: Record<string, string> } } {
  return { metadata: { annotations: { [REQUEST_ANNOTATIONS[kind]]: value } } };
}

/** The merge patch of pause (true) and resume (false). */
export function pausePatch(paused: boolean): { spec: { paused: boolean } } {
  return { spec: { paused } };
}

/**
 * What the operator will do with a request, given the status before it (the reconciler's rules):
 * one sentence for the person who sent it.
 */
export function expectedEffect(kind: RequestKind | 'pause' | 'resume', ro: TelemetryRollout): string {
  const s = ro.status ?? {};
  const phase = s.phase ?? 'Pending';
  const terminal = phase === 'RolledBack' || phase === 'Failed';
  const pausedByUser = phase === 'Paused' && s.reason === REASON.PausedByUser;
  switch (kind) {
    case 'abort':
      if (phase === 'RolledBack') return `nothing: the rollout is already ${phase}; the request is recorded and ignored`;
      if (phase === 'Succeeded') return 'nothing: the rollout has succeeded; to go back, roll out the previous collector revision';
      if (phase === 'RollingBack') return 'nothing new: the rollout is already rolling back';
      return `halt every cluster and roll back newest-first${s.previousRevision ? ` to revision ${s.previousRevision}` : ' (removing the new revision)'}`;
    case 'retry':
      if (terminal) return `start revision ${s.revision ?? '(current)'} again from the first node step of the first cluster, keeping the plan`;
      if (phase === 'Paused' && !pausedByUser) return 'reset the gate failure counts and resume the paused clusters';
      if (pausedByUser) return 'nothing: the rollout is paused by spec.paused; use `kubectl tro resume`';
      return `nothing: a retry only acts on a Failed, RolledBack or gate-paused rollout (phase is ${phase}); the request is recorded and ignored`;
    case 'promote': {
      const baking = (s.clusters ?? []).filter((c) => c.phase === 'Baking').map((c) => c.name);
      if (baking.length) return `end the bake now on ${baking.join(', ')}; the next step still needs a passing gate evaluation`;
      return 'nothing: no cluster is baking; the request is recorded and ignored';
    }
    case 'pause':
      if (phase === 'Progressing') return 'stop before the next node step or cluster (running agents stay as they are)';
      if (phase === 'Paused')
        return pausedByUser ? 'nothing new: already paused by spec.paused' : 'keep the rollout paused; it will then need `resume` as well as a retry';
      return `nothing now (phase is ${phase}); the rollout will not progress while spec.paused is true`;
    case 'resume':
      if (pausedByUser) return 'continue from where the rollout was paused';
      if (phase === 'Paused') return 'nothing: the rollout was paused by a gate, not by spec.paused; use `kubectl tro retry`';
      return `nothing to resume (phase is ${phase}); spec.paused is now false`;
  }
}

/**
 * Requests whose annotation value the operator has not acted on yet (it records handled values in
 * `status.handledRequests`): the status may not reflect them yet.
 */
export function pendingRequests(ro: TelemetryRollout): RequestKind[] {
  const ann = ro.metadata?.annotations ?? {};
  const handled = ro.status?.handledRequests ?? {};
  return (Object.keys(REQUEST_ANNOTATIONS) as RequestKind[]).filter((k) => {
    const v = ann[REQUEST_ANNOTATIONS[k]];
    return v !== undefined && v !== handled[k];
  });
}

/** The phases a rollout does not leave by itself. */
export const FINAL_PHASES: ReadonlySet<string> = new Set(['Succeeded', 'RolledBack', 'Failed']);

/**
 * Whether the rollout has reached a final phase that is current: the status describes the latest spec
 * generation and no control request is still pending (right after a retry of a RolledBack rollout the
 * old phase is still shown until the operator acts).
 */
export function isDone(ro: TelemetryRollout): boolean {
  const s = ro.status;
  if (!s?.phase || !FINAL_PHASES.has(s.phase)) return false;
  const gen = ro.metadata?.generation;
  if (gen !== undefined && s.observedGeneration !== undefined && s.observedGeneration < gen) return false;
  return pendingRequests(ro).length === 0;
}
