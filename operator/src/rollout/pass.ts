/**
 * The working state of one reconcile pass and the context every step of it shares: the dependencies,
 * the tunables, and the one place where phases change (through the machine's table) and history is
 * recorded.
 */
import type { ClusterStatus, HistoryEntry, TelemetryRollout, TelemetryRolloutStatus } from '../api/types.generated.js';
import type { Clock } from '#core/clock.js';
import { applyClusterEvent, applyRolloutEvent, type BreachPolicy, type ClusterEvent, type RolloutEvent } from './machine.js';
import type {
  BreakGlassActuator,
  ClusterClient,
  ClusterClientFactory,
  EventRecorder,
  GateEvaluator,
  InventoryRecorder,
  NodeInfo,
  ResolvedTarget,
  StatusWriter,
} from './interfaces.js';
import { rolloutLabelValue } from './revision.js';

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
export type PreflightCheck = (
  rollout: TelemetryRollout,
  target: ResolvedTarget,
  nodes: NodeInfo[],
  client: ClusterClient,
) => Promise<string | undefined> | string | undefined;

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

/**
 * Relabel pacing: at most nodeRelabelQPS relabels per second per cluster, with a burst of one second's
 * worth. In memory on purpose: pacing protects the control plane, it carries no rollout state, and
 * losing it on a restart costs one burst, nothing else.
 */
export class RelabelPacer {
  private readonly last = new Map<string, number>();

  /** Takes a token for one relabel on `cluster` at `now`, or returns false when the budget is spent. */
  take(cluster: string, now: number, qps: number): boolean {
    const interval = 1000 / qps;
    const burst = Math.max(1, qps);
    const last = this.last.get(cluster) ?? now - burst * interval;
    const next = Math.max(last, now - burst * interval) + interval;
    if (next > now) return false;
    this.last.set(cluster, next);
    return true;
  }
}

/** What every step of a pass shares across passes: dependencies, tunables, pacing. */
export interface ReconcileContext {
  readonly d: ReconcilerDeps;
  readonly progressDeadlineSeconds: number;
  readonly pollMs: number;
  readonly historyLimit: number;
  readonly pacer: RelabelPacer;
  /**
   * The latest pod placement seen per rollout and cluster (node → revisions) and when: the inventory
   * lists pods at most every {@link POD_LIST_INTERVAL_MS}, not after every relabel batch (on a 5,000-node
   * cluster a pod list is megabytes). Only an optimisation: a restart lists again.
   */
  readonly pods: Map<string, { at: number; runs: Map<string, Set<string>>; watchers: Set<string> }>;
}

/** Probes in flight at once in a pass (a fleet of hundreds of clusters is probed in a few timeouts). */
export const PROBE_CONCURRENCY = 32;

/** Shortest time between two pod lists of one cluster for the inventory. */
export const POD_LIST_INTERVAL_MS = 30_000;

/** Builds the context with the defaults of ReconcilerOptions. */
export function newContext(deps: ReconcilerDeps): ReconcileContext {
  return {
    d: deps,
    progressDeadlineSeconds: deps.options?.progressDeadlineSeconds ?? 600,
    pollMs: deps.options?.pollMs ?? 2000,
    historyLimit: deps.options?.historyLimit ?? 100,
    pacer: new RelabelPacer(),
    pods: new Map(),
  };
}

/** An event to emit once the status is written. */
export interface PendingEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** Per-pass working state: the rollout, its status being built, and what the pass learned. */
export class Pass {
  readonly status: TelemetryRolloutStatus;
  readonly events: PendingEvent[] = [];
  /** Shortest requeue any part of the pass asked for. */
  requeueMs: number | undefined;
  /** Clients by cluster name. */
  readonly clients = new Map<string, ClusterClient>();
  /** Clusters without a client, with the reason. */
  readonly unavailable = new Map<string, string>();
  /** Why the targets could not be resolved at all (a selector over Secrets that failed), if so. */
  targetsError: string | undefined;
  targets: ResolvedTarget[] = [];

