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
 */
import type {
  ClusterStatus,
  Condition,
  HistoryEntry,
  StageSpec,
  TelemetryRollout,
  TelemetryRolloutStatus,
} from '../api/types.generated.js';
import type { Clock } from '#core/clock.js';
import { errorMessage } from '../util/errors.js';
import { CONDITION, REASON, setCondition } from './conditions.js';
import { revisionObjects, revisionRefs, sharedObjects } from './desired.js';
import {
  ClusterUnavailableError,
  REVISION_LABEL,
  type BaselineCapture,
  type BreakGlassActuator,
  type ClusterClient,
  type ClusterClientFactory,
  type InventoryRecorder,
  type EventRecorder,
  type GateEvaluation,
  type GateEvaluator,
  type NodeInfo,
  type ResolvedTarget,
  type StatusWriter,
} from './interfaces.js';
import { assignStages, effectiveBakeSeconds, nodesForStep, orderClusters } from './plan.js';
import { revisionOf, rolloutLabelValue } from './revision.js';

/** Annotation requesting an abort (rolls back). Its value identifies the request; any new value acts once. */
export const ABORT_ANNOTATION = 'telemetry.rollout.dev/abort';
/** Annotation requesting a retry after a failure or a gate pause. */
export const RETRY_ANNOTATION = 'telemetry.rollout.dev/retry';
/** Annotation requesting to skip the rest of the current bake. */
export const PROMOTE_ANNOTATION = 'telemetry.rollout.dev/promote';

/** Reads a rollout (normally from the informer cache). */
export interface RolloutReader {
  get(namespace: string, name: string): Promise<TelemetryRollout | undefined>;
}

/** A minimal logger interface (winston's satisfies it). */
export interface ReconcileLogger {
  info(message: string, meta?: Record<string, unknown>): unknown;
  warn(message: string, meta?: Record<string, unknown>): unknown;
  debug(message: string, meta?: Record<string, unknown>): unknown;
}

/**
 * A preflight check run before a cluster starts (for example the collector's projected API load). It
 * returns a refusal message, or undefined to go on.
 */
export type PreflightCheck = (rollout: TelemetryRollout, target: ResolvedTarget, nodes: NodeInfo[], client: ClusterClient) => Promise<string | undefined> | string | undefined;

/** Tunables with safe defaults. */
export interface ReconcilerOptions {
  /** A step whose agents are not all ready this long after it began fails (default 600 s). */
  progressDeadlineSeconds?: number;
  /** Poll interval while relabelling or waiting for agents (default 2000 ms). */
  pollMs?: number;
  /** Extra preflight checks. */
  preflight?: PreflightCheck[];
  /** Entries kept in status.history (default 100, the CRD's maximum). */
  historyLimit?: number;
}

/** Everything the reconciler talks to, passed in (narrow interfaces). */
export interface ReconcilerDeps {
  rollouts: RolloutReader;
  clusters: ClusterClientFactory;
  gates: GateEvaluator;
  status: StatusWriter;
  events: EventRecorder;
  clock: Clock;
  logger?: ReconcileLogger;
  options?: ReconcilerOptions;
  /** Break-glass; without it an unreachable cluster is only reported. */
  breakGlass?: BreakGlassActuator;
  /** Node inventory persistence; without it break-glass has no node list. */
  inventory?: InventoryRecorder;
}

/** What a pass asks of the work queue. */
export interface ReconcileResult {
  requeueAfterMs?: number;
}

const ACTIVE: ReadonlyArray<ClusterStatus['phase']> = ['Preflight', 'Progressing', 'Baking'];
const TOUCHED: ReadonlyArray<ClusterStatus['phase']> = ['Preflight', 'Progressing', 'Baking', 'Paused', 'Succeeded', 'Failed', 'RollingBack', 'BreakGlass'];

/** Per-pass working state: the rollout, its status being built, and what the pass learned. */
class Pass {
  readonly status: TelemetryRolloutStatus;
  readonly events: Array<{ type: 'Normal' | 'Warning'; reason: string; message: string }> = [];
  /** Shortest requeue any part of the pass asked for. */
  requeueMs: number | undefined;
  /** Clients by cluster name (undefined: unavailable, with the reason in `unavailable`). */
  readonly clients = new Map<string, ClusterClient>();
  readonly unavailable = new Map<string, string>();
  targets: ResolvedTarget[] = [];

  readonly rollout: TelemetryRollout;
  readonly now: Date;
  readonly revision: string;
  constructor(
    rollout: TelemetryRollout,
    now: Date,
    revision: string) {
    this.rollout = rollout;
    this.now = now;
    this.revision = revision;
    this.status = JSON.parse(JSON.stringify(rollout.status ?? {})) as TelemetryRolloutStatus;
  }

  requeue(ms: number): void {
    const m = Math.max(0, Math.round(ms));
    this.requeueMs = this.requeueMs === undefined ? m : Math.min(this.requeueMs, m);
  }
}

const iso = (d: Date): string => d.toISOString();
const since = (now: Date, t: string | undefined): number => (t ? (now.getTime() - Date.parse(t)) / 1000 : Infinity);

/**
 * Reconciles TelemetryRollouts. `reconcile(key)` is safe to call at any time and any number of times;
 * the work queue guarantees one pass per key at a time.
 */
export class RolloutReconciler {
  private readonly d: ReconcilerDeps;
  private readonly progressDeadline: number;
  private readonly pollMs: number;
  private readonly historyLimit: number;
  /** Last relabel time per cluster, for pacing only (losing it on restart costs one burst, nothing else). */
  private readonly lastRelabel = new Map<string, number>();

