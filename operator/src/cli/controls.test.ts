import { describe, expect, it } from '@jest/globals';
import type { TelemetryRolloutStatus } from '../api/types.generated.js';
import { ABORT_ANNOTATION, PROMOTE_ANNOTATION, RETRY_ANNOTATION } from '../rollout/controls.js';
import { abortValue, expectedEffect, isDone, pausePatch, pendingRequests, requestId, requestPatch } from './controls.js';
import { fixtureRollout, gateFailureStatus } from '../../../testkit/operator/cli/fixtures.js';

const ro = (status: TelemetryRolloutStatus) => fixtureRollout(status);

describe('control requests', () => {
  it('makes request ids from the time and a random suffix, distinct within a millisecond', () => {
    const now = new Date('2026-11-25T10:00:00.123Z');
    let i = 0;
    const seq = [0, 0.5, 0.999, 0.1, 0.2, 0.3];
    expect(requestId(now, () => seq[i++ % seq.length]!)).toBe('2026-11-25T10:00:00.123Z-0iz37a');
    expect(requestId(now, Math.random)).not.toBe(requestId(now, Math.random));
  });

  it('builds the patches', () => {
    expect(pausePatch(true)).toEqual({ spec: { paused: true } });
    expect(requestPatch('retry', 'v')).toEqual({ metadata: { annotations: { 'telemetry.rollout.dev/retry': 'v' } } });
    expect(abortValue('id', undefined)).toBe('id');
    expect(abortValue('id', '  p99\nregression ')).toBe('id p99 regression');
  });
});

describe('expectedEffect follows the reconciler’s rules', () => {
  const rb = gateFailureStatus();
  it.each<[string, Parameters<typeof expectedEffect>[0], TelemetryRolloutStatus, RegExp]>([
    [
      'abort while rolling out',
      'abort',
      { phase: 'Progressing', previousRevision: 'old1' },
      /^halt every cluster and roll back newest-first to revision old1$/,
    ],
    ['abort without a previous revision', 'abort', { phase: 'Progressing' }, /removing the new revision/],
    ['abort while rolling back', 'abort', rb, /already rolling back/],
    ['abort after RolledBack', 'abort', { phase: 'RolledBack' }, /already RolledBack; the request is recorded and ignored/],
    ['abort after success', 'abort', { phase: 'Succeeded' }, /has succeeded/],
    ['abort after a failure rolls back what the rollout left', 'abort', { phase: 'Failed' }, /halt every cluster and roll back newest-first/],
    ['retry after RolledBack', 'retry', { phase: 'RolledBack', revision: 'abc' }, /start revision abc again from the first node step/],
    ['retry after a gate pause', 'retry', { phase: 'Paused', reason: 'GateFailed' }, /reset the gate failure counts/],
    ['retry while paused by the user', 'retry', { phase: 'Paused', reason: 'PausedByUser' }, /kubectl tro resume/],
    ['retry while progressing', 'retry', { phase: 'Progressing' }, /only acts on a Failed, RolledBack or gate-paused rollout/],
    [
      'promote while baking',
      'promote',
      {
        phase: 'Progressing',
        clusters: [
          { name: 'a', phase: 'Baking' },
          { name: 'b', phase: 'Pending' },
          { name: 'c', phase: 'Baking' },
        ],
      },
      /^end the bake now on a, c;/,
    ],
    ['promote with nothing baking', 'promote', { phase: 'Progressing', clusters: [{ name: 'a', phase: 'Progressing' }] }, /no cluster is baking/],
    ['pause while progressing', 'pause', { phase: 'Progressing' }, /stop before the next node step/],
    ['pause when already paused by the user', 'pause', { phase: 'Paused', reason: 'PausedByUser' }, /already paused/],
    ['pause when paused by a gate', 'pause', { phase: 'Paused', reason: 'GateNoData' }, /need `resume` as well/],
    ['pause a pending rollout', 'pause', {}, /nothing now \(phase is Pending\)/],
    ['resume a user pause', 'resume', { phase: 'Paused', reason: 'PausedByUser' }, /continue from where/],
    ['resume a gate pause', 'resume', { phase: 'Paused', reason: 'GateFailed' }, /kubectl tro retry/],
    ['resume a running rollout', 'resume', { phase: 'Progressing' }, /nothing to resume/],
  ])('%s', (_title, kind, status, want) => {
    expect(expectedEffect(kind, ro(status))).toMatch(want);
  });
});

describe('pendingRequests and isDone', () => {
  it('lists annotations whose value the operator has not handled', () => {
    const r = ro({ phase: 'RolledBack', handledRequests: { abort: 'a1', retry: 'r1' } });
    r.metadata = { ...r.metadata, annotations: { [ABORT_ANNOTATION]: 'a1', [RETRY_ANNOTATION]: 'r2', [PROMOTE_ANNOTATION]: 'p1', other: 'x' } };
    expect(pendingRequests(r)).toEqual(['retry', 'promote']);
    expect(isDone(r)).toBe(false);
    r.status!.handledRequests = { abort: 'a1', retry: 'r2', promote: 'p1' };
    expect(isDone(r)).toBe(true);
  });

  it.each<[string, TelemetryRolloutStatus, number, boolean]>([
    ['Succeeded', { phase: 'Succeeded', observedGeneration: 1 }, 1, true],
    ['Failed', { phase: 'Failed' }, 1, true],
    ['RolledBack of an older generation', { phase: 'RolledBack', observedGeneration: 1 }, 2, false],
    ['Progressing', { phase: 'Progressing', observedGeneration: 1 }, 1, false],
    ['BreakGlass (waits for a person)', { phase: 'BreakGlass', observedGeneration: 1 }, 1, false],
    ['no status yet', {}, 1, false],
  ])('%s → done=%s', (_t, status, generation, want) => {
    const r = ro(status);
    r.metadata = { ...r.metadata, generation };
    expect(isDone(r)).toBe(want);
  });
});
