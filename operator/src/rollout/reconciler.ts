/**
 * The TelemetryRollout reconciler: level-triggered, one status write per pass.
 *
 * Each pass reads the rollout, the targets' observed state and the gates, moves every active cluster at
 * most one state forward, and writes status once, with the resourceVersion it read (a stale pass fails
 * with a conflict and is retried on fresh data). Everything needed to resume lives in status; in-memory
 * state is only an optimisation (relabel pacing), so a restart or a leader change loses nothing.
 *
 * Ordering guarantees that make "no step skipped or repeated" hold across crashes:
 *   - a decision to advance (next step, next cluster, rollback) is first written to status, and only the
 *     following passes act on it; acting (labelling nodes, applying objects) is idempotent convergence
 *     towards what status says, so a crash between acting and writing just repeats harmless work;
 *   - the set of nodes a step covers is a pure function (the first N node names in sorted order).
 *
 * Every phase change goes through the machine's table (machine.ts). The steps of a pass live in files
 * named for them: planning, controls, observe (reachability and gates), progress and steps, rollback,
 * breakglass, status.
 */
import { handleControls } from './controls.js';
import { rolloutCapabilities } from './machine.js';
import { connect, observeClusters } from './observe.js';
import { newContext, Pass, type ReconcileContext, type ReconcilerDeps } from './pass.js';
import { needsPlan, plan, startRevisionIfChanged } from './planning.js';
import { progress } from './progress.js';
import { revisionOf } from './revision.js';
import { rollBack } from './rollback.js';
import { migrateStatus, summarize } from './status.js';
import { deferRevisionDuringIncident } from './breakglass.js';

export { ABORT_ANNOTATION, PROMOTE_ANNOTATION, RETRY_ANNOTATION } from './controls.js';
export type { PreflightCheck, ReconcileLogger, ReconcilerDeps, ReconcilerOptions, RolloutReader } from './pass.js';

/** What a pass asks of the work queue. */
export interface ReconcileResult {
  requeueAfterMs?: number;
}

/**
 * Reconciles TelemetryRollouts. `reconcile(key)` is safe to call at any time and any number of times;
 * the work queue guarantees one pass per key at a time.
 */
export class RolloutReconciler {
  private readonly ctx: ReconcileContext;

  constructor(deps: ReconcilerDeps) {
    this.ctx = newContext(deps);
  }

  /** One pass for `namespace/name`. Throws to ask for a retry with backoff (for example on a conflict). */
  async reconcile(key: string): Promise<ReconcileResult> {
    const d = this.ctx.d;
    const [namespace, name] = key.includes('/') ? (key.split('/', 2) as [string, string]) : ['default', key];
    const rollout = await d.rollouts.get(namespace, name);
    if (!rollout) return {};
    const p = new Pass(this.ctx, rollout, d.clock.now(), revisionOf(rollout.spec.collector));
    const before = JSON.stringify(rollout.status ?? {});

    migrateStatus(p);
    await connect(p);
    await deferRevisionDuringIncident(p);
    startRevisionIfChanged(p);
    if (needsPlan(p)) await plan(p);
    handleControls(p);
    if (p.status.clusters?.length) await observeClusters(p);
    await this.act(p);
    summarize(p);

    if (JSON.stringify(p.status) !== before) await d.status.writeStatus(rollout, p.status);
    for (const e of p.events) d.events.event(rollout, e.type, e.reason, e.message);
    return p.requeueMs === undefined ? {} : { requeueAfterMs: p.requeueMs };
  }

  /** What the phase does once the pass has observed: move forward, roll back, or wait and watch. */
  private async act(p: Pass): Promise<void> {
    const caps = rolloutCapabilities(p.status.phase);
    if (p.deferredRevision && caps.relabelsForward) {
      // Forward under a spec that is no longer this revision's would apply the new spec's objects
      // under the old name: only the incident is handled until it is over.
      p.requeue(5000);
      return;
    }
    if (caps.relabelsForward) {
      if (p.status.clusters?.length) await progress(p);
    } else if (caps.relabelsBack) {
      await rollBack(p);
    } else if (caps.probesReachability && p.status.clusters?.length) {
      p.requeue(p.rollout.spec.gates.intervalSeconds * 1000);
    }
  }
}