  constructor(deps: ReconcilerDeps) {
    this.d = deps;
    this.progressDeadline = deps.options?.progressDeadlineSeconds ?? 600;
    this.pollMs = deps.options?.pollMs ?? 2000;
    this.historyLimit = deps.options?.historyLimit ?? 100;
  }

  /** One pass for `namespace/name`. Throws to ask for a retry with backoff (for example on a conflict). */
  async reconcile(key: string): Promise<ReconcileResult> {
    const [namespace, name] = key.includes('/') ? (key.split('/', 2) as [string, string]) : ['default', key];
    const rollout = await this.d.rollouts.get(namespace, name);
    if (!rollout) return {};
    const p = new Pass(rollout, this.d.clock.now(), revisionOf(rollout.spec.collector));
    const before = JSON.stringify(rollout.status ?? {});

    this.startRevisionIfChanged(p);
    await this.connect(p);
    if (!p.status.clusters?.length || p.status.phase === 'Pending') await this.plan(p);
    this.handleControls(p);
    if (p.status.clusters?.length) {
      await this.observeActiveClusters(p);
      switch (p.status.phase) {
        case 'Progressing':
          await this.progress(p);
          break;
        case 'RollingBack':
          await this.rollBack(p);
          break;
        case 'Paused':
        case 'BreakGlass':
          p.requeue(rollout.spec.gates.intervalSeconds * 1000);
          break;
        default:
          break;
      }
    }
    this.summarize(p);

    if (JSON.stringify(p.status) !== before) await this.d.status.writeStatus(rollout, p.status);
    for (const e of p.events) this.d.events.event(rollout, e.type, e.reason, e.message);
    return p.requeueMs === undefined ? {} : { requeueAfterMs: p.requeueMs };
  }

  // ---- steps of a pass ----------------------------------------------------------------------------

  /** A new revision (changed image or config) starts a new rollout; the old one is superseded. */
  private startRevisionIfChanged(p: Pass): void {
    const s = p.status;
    if (s.revision === p.revision) return;
    if (s.revision) {
      // The previous revision becomes the rollback target only if it had completed; otherwise the
      // stable revision before it still is.
      if (s.phase === 'Succeeded') s.previousRevision = s.revision;
      this.record(p, 'Normal', REASON.RevisionStarted, `revision ${p.revision} supersedes ${s.revision}`);
    } else {
      this.record(p, 'Normal', REASON.RevisionStarted, `rolling out revision ${p.revision}`);
    }
    s.revision = p.revision;
    s.phase = 'Pending';
    delete s.reason;
    s.clusters = [];
    s.stage = '';
    s.stageIndex = 0;
    s.startedAt = iso(p.now);
    delete s.completedAt;
    s.health = 'Unknown';
  }

  /** Resolves targets and gets a client for each; an unavailable cluster is recorded, never fatal. */
  private async connect(p: Pass): Promise<void> {
    try {
      p.targets = await this.d.clusters.resolveTargets(p.rollout);
    } catch (err) {
      p.unavailable.set('*', `cannot resolve targets: ${errorMessage(err)}`);
      return;
    }
    for (const t of p.targets) {
      try {
        p.clients.set(t.name, await this.d.clusters.client(p.rollout, t));
      } catch (err) {
        const why = err instanceof ClusterUnavailableError ? `${err.reason}: ${err.message}` : errorMessage(err);
        p.unavailable.set(t.name, why);
      }
    }
  }

  /**
   * Plans the rollout once: every target's node count (for LargestFirst), the order, and the stage of
   * each cluster. Waits (phase Pending) until every target can be counted: a plan made without the
   * largest cluster would put the wrong cluster first.
   */
  private async plan(p: Pass): Promise<void> {
    const s = p.status;
    s.phase = 'Pending';
    const sizes: Array<{ name: string; nodes: number }> = [];
    const waiting: string[] = [];
    for (const t of p.targets) {
      const c = p.clients.get(t.name);
      if (!c) {
        waiting.push(`${t.name} (${p.unavailable.get(t.name) ?? 'unavailable'})`);
        continue;
      }
      try {
        sizes.push({ name: t.name, nodes: (await c.listNodes()).length });
      } catch (err) {
        waiting.push(`${t.name} (unreachable: ${errorMessage(err)})`);
      }
    }
    if (p.unavailable.has('*')) waiting.push(p.unavailable.get('*') as string);
    if (waiting.length || p.targets.length === 0) {
      s.message = p.targets.length === 0 && !waiting.length ? 'no target clusters found' : `waiting for clusters: ${waiting.join('; ')}`;
      p.requeue(15_000);
      return;
    }
    const ordered = orderClusters(sizes, p.rollout.spec.strategy.order);
    const stages = assignStages(ordered, p.rollout.spec.strategy.stages);
    s.clusters = stages.flatMap(({ stage, clusters }) =>
      clusters.map((c): ClusterStatus => ({ name: c.name, stage: stage.name, phase: 'Pending', nodesTotal: c.nodes, nodesUpdated: 0, revision: p.revision })),
    );
    s.phase = 'Progressing';
    s.message = `planned ${s.clusters.length} clusters: ${stages.filter((x) => x.clusters.length).map((x) => `${x.stage.name}=[${x.clusters.map((c) => c.name).join(',')}]`).join(' ')}`;
    this.record(p, 'Normal', REASON.Planning, s.message);
  }