  readonly ctx: ReconcileContext;
  readonly rollout: TelemetryRollout;
  readonly now: Date;
  /**
   * The candidate revision: the hash of the spec's collector, or the current one while a spec change
   * waits for an incident to end (set once, before anything acts on it; see deferredRevision).
   */
  revision: string;

  /**
   * Set while a new revision (a spec edit) waits for an open incident of the current one to end (see
   * {@link openIncident}): this pass works on the current revision.
   */
  deferredRevision?: { revision: string; clusters: string[] };
  constructor(ctx: ReconcileContext, rollout: TelemetryRollout, now: Date, revision: string) {
    this.ctx = ctx;
    this.rollout = rollout;
    this.now = now;
    this.revision = revision;
    this.status = JSON.parse(JSON.stringify(rollout.status ?? {})) as TelemetryRolloutStatus;
  }

  /** Asks the queue to come back within `ms` (the shortest request of the pass wins). */
  requeue(ms: number): void {
    const m = Math.max(0, Math.round(ms));
    this.requeueMs = this.requeueMs === undefined ? m : Math.min(this.requeueMs, m);
  }

  /** The label value that marks this rollout's objects in the targets. */
  get rolloutLabel(): string {
    return rolloutLabelValue(this.rollout.metadata?.namespace ?? 'default', this.rollout.metadata?.name ?? '');
  }

  /** The resolved target of a cluster, if it is still a target. */
  target(name: string): ResolvedTarget | undefined {
    return this.targets.find((t) => t.name === name);
  }

  /** The candidate's share of a cluster's nodes (what the gates scale their expectations by). */
  fraction(c: ClusterStatus): number {
    return c.nodesTotal ? (c.nodesUpdated ?? 0) / c.nodesTotal : 0;
  }

  /**
   * Moves the rollout's phase along the table's edge for `event` (throws on a non-edge). status.reason
   * says why the rollout is in its phase: a change of phase sets it to `reason`, or removes it when none
   * is given; an edge back to the same phase leaves it alone.
   */
  rolloutEvent(event: RolloutEvent, reason?: string, policy?: BreachPolicy): void {
    const from = this.status.phase ?? 'Pending';
    const to = applyRolloutEvent(this.status, event, policy);
    if (to === from) return;
    if (reason) this.status.reason = reason;
    else delete this.status.reason;
  }

  /** Moves a cluster's phase along the table's edge for `event` (throws on a non-edge). */
  clusterEvent(c: ClusterStatus, event: ClusterEvent): void {
    applyClusterEvent(c, event);
  }

  /** Records a notable event in status.history (bounded), as a Kubernetes Event and in the log. */
  record(type: 'Normal' | 'Warning', reason: string, message: string, cluster?: string): void {
    const h: HistoryEntry = { time: iso(this.now), reason, message };
    if (cluster) h.cluster = cluster;
    const history = (this.status.history ??= []);
    history.push(h);
    if (history.length > this.ctx.historyLimit) history.splice(0, history.length - this.ctx.historyLimit);
    this.events.push({ type, reason, message: cluster && !message.startsWith(cluster) ? `${cluster}: ${message}` : message });
    this.ctx.d.logger?.info(message, { rollout: `${this.rollout.metadata?.namespace ?? ''}/${this.rollout.metadata?.name ?? ''}`, cluster, reason });
  }

  /** Takes a relabel token for a cluster (see RelabelPacer). */
  takeRelabelToken(cluster: string): boolean {
    return this.ctx.pacer.take(cluster, this.now.getTime(), this.rollout.spec.strategy.nodeRelabelQPS);
  }

  /** How long to wait for the next relabel token. */
  relabelIntervalMs(): number {
    return Math.ceil(1000 / this.rollout.spec.strategy.nodeRelabelQPS);
  }
}

/** An RFC 3339 timestamp. */
export const iso = (d: Date): string => d.toISOString();
/** Seconds from `t` to `now` (Infinity when `t` is unset). */
export const since = (now: Date, t: string | undefined): number => (t ? (now.getTime() - Date.parse(t)) / 1000 : Infinity);
