/**
 * The end of a hold: a cluster that held where it was (its API server unreachable, or refusing our
 * credentials) goes on from where it stood, as if the held time had not passed. Without this, a hold
 * longer than the progress deadline rolled the whole fleet back on the first pass after it ("only 36/100
 * agents ready after 600s", when the step had been watched for seconds), and a NoData verdict from
 * before the hold and the first one after it (a "new baseline": the previous scrape is minutes old)
 * counted as two in a row and paused the rollout. Neither says anything about the revision.
 */
import type { ClusterStatus } from '../api/types.generated.js';
import { iso, since, type Pass } from './pass.js';

/**
 * Moves the step's and the bake's start forward by the time held since `heldSince` (a step is judged on
 * the time it was watched), and ends a NoData streak (NoData across a hold is not "in a row"). A Fail
 * streak is kept: a failing gate before and after a hold is the same finding.
 */
export function resumeAfterHold(p: Pass, c: ClusterStatus, heldSince: string | undefined): void {
  const held = since(p.now, heldSince);
  if (!(held > 0) || !Number.isFinite(held)) return;
  const shift = (at: string | undefined): string | undefined => {
    if (at === undefined) return undefined;
    const moved = Date.parse(at) + held * 1000;
    return Number.isFinite(moved) ? iso(new Date(Math.min(moved, p.now.getTime()))) : at;
  };
  if (c.stepStartedAt) c.stepStartedAt = shift(c.stepStartedAt);
  if (c.progressedAt) c.progressedAt = shift(c.progressedAt);
  if (c.bakeStartedAt) c.bakeStartedAt = shift(c.bakeStartedAt);
  if (c.lastGate?.verdict === 'NoData') c.lastGate.consecutiveFailures = 0;
}