  /** Pause/resume, abort, retry and promote; each request acts exactly once (its value is remembered). */
  private handleControls(p: Pass): void {
    const s = p.status;
    const ann = p.rollout.metadata?.annotations ?? {};
    s.handledRequests ??= {};
    const terminal = s.phase === 'RolledBack' || s.phase === 'Failed';

    const abort = ann[ABORT_ANNOTATION];
    if (abort !== undefined && abort !== s.handledRequests.abort) {
      s.handledRequests.abort = abort;
      if (!terminal && s.phase !== 'Succeeded' && s.phase !== 'RollingBack') {
        this.startRollback(p, REASON.Aborted, `aborted by request ${JSON.stringify(abort)}`);
      }
    }

    const retry = ann[RETRY_ANNOTATION];
    if (retry !== undefined && retry !== s.handledRequests.retry) {
      s.handledRequests.retry = retry;
      if (s.phase === 'RolledBack' || s.phase === 'Failed') {
        // Start the same revision again from the beginning; the plan is kept.
        for (const c of s.clusters ?? []) this.resetCluster(c);
        s.phase = 'Progressing';
        delete s.reason;
        delete s.completedAt;
        this.record(p, 'Normal', REASON.Retried, `retrying revision ${p.revision} from the first step`);
      } else if (s.phase === 'Paused' && this.pausedBy(s) !== REASON.PausedByUser) {
        for (const c of s.clusters ?? []) {
          if (c.lastGate) c.lastGate.consecutiveFailures = 0;
          if (c.phase === 'Paused') c.phase = 'Progressing';
        }
        s.phase = 'Progressing';
        delete s.reason;
        this.record(p, 'Normal', REASON.Retried, 'retrying after the gate pause; failure counts reset');
      }
    }

    const promote = ann[PROMOTE_ANNOTATION];
    if (promote !== undefined && promote !== s.handledRequests.promote) {
      s.handledRequests.promote = promote;
      const baking = (s.clusters ?? []).filter((c) => c.phase === 'Baking');
      // Backdating the bake start ends the bake now; a passing gate evaluation is still required.
      for (const c of baking) c.stepStartedAt = new Date(p.now.getTime() - this.bakeSeconds(p, c) * 1000).toISOString();
      this.record(p, 'Normal', REASON.Promoted, baking.length ? `skipping the rest of the bake on ${baking.map((c) => c.name).join(', ')}` : 'promote requested; no cluster is baking');
    }

    const paused = p.rollout.spec.paused;
    if (paused && s.phase === 'Progressing') {
      s.phase = 'Paused';
      this.setPausedBy(s, REASON.PausedByUser);
      this.record(p, 'Normal', REASON.PausedByUser, 'paused by spec.paused');
    } else if (!paused && s.phase === 'Paused' && this.pausedBy(s) === REASON.PausedByUser) {
      s.phase = 'Progressing';
      delete s.reason;
      this.record(p, 'Normal', REASON.Resumed, 'resumed');
    }
  }

  /** Probes reachability and evaluates the gates of every cluster running the new revision. */
  private async observeActiveClusters(p: Pass): Promise<void> {
    const s = p.status;
    if (s.phase !== 'Progressing' && s.phase !== 'Paused' && s.phase !== 'BreakGlass') return;
    const gates = p.rollout.spec.gates;
    for (const c of s.clusters ?? []) {
      const runsRevision = (c.nodesUpdated ?? 0) > 0 && c.phase !== 'RolledBack';
      if (!ACTIVE.includes(c.phase) && !runsRevision) continue;
      const client = p.clients.get(c.name);
      if (!client) {
        c.message = `cluster unavailable: ${p.unavailable.get(c.name) ?? 'unknown'}`;
        continue;
      }
      const probe = await client.probe();
      if (!probe.reachable) {
        if (c.reachable !== false) {
          c.unreachableSince = iso(p.now);
          this.record(p, 'Warning', REASON.ClusterUnreachable, `API server unreachable: ${probe.message ?? ''}`.trim(), c.name);
        }
        c.reachable = false;
        c.message = `API server unreachable since ${c.unreachableSince ?? iso(p.now)}: ${probe.message ?? ''}`.trim();
        p.requeue(Math.min(5000, gates.intervalSeconds * 1000));
        if (runsRevision) await this.maybeBreakGlass(p, c);
        continue;
      }
      if (c.reachable === false) this.record(p, 'Normal', REASON.Healthy, 'API server reachable again', c.name);
      c.reachable = true;
      delete c.unreachableSince;
      if (c.phase === 'BreakGlass') {
        // Recovery: the API server is back, so the bad revision is rolled back through it; the stop
        // files are cleared only after its last agent is gone (see rollBack).
        this.startRollback(p, REASON.BreakGlass, `${c.name}: API server back after break-glass; rolling back`);
        continue;
      }
      if (c.phase === 'Preflight' || s.phase === 'BreakGlass') continue;
      if (since(p.now, c.lastGate?.time) < gates.intervalSeconds) {
        p.requeue((gates.intervalSeconds - since(p.now, c.lastGate?.time)) * 1000);
        continue;
      }
      const target = p.targets.find((t) => t.name === c.name);
      if (!target) continue;
      const ev = await this.d.gates.evaluate({
        rollout: p.rollout,
        target,
        client,
        baseline: c.baseline,
        fraction: c.nodesTotal ? (c.nodesUpdated ?? 0) / c.nodesTotal : 0,
        consecutiveFailures: c.lastGate?.consecutiveFailures ?? 0,
      });
      if (ev.unreachable) {
        // The metrics scrape could not connect: that is the break-glass signal, not missing data.
        // (The probe answered moments ago, so this is the moment it went away.)
        c.unreachableSince = iso(p.now);
        this.record(p, 'Warning', REASON.ClusterUnreachable, `API server unreachable: ${ev.message ?? ''}`.trim(), c.name);
        c.reachable = false;
        p.requeue(Math.min(5000, gates.intervalSeconds * 1000));
        continue;
      }
      this.recordGate(p, c, ev);
      p.requeue(gates.intervalSeconds * 1000);
    }
  }

