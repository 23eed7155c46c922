/**
 * The operator's own Prometheus metrics (prom-client), on a registry per manager: no global state, so
 * tests can create as many as they like and production exposes exactly one.
 *
 * | metric | type | labels |
 * | --- | --- | --- |
 * | `tro_reconcile_total` | counter | `result`: success, requeue, error, terminal |
 * | `tro_reconcile_duration_seconds` | histogram | |
 * | `tro_reconcile_errors_total` | counter | (error + terminal) |
 * | `tro_workqueue_depth` | gauge | (keys ready to process, all queues) |
 * | `tro_leader` | gauge | 1 while this process leads |
 * | `tro_cluster_api_requests_total` | counter | `cluster`, `verb`, `resource`, `code` |
 * | `tro_rollout_phase` | gauge | `namespace`, `name`, `phase` (1 for the current phase, 0 for the others) |
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { TelemetryRolloutStatus } from '../api/types.generated.js';
import { statusCode } from './kube.js';
import type { ReconcileOutcome } from './workqueue.js';

/** A rollout phase as the API defines it. */
export type RolloutPhase = NonNullable<TelemetryRolloutStatus['phase']>;

/** Every phase, so `tro_rollout_phase` reports 0 for the phases a rollout is not in (kube-state-metrics style). */
export const ROLLOUT_PHASES: readonly RolloutPhase[] = ['Pending', 'Progressing', 'Paused', 'RollingBack', 'RolledBack', 'Succeeded', 'Failed', 'BreakGlass'];

/** Labels of one API request the operator made to a target cluster. */
export interface ClusterApiRequest {
  /** Target cluster name (as in the rollout spec). */
  cluster: string;
  /** Lower-case Kubernetes verb: get, list, watch, create, update, patch, delete, apply. */
  verb: string;
  /** Resource (plural), e.g. `nodes`, `daemonsets`, or a non-resource path like `/metrics`. */
  resource: string;
  /** HTTP status as a string, or `<error>` when no response came back (client-go's convention). */
  code: string;
}

/** Options of {@link ControllerMetrics}. */
export interface ControllerMetricsOptions {
  /** Also collect prom-client's default process metrics (CPU, RSS, event loop lag, GC). Default false. */
  defaultMetrics?: boolean;
}

/** Reconcile duration buckets: 5 ms to 60 s, as controller-runtime's. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The metrics of one manager and the helpers that record them. */
export class ControllerMetrics {
  /** The registry to expose (`/metrics`). */
  readonly registry: Registry;
  private readonly reconcileTotal: Counter<'result'>;
  private readonly reconcileDuration: Histogram;
  private readonly reconcileErrors: Counter;
  private readonly leader: Gauge;
  private readonly clusterApiRequests: Counter<'cluster' | 'verb' | 'resource' | 'code'>;
  private readonly rolloutPhase: Gauge<'namespace' | 'name' | 'phase'>;
  private readonly breakGlassNeeded: Gauge<'namespace' | 'name'>;
  private readonly queues: Array<{ len(): number }> = [];

