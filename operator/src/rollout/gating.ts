/**
 * Health gates in the rollout: evaluating a cluster's gates at most once per interval, storing the
 * verdict, counting consecutive failures, and turning a breach at the failure limit into the
 * GateFailed / GateNoData event with its policy (roll back or pause).
 */
import type { ClusterStatus } from '../api/types.generated.js';
import { REASON } from './conditions.js';
import { RETRY_ANNOTATION } from './controls.js';
import type { ClusterClient, GateEvaluation } from './interfaces.js';
import { rolloutCapabilities } from './machine.js';
import { iso, since, type Pass } from './pass.js';
import { haltFleet, startRollback } from './rollback.js';

/**
 * Evaluates a cluster's gates when its interval is up and records the verdict. Returns the scrape's
 * message when the API server could not be connected to (the caller's Unreachable event), else undefined.
 */
export async function evaluateGates(p: Pass, c: ClusterStatus, client: ClusterClient): Promise<string | undefined> {
  const gates = p.rollout.spec.gates;
  // The step's baseline is a scrape too: an evaluation moments after it (a status write wakes the
  // reconciler at once) has no window to measure and was NoData at the start of every step, which
  // counted towards failureLimit (with failureLimit 1 and onNoData Pause, every step paused).
  const age = Math.min(since(p.now, c.lastGate?.time), since(p.now, c.baseline?.capturedAt));
  if (age < gates.intervalSeconds) {
    p.requeue((gates.intervalSeconds - age) * 1000);
    return undefined;
  }
  const target = p.target(c.name);
  if (!target) return undefined;
  const ev = await p.ctx.d.gates.evaluate({
    rollout: p.rollout,
    target,
    client,
    baseline: c.baseline,
    fraction: p.fraction(c),
    consecutiveFailures: c.lastGate?.consecutiveFailures ?? 0,
  });
  if (ev.unreachable) return ev.message ?? '';
  if (ev.retryAfterMs !== undefined) {
    // No verdict yet (the evaluator's first scrape of the target, after a restart): nothing is recorded
    // or counted; the evaluation is made once the evaluator has a window.
    p.requeue(ev.retryAfterMs);
    return undefined;
  }
  recordGate(p, c, ev);
  p.requeue(gates.intervalSeconds * 1000);
  return undefined;
}

/** Stores a gate verdict, counts consecutive failures, and trips the fleet-wide breaker when due. */
function recordGate(p: Pass, c: ClusterStatus, ev: GateEvaluation): void {
  const gates = p.rollout.spec.gates;
  const prev = c.lastGate;
  const bad = ev.verdict !== 'Pass' && !(ev.verdict === 'NoData' && gates.onNoData === 'Ignore');
  const sameKind = prev?.verdict === ev.verdict;
  const consecutive = bad ? (sameKind ? (prev?.consecutiveFailures ?? 0) + 1 : 1) : 0;
  c.lastGate = { ...ev, time: iso(p.now), consecutiveFailures: consecutive };
  delete (c.lastGate as { unreachable?: boolean }).unreachable;
  if (prev?.verdict !== ev.verdict) {
    const reason = ev.verdict === 'Pass' ? REASON.GatePassed : ev.verdict === 'Fail' ? REASON.GateFailed : REASON.GateNoData;
    p.record(ev.verdict === 'Pass' ? 'Normal' : 'Warning', reason, ev.message ?? ev.verdict, c.name);
  }
  if (!bad || consecutive < gates.failureLimit || !rolloutCapabilities(p.status.phase).gatesAct) return;
  const fail = ev.verdict === 'Fail';
  const what = `${fail ? 'gate failed' : 'no gate data'} on ${c.name} ${consecutive} times in a row: ${ev.message ?? ''}`.trim();
  const policy = fail ? gates.onFailure : gates.onNoData;
  const reason = fail ? REASON.GateFailed : REASON.GateNoData;
  haltFleet(p, `gate breach on ${c.name}`);
  if (policy === 'Rollback') startRollback(p, fail ? 'GateFailed' : 'GateNoData', reason, what);
  else {
    p.rolloutEvent(fail ? 'GateFailed' : 'GateNoData', reason, 'Pause');
    p.record('Warning', reason, `${what}; paused (retry with the ${RETRY_ANNOTATION} annotation)`);
  }
}