  /** Stores a gate verdict, counts consecutive failures, and trips the fleet-wide breaker when due. */
  private recordGate(p: Pass, c: ClusterStatus, ev: GateEvaluation): void {
    const gates = p.rollout.spec.gates;
    const prev = c.lastGate;
    const bad = ev.verdict !== 'Pass' && !(ev.verdict === 'NoData' && gates.onNoData === 'Ignore');
    const sameKind = prev?.verdict === ev.verdict;
    const consecutive = bad ? (sameKind ? (prev?.consecutiveFailures ?? 0) + 1 : 1) : 0;
    c.lastGate = { ...ev, time: iso(p.now), consecutiveFailures: consecutive };
    delete (c.lastGate as { unreachable?: boolean }).unreachable;
    if (prev?.verdict !== ev.verdict) {
      const reason = ev.verdict === 'Pass' ? REASON.GatePassed : ev.verdict === 'Fail' ? REASON.GateFailed : REASON.GateNoData;
      this.record(p, ev.verdict === 'Pass' ? 'Normal' : 'Warning', reason, ev.message ?? ev.verdict, c.name);
    }
    if (!bad || consecutive < gates.failureLimit || p.status.phase !== 'Progressing') return;
    const what = `${ev.verdict === 'Fail' ? 'gate failed' : 'no gate data'} on ${c.name} ${consecutive} times in a row: ${ev.message ?? ''}`.trim();
    const action = ev.verdict === 'Fail' ? gates.onFailure : gates.onNoData;
    this.haltFleet(p, c.name);
    if (action === 'Rollback') this.startRollback(p, ev.verdict === 'Fail' ? REASON.GateFailed : REASON.GateNoData, what);
    else {
      p.status.phase = 'Paused';
      this.setPausedBy(p.status, ev.verdict === 'Fail' ? REASON.GateFailed : REASON.GateNoData);
      this.record(p, 'Warning', ev.verdict === 'Fail' ? REASON.GateFailed : REASON.GateNoData, `${what}; paused (retry with the ${RETRY_ANNOTATION} annotation)`);
    }
  }

  /** The fleet-wide circuit breaker: every cluster still moving stops where it is. */
  private haltFleet(p: Pass, cause: string): void {
    for (const c of p.status.clusters ?? []) {
      if (ACTIVE.includes(c.phase)) {
        c.phase = 'Paused';
        c.message = `halted: gate breach on ${cause}`;
      }
    }
  }

  /** Moves the rollout forward: the first unfinished stage, up to maxConcurrentClusters at a time. */
  private async progress(p: Pass): Promise<void> {
    const s = p.status;
    const clusters = s.clusters ?? [];
    const stages = p.rollout.spec.strategy.stages;
    for (let i = 0; i < stages.length; i++) {
      const stage = stages[i] as StageSpec;
      const members = clusters.filter((c) => c.stage === stage.name);
      if (members.every((c) => c.phase === 'Succeeded')) continue;
      if (s.stage !== stage.name) {
        s.stage = stage.name;
        s.stageIndex = i;
        this.record(p, 'Normal', REASON.Progressing, `stage ${stage.name} started: ${members.map((c) => c.name).join(', ')}`);
      }
      // Clusters halted by a breach that was later retried resume here.
      for (const c of members) if (c.phase === 'Paused') c.phase = c.stepStartedAt ? 'Baking' : 'Progressing';
      let active = members.filter((c) => ACTIVE.includes(c.phase)).length;
      for (const c of members) {
        if (c.phase === 'Pending' && active < stage.maxConcurrentClusters) {
          c.phase = 'Preflight';
          c.revision = p.revision;
          c.message = 'preflight';
          active++;
          this.record(p, 'Normal', REASON.ClusterStarted, `cluster ${c.name} started (stage ${stage.name})`, c.name);
        }
      }
      for (const c of members) {
        if (s.phase !== 'Progressing') return; // a gate breach or failure in this pass stops everything
        if (ACTIVE.includes(c.phase)) await this.advanceCluster(p, c, stage);
      }
      return;
    }
    await this.finalize(p);
  }

  /** Moves one cluster at most one state forward. */
  private async advanceCluster(p: Pass, c: ClusterStatus, stage: StageSpec): Promise<void> {
    const client = p.clients.get(c.name);
    if (!client || c.reachable === false) {
      c.message = client ? c.message : `cluster unavailable: ${p.unavailable.get(c.name) ?? 'unknown'}`;
      p.requeue(5000);
      return;
    }
    try {
      if (c.phase === 'Preflight') await this.preflight(p, c, client, stage);
      else if (c.phase === 'Progressing') await this.relabelStep(p, c, client);
      else if (c.phase === 'Baking') await this.bake(p, c, client, stage);
    } catch (err) {
      // A transient API error: keep the state, say what happened, try again soon.
      c.message = `${c.phase ?? ''} error: ${errorMessage(err)}`;
      this.d.logger?.warn('cluster step failed', { cluster: c.name, phase: c.phase, error: errorMessage(err) });
      p.requeue(5000);
    }
  }