  constructor(opts: ControllerMetricsOptions = {}) {
    const registry = new Registry();
    this.registry = registry;
    this.reconcileTotal = new Counter({
      name: 'tro_reconcile_total',
      help: 'Reconciles by result (success, requeue, error, terminal).',
      labelNames: ['result'],
      registers: [registry],
    });
    this.reconcileDuration = new Histogram({
      name: 'tro_reconcile_duration_seconds',
      help: 'Duration of reconciles.',
      buckets: DURATION_BUCKETS,
      registers: [registry],
    });
    this.reconcileErrors = new Counter({
      name: 'tro_reconcile_errors_total',
      help: 'Reconciles that failed (retried or terminal).',
      registers: [registry],
    });
    const queues = this.queues;
    new Gauge({
      name: 'tro_workqueue_depth',
      help: 'Keys waiting to be reconciled (excludes keys in progress and delayed retries).',
      registers: [registry],
      collect() {
        this.set(queues.reduce((sum, q) => sum + q.len(), 0));
      },
    });
    this.leader = new Gauge({ name: 'tro_leader', help: '1 while this replica is the leader, else 0.', registers: [registry] });
    this.leader.set(0);
    this.clusterApiRequests = new Counter({
      name: 'tro_cluster_api_requests_total',
      help: 'API requests the operator made to target clusters, by cluster, verb, resource and HTTP code.',
      labelNames: ['cluster', 'verb', 'resource', 'code'],
      registers: [registry],
    });
    this.rolloutPhase = new Gauge({
      name: 'tro_rollout_phase',
      help: 'The phase of each TelemetryRollout: 1 for the current phase, 0 for the others.',
      labelNames: ['namespace', 'name', 'phase'],
      registers: [registry],
    });
    this.breakGlassNeeded = new Gauge({
      name: 'tro_rollout_break_glass_needed',
      help: "1 while a rollout's BreakGlassNeeded condition is True: a target is unreachable past unreachableAfterSeconds with the revision on it and no confirmed stop (alert on it: Manual and afterSuccess: Manual wait for a person).",
      labelNames: ['namespace', 'name'],
      registers: [registry],
    });
    if (opts.defaultMetrics) collectDefaultMetrics({ register: registry });
  }

  /** Records one reconcile; fits `runWorkers`' `onResult`. */
  observeReconcile(outcome: ReconcileOutcome, durationSeconds: number): void {
    this.reconcileTotal.inc({ result: outcome });
    this.reconcileDuration.observe(durationSeconds);
    if (outcome === 'error' || outcome === 'terminal') this.reconcileErrors.inc();
  }

  /** Includes a queue in `tro_workqueue_depth` (read at scrape time). */
  trackQueue(queue: { len(): number }): void {
    this.queues.push(queue);
  }

  /** Sets `tro_leader`. */
  setLeader(leading: boolean): void {
    this.leader.set(leading ? 1 : 0);
  }

  /** Counts one API request to a target cluster. */
  recordClusterApiRequest(req: ClusterApiRequest): void {
    this.clusterApiRequests.inc({ ...req });
  }

  /**
   * Runs one API call to a target cluster and counts it: `successCode` (default `200`) when it
   * resolves, the HTTP status of the error when it has one, else `<error>`. The error is rethrown
   * unchanged.
   */
  async instrumentClusterCall<T>(labels: Omit<ClusterApiRequest, 'code'>, call: () => Promise<T>, successCode = '200'): Promise<T> {
    try {
      const result = await call();
      this.recordClusterApiRequest({ ...labels, code: successCode });
      return result;
    } catch (err) {
      this.recordClusterApiRequest({ ...labels, code: String(statusCode(err) ?? '<error>') });
      throw err;
    }
  }

  /** Sets `tro_rollout_phase` for a rollout: 1 for `phase`, 0 for every other known phase. */
  setRolloutPhase(namespace: string, name: string, phase: RolloutPhase): void {
    for (const p of ROLLOUT_PHASES) this.rolloutPhase.set({ namespace, name, phase: p }, p === phase ? 1 : 0);
  }

  /** Sets `tro_rollout_break_glass_needed` for a rollout. */
  setBreakGlassNeeded(namespace: string, name: string, needed: boolean): void {
    this.breakGlassNeeded.set({ namespace, name }, needed ? 1 : 0);
  }

  /** Removes a deleted rollout's `tro_rollout_phase` and `tro_rollout_break_glass_needed` series. */
  deleteRollout(namespace: string, name: string): void {
    for (const p of ROLLOUT_PHASES) this.rolloutPhase.remove({ namespace, name, phase: p });
    this.breakGlassNeeded.remove({ namespace, name });
  }

  /** The exposition text (for `/metrics`). */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /** The Content-Type of {@link ControllerMetrics.metrics}. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