  /** Preflight: inventory, the previous revision, cleanup of superseded revisions, checks, objects, baseline. */
  private async preflight(p: Pass, c: ClusterStatus, client: ClusterClient, stage: StageSpec): Promise<void> {
    const ro = p.rollout;
    const ns = ro.spec.collector.namespace;
    const nodes = await client.listNodes();
    c.nodesTotal = nodes.length;
    await this.d.inventory?.record(p.rollout, c.name, nodes);
    const target = p.targets.find((t) => t.name === c.name);
    for (const check of this.d.options?.preflight ?? []) {
      const refusal = target ? await check(ro, target, nodes, client) : undefined;
      if (refusal) {
        c.phase = 'Failed';
        c.message = `preflight refused: ${refusal}`;
        p.status.phase = 'Failed';
        p.status.reason = REASON.PreflightFailed;
        p.status.message = `${c.name}: ${c.message}`;
        p.status.completedAt = iso(p.now);
        this.record(p, 'Warning', REASON.PreflightFailed, c.message, c.name);
        return;
      }
    }
    const owned = await client.listCollectorDaemonSets(ns, this.rolloutLabel(ro));
    const stable = owned.find((d) => d.stable && d.revision !== p.revision);
    c.previousRevision = stable?.revision ?? '';
    // A revision that is neither stable nor current was superseded mid-rollout: hand its nodes back.
    let busy = false;
    for (const n of nodes) {
      const r = n.labels[REVISION_LABEL];
      if (r && r !== p.revision && r !== c.previousRevision) {
        if (!this.takeRelabelToken(p, c.name)) {
          busy = true;
          break;
        }
        await client.setNodeRevision(n.name, c.previousRevision ? c.previousRevision : null);
      }
    }
    if (busy) {
      c.message = 'preflight: returning nodes of a superseded revision';
      p.requeue(this.relabelIntervalMs(p));
      return;
    }
    for (const d of owned) {
      if (d.revision !== p.revision && d.revision !== c.previousRevision) for (const ref of revisionRefs(ns, d.revision)) await client.delete(ref);
    }
    for (const obj of [...sharedObjects(ro), ...revisionObjects(ro, p.revision, false)]) await client.apply(obj);
    await this.beginStep(p, c, client, stage, 0);
  }

  /** Starts step `step`: baseline first (the state before the step), then relabelling begins. */
  private async beginStep(p: Pass, c: ClusterStatus, client: ClusterClient, stage: StageSpec, step: number): Promise<void> {
    const target = p.targets.find((t) => t.name === c.name);
    if (target) {
      const capture = await this.d.gates.captureBaseline({
        rollout: p.rollout,
        target,
        client,
        fraction: c.nodesTotal ? (c.nodesUpdated ?? 0) / c.nodesTotal : 0,
        consecutiveFailures: 0,
      });
      if (capture.retryAfterMs !== undefined) {
        // The step has not begun: this pass ends here and the next one comes back to this point (the
        // work before it is idempotent), so nothing is skipped or done twice.
        c.message = `step ${step + 1}/${stage.nodeSteps.length}: ${capture.message ?? 'measuring the baseline'}`;
        p.requeue(capture.retryAfterMs);
        return;
      }
      if (capture.baseline) c.baseline = capture.baseline;
    }
    c.phase = 'Progressing';
    c.step = step;
    c.stepPercent = stage.nodeSteps[step] ?? 100;
    c.stepBeganAt = iso(p.now);
    delete c.stepStartedAt;
    c.message = `step ${step + 1}/${stage.nodeSteps.length}: moving to ${c.stepPercent}% of nodes`;
    this.record(p, 'Normal', REASON.StepStarted, `${c.name}: step ${step + 1}/${stage.nodeSteps.length} (${c.stepPercent}% of nodes)`, c.name);
    p.requeue(0);
  }

  /** Labels the step's nodes (paced), then waits for their agents; then the bake starts. */
  private async relabelStep(p: Pass, c: ClusterStatus, client: ClusterClient): Promise<void> {
    const nodes = [...(await client.listNodes())].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    c.nodesTotal = nodes.length;
    await this.d.inventory?.record(p.rollout, c.name, nodes);
    const want = nodesForStep(c.stepPercent ?? 0, nodes.length);
    let labelled = nodes.filter((n) => n.labels[REVISION_LABEL] === p.revision).length;
    for (const n of nodes) {
      if (labelled >= want) break;
      if (n.labels[REVISION_LABEL] === p.revision) continue;
      if (!this.takeRelabelToken(p, c.name)) break;
      await client.setNodeRevision(n.name, p.revision);
      labelled++;
    }
    c.nodesUpdated = labelled;
    if (labelled < want) {
      c.message = `step ${(c.step ?? 0) + 1}: labelled ${labelled}/${want} nodes`;
      p.requeue(this.relabelIntervalMs(p));
      return;
    }
    const ds = (await client.listCollectorDaemonSets(p.rollout.spec.collector.namespace, this.rolloutLabel(p.rollout))).find(
      (d) => d.revision === p.revision,
    );
    const ready = ds ? ds.numberReady : 0;
    if (!ds || !ds.observed || ds.desiredNumberScheduled < labelled || ready < labelled) {
      c.message = `step ${(c.step ?? 0) + 1}: ${ready}/${labelled} agents ready`;
      if (since(p.now, c.stepBeganAt) > this.progressDeadline) {
        c.message = `step ${(c.step ?? 0) + 1}: only ${ready}/${labelled} agents ready after ${this.progressDeadline}s`;
        this.haltFleet(p, c.name);
        c.phase = 'Failed';
        this.startRollback(p, REASON.ProgressDeadlineExceeded, `${c.name}: ${c.message}`);
        return;
      }
      p.requeue(this.pollMs);
      return;
    }
    c.phase = 'Baking';
    c.stepStartedAt = iso(p.now);
    c.message = `step ${(c.step ?? 0) + 1}: ${labelled}/${nodes.length} nodes on ${p.revision}; baking`;
    this.record(p, 'Normal', REASON.StepBaking, `${c.name}: ${labelled}/${nodes.length} nodes on the new revision; baking`, c.name);
    p.requeue(0);
  }

  /** Bakes a step: long enough, and the latest gate verdict since the bake began is Pass. */
  private async bake(p: Pass, c: ClusterStatus, client: ClusterClient, stage: StageSpec): Promise<void> {
    const g = p.rollout.spec.gates;
    const need = this.bakeSeconds(p, c);
    const baked = since(p.now, c.stepStartedAt);
    if (baked < need) {
      c.message = `step ${(c.step ?? 0) + 1}: baking ${Math.floor(baked)}/${need}s`;
      p.requeue((need - baked) * 1000);
      return;
    }
    const gate = c.lastGate;
    const gateSinceBake = gate?.time && Date.parse(gate.time) >= Date.parse(c.stepStartedAt ?? '') ? gate : undefined;
    const ok = gateSinceBake && (gateSinceBake.verdict === 'Pass' || (gateSinceBake.verdict === 'NoData' && g.onNoData === 'Ignore'));
    if (!ok) {
      c.message = `step ${(c.step ?? 0) + 1}: bake done; waiting for a passing gate evaluation`;
      p.requeue(g.intervalSeconds * 1000);
      return;
    }
    const next = (c.step ?? 0) + 1;
    if (next >= stage.nodeSteps.length) {
      c.phase = 'Succeeded';
      c.message = `all ${c.nodesTotal ?? 0} nodes on ${p.revision}`;
      this.record(p, 'Normal', REASON.ClusterSucceeded, `${c.name}: all ${c.nodesTotal ?? 0} nodes on the new revision`, c.name);
      p.requeue(0);
      return;
    }
    if (g.prediction.enabled && this.d.gates.project) {
      const target = p.targets.find((t) => t.name === c.name);
      const proj = target
        ? await this.d.gates.project({ rollout: p.rollout, target, client, baseline: c.baseline, fraction: c.nodesTotal ? (c.nodesUpdated ?? 0) / c.nodesTotal : 0, consecutiveFailures: 0, projection: c.projection })
        : undefined;
      if (proj) {
        c.projection = proj;
        if (proj.verdict === 'Fail') {
          c.message = `next step refused: ${proj.message ?? 'projection exceeds the SLO'}`;
          this.haltFleet(p, c.name);
          p.status.phase = 'Paused';
          this.setPausedBy(p.status, REASON.ProjectionExceedsSLO);
          this.record(p, 'Warning', REASON.ProjectionExceedsSLO, `${c.name}: ${c.message}`, c.name);
          return;
        }
      }
    }
    await this.beginStep(p, c, client, stage, next);
  }

  /** All clusters succeeded: the new revision becomes stable everywhere and older ones are removed. */
  private async finalize(p: Pass): Promise<void> {
    const s = p.status;
    const ns = p.rollout.spec.collector.namespace;
    const pending: string[] = [];
    for (const c of s.clusters ?? []) {
      const client = p.clients.get(c.name);
      if (!client) {
        pending.push(c.name);
        continue;
      }
      try {
        for (const obj of revisionObjects(p.rollout, p.revision, true)) await client.apply(obj);
        for (const d of await client.listCollectorDaemonSets(ns, this.rolloutLabel(p.rollout))) {
          if (d.revision !== p.revision) for (const ref of revisionRefs(ns, d.revision)) await client.delete(ref);
        }
      } catch (err) {
        pending.push(`${c.name} (${errorMessage(err)})`);
      }
    }
    if (pending.length) {
      s.message = `all clusters on ${p.revision}; finishing cleanup on ${pending.join(', ')}`;
      p.requeue(10_000);
      return;
    }
    s.phase = 'Succeeded';
    s.reason = REASON.Succeeded;
    s.completedAt = iso(p.now);
    this.record(p, 'Normal', REASON.Succeeded, `revision ${p.revision} is on every node of ${s.clusters?.length ?? 0} clusters`);
  }

  /**
   * Break-glass: the new revision runs on a cluster whose API server has been unreachable for
   * unreachableAfterSeconds. Auto writes the stop files (once per revision); Manual, or no transport,
   * only reports what a person should run.
   */
  private async maybeBreakGlass(p: Pass, c: ClusterStatus): Promise<void> {
    const bg = p.rollout.spec.breakGlass;
    const down = since(p.now, c.unreachableSince);
    if (down < bg.unreachableAfterSeconds) {
      p.requeue((bg.unreachableAfterSeconds - down) * 1000);
      return;
    }
    if (c.breakGlass?.revision === p.revision && c.breakGlass.issuedAt && !c.breakGlass.clearedAt) return;
    const auto = bg.action === 'Auto' && this.d.breakGlass?.available(p.rollout);
    if (!auto) {
      const how = `kubectl tro break-glass ${p.rollout.metadata?.name ?? ''} --cluster ${c.name}`;
      const msg = `API server unreachable for ${Math.floor(down)}s with ${p.revision} on ${c.nodesUpdated ?? 0} nodes: break-glass needed (${bg.action === 'Auto' ? 'no transport configured' : 'action is Manual'}); run: ${how}`;
      if (c.message !== msg) this.record(p, 'Warning', REASON.BreakGlass, msg, c.name);
      c.message = msg;
      return;
    }
    this.haltFleet(p, c.name);
    const result = await this.d.breakGlass!.issue(p.rollout, c.name, p.revision, `API server unreachable for ${Math.floor(down)}s`);
    c.breakGlass = { ...result, revision: p.revision };
    c.phase = 'BreakGlass';
    c.message = `break-glass: stop files on ${result.nodesStopped ?? 0}/${result.nodesTargeted ?? 0} nodes (${result.nodesFailed ?? 0} failed, ${result.nodesTimedOut ?? 0} timed out)`;
    p.status.phase = 'BreakGlass';
    p.status.reason = REASON.BreakGlass;
    p.status.message = `${c.name}: ${c.message}`;
    this.record(p, 'Warning', REASON.BreakGlass, c.message, c.name);
  }

  private startRollback(p: Pass, reason: string, message: string): void {
    const s = p.status;
    s.phase = 'RollingBack';
    s.message = message;
    this.setPausedBy(s, reason);
    this.record(p, 'Warning', REASON.RollingBack, `rolling back: ${message}`);
  }

  /**
   * Rolls back touched clusters newest first, one at a time: its nodes lose the new revision's label
   * (paced) and fall back to the stable DaemonSet, then the new revision's objects are deleted.
   */
  private async rollBack(p: Pass): Promise<void> {
    const s = p.status;
    const ns = p.rollout.spec.collector.namespace;
    const touched = [...(s.clusters ?? [])].reverse().filter((c) => TOUCHED.includes(c.phase) || (c.nodesUpdated ?? 0) > 0);
    const c = touched.find((x) => x.phase !== 'RolledBack');
    if (!c) {
      s.phase = 'RolledBack';
      s.completedAt = iso(p.now);
      this.record(p, 'Warning', REASON.RolledBack, `rolled back: ${s.message ?? ''}`.trim());
      return;
    }
    const client = p.clients.get(c.name);
    if (!client) {
      c.message = `rollback waiting: cluster unavailable: ${p.unavailable.get(c.name) ?? 'unknown'}`;
      p.requeue(10_000);
      return;
    }
    if (c.phase !== 'RollingBack') {
      c.phase = 'RollingBack';
      this.record(p, 'Warning', REASON.ClusterRollingBack, `${c.name}: rolling back to ${c.previousRevision || 'no collector'}`, c.name);
    }
    try {
      const nodes = await client.listNodes();
      let left = nodes.filter((n) => n.labels[REVISION_LABEL] === p.revision).length;
      for (const n of nodes) {
        if (n.labels[REVISION_LABEL] !== p.revision) continue;
        if (!this.takeRelabelToken(p, c.name)) break;
        await client.setNodeRevision(n.name, c.previousRevision ? c.previousRevision : null);
        left--;
      }
      c.nodesUpdated = left;
      if (left > 0) {
        c.message = `rolling back: ${left} nodes still on ${p.revision}`;
        p.requeue(this.relabelIntervalMs(p));
        return;
      }
      const ds = (await client.listCollectorDaemonSets(ns, this.rolloutLabel(p.rollout))).find((d) => d.revision === p.revision);
      if (ds && (!ds.observed || ds.desiredNumberScheduled > 0 || ds.numberReady > 0)) {
        c.message = `rolling back: waiting for ${ds.numberReady} agents of ${p.revision} to stop`;
        p.requeue(this.pollMs);
        return;
      }
      for (const ref of revisionRefs(ns, p.revision)) await client.delete(ref);
      if (c.breakGlass?.issuedAt && !c.breakGlass.clearedAt && this.d.breakGlass) {
        // Only now, with no agent of the bad revision left, may the stop files go.
        const cleared = await this.d.breakGlass.clear(p.rollout, c.name, c.breakGlass.revision ?? p.revision);
        if (!cleared.ok) {
          c.message = `rolling back: clearing stop files failed: ${cleared.message}`;
          p.requeue(10_000);
          return;
        }
        c.breakGlass.clearedAt = iso(p.now);
        this.record(p, 'Normal', REASON.BreakGlass, `${c.name}: stop files cleared (${cleared.message})`, c.name);
      }
      if (!c.previousRevision) {
        // There was no collector before this rollout: remove what it added, except the namespace,
        // which config/target-rbac owns (the operator's own ServiceAccount in the target lives there).
        for (const obj of sharedObjects(p.rollout).reverse().filter((o) => o.kind !== 'Namespace')) {
          await client.delete({ apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, namespace: obj.metadata.namespace });
        }
      }
      c.phase = 'RolledBack';
      c.message = `rolled back to ${c.previousRevision || 'no collector'}`;
      this.record(p, 'Normal', REASON.ClusterRolledBack, `${c.name}: ${c.message}`, c.name);
      p.requeue(0);
    } catch (err) {
      c.message = `rollback error: ${errorMessage(err)}`;
      p.requeue(5000);
    }
  }

  /** Derives phase-level fields and the conditions from the clusters. */
  private summarize(p: Pass): void {
    const s = p.status;
    const gen = p.rollout.metadata?.generation;
    const clusters = s.clusters ?? [];
    s.observedGeneration = gen;
    s.progress = `${clusters.filter((c) => c.phase === 'Succeeded').length}/${clusters.length} clusters`;
    const verdicts = clusters.filter((c) => c.lastGate && c.phase !== 'RolledBack' && c.phase !== 'Pending').map((c) => c.lastGate?.verdict);
    s.health = verdicts.includes('Fail') ? 'Fail' : verdicts.includes('NoData') ? 'NoData' : verdicts.includes('Pass') ? 'Pass' : (s.health ?? 'Unknown');
    const unreachable = clusters.filter((c) => c.reachable === false).map((c) => c.name);
    const unavailable = [...p.unavailable.keys()].filter((k) => k !== '*');
    if (s.phase === 'Progressing') {
      const moving = clusters.filter((c) => ACTIVE.includes(c.phase));
      s.message = moving.length ? moving.map((c) => `${c.name}: ${c.message ?? c.phase}`).join('; ') : s.message;
    } else if (s.phase === 'Paused') {
      s.message = `paused (${this.pausedBy(s)})${s.message && !s.message.startsWith('paused') ? `: ${s.message}` : ''}`;
    } else if (s.phase === 'Succeeded') {
      s.message = `revision ${p.revision} on all ${clusters.length} clusters`;
    }

    const conds: Condition[] = s.conditions ?? [];
    const set = (type: string, status: Condition['status'], reason: string, message: string) =>
      setCondition(conds, { type, status, reason, message, observedGeneration: gen }, p.now);
    const phase = s.phase ?? 'Pending';
    const why = this.pausedBy(s);
    set(CONDITION.Ready, phase === 'Succeeded' ? 'True' : 'False', phase === 'Succeeded' ? REASON.Succeeded : phase, s.message ?? phase);
    const progressing = phase === 'Pending' || phase === 'Progressing' || phase === 'RollingBack';
    set(CONDITION.Progressing, progressing ? 'True' : 'False', progressing ? (phase === 'RollingBack' ? REASON.RollingBack : REASON.Progressing) : phase, s.message ?? phase);
    set(CONDITION.Paused, phase === 'Paused' ? 'True' : 'False', phase === 'Paused' ? why : REASON.Progressing, phase === 'Paused' ? (s.message ?? 'paused') : 'not paused');
    const degradedWhy: string[] = [];
    if (unavailable.length) degradedWhy.push(`unavailable: ${unavailable.map((n) => `${n} (${p.unavailable.get(n) ?? ''})`).join(', ')}`);
    if (p.unavailable.has('*')) degradedWhy.push(p.unavailable.get('*') as string);
    if (unreachable.length) degradedWhy.push(`unreachable: ${unreachable.join(', ')}`);
    if (phase === 'RolledBack' || phase === 'RollingBack' || phase === 'Failed' || phase === 'BreakGlass') degradedWhy.push(s.message ?? phase);
    if (s.health === 'Fail') degradedWhy.push('a health gate is failing');
    const degradedReason = unavailable.length || p.unavailable.has('*') ? REASON.ClusterUnavailable : unreachable.length ? REASON.ClusterUnreachable : s.health === 'Fail' && progressing ? REASON.GateFailed : phase === 'Failed' ? REASON.Failed : why || phase;
    set(CONDITION.Degraded, degradedWhy.length ? 'True' : 'False', degradedWhy.length ? degradedReason : REASON.Healthy, degradedWhy.length ? degradedWhy.join('; ') : 'all targets healthy');
    s.conditions = conds;
  }

  // ---- helpers ------------------------------------------------------------------------------------

  /** The bake a cluster's current step needs (bakeSeconds or the signal lag, the longer). */
  private bakeSeconds(p: Pass, c: ClusterStatus): number {
    const g = p.rollout.spec.gates;
    const stage = p.rollout.spec.strategy.stages.find((x) => x.name === c.stage);
    return effectiveBakeSeconds(stage?.bakeSeconds ?? 0, {
      cacheTTLSeconds: g.coreDNS.cacheTTLSeconds,
      scrapeIntervalSeconds: g.scrapeIntervalSeconds,
      windowSeconds: g.windowSeconds,
    });
  }

  private rolloutLabel(ro: TelemetryRollout): string {
    return rolloutLabelValue(ro.metadata?.namespace ?? 'default', ro.metadata?.name ?? '');
  }

  /**
   * Relabel pacing: at most nodeRelabelQPS relabels per second per cluster, with a burst of one second's
   * worth. In memory on purpose: pacing protects the control plane, it carries no rollout state.
   */
  private takeRelabelToken(p: Pass, cluster: string): boolean {
    const qps = p.rollout.spec.strategy.nodeRelabelQPS;
    const now = p.now.getTime();
    const interval = 1000 / qps;
    const burst = Math.max(1, qps);
    const last = this.lastRelabel.get(cluster) ?? now - burst * interval;
    const next = Math.max(last, now - burst * interval) + interval;
    if (next > now) return false;
    this.lastRelabel.set(cluster, next);
    return true;
  }

  private relabelIntervalMs(p: Pass): number {
    return Math.ceil(1000 / p.rollout.spec.strategy.nodeRelabelQPS);
  }

  private resetCluster(c: ClusterStatus): void {
    c.phase = 'Pending';
    c.nodesUpdated = 0;
    delete c.step;
    delete c.stepPercent;
    delete c.stepBeganAt;
    delete c.stepStartedAt;
    delete c.lastGate;
    delete c.baseline;
    delete c.projection;
    c.message = 'retrying';
  }

  /** Why the rollout is in its phase (status.reason). */
  private pausedBy(s: TelemetryRolloutStatus): string {
    return s.reason ?? '';
  }

  private setPausedBy(s: TelemetryRolloutStatus, reason: string): void {
    s.reason = reason;
  }

  /** Records a notable event in status.history (bounded) and as a Kubernetes Event. */
  private record(p: Pass, type: 'Normal' | 'Warning', reason: string, message: string, cluster?: string): void {
    const h: HistoryEntry = { time: iso(p.now), reason, message };
    if (cluster) h.cluster = cluster;
    const history = (p.status.history ??= []);
    history.push(h);
    if (history.length > this.historyLimit) history.splice(0, history.length - this.historyLimit);
    p.events.push({ type, reason, message: cluster && !message.startsWith(cluster) ? `${cluster}: ${message}` : message });
    this.d.logger?.info(message, { rollout: `${p.rollout.metadata?.namespace ?? ''}/${p.rollout.metadata?.name ?? ''}`, cluster, reason });
  }
}

/**
 * The stand-in gate evaluator used until the health-gates issue lands: it measures NOTHING and always
 * passes. Its name says so, status says so (every verdict's message), and `measures` is false.
 */
export class PassThroughGateEvaluatorUntilGatesLand implements GateEvaluator {
  readonly measures = false;
  async captureBaseline(): Promise<BaselineCapture> {
    return {};
  }
  async evaluate(): Promise<GateEvaluation> {
    return { verdict: 'Pass', message: 'pass-through gate: nothing measured (health gates not implemented yet)', measurements: {}, thresholds: {} };
  }
}
