/**
 * The narrow interfaces through which the rollout reconciler talks to the world. The same reconciler
 * runs against real clusters (client-node implementations in operator/src/cluster/) and in-memory fakes
 * (unit tests, testkit/operator/rollout/fakes.ts).
 */
import type { Baseline, BreakGlassStatus, GateResult, Projection, TelemetryRollout, TelemetryRolloutStatus } from '../api/types.generated.js';

/** The node label whose value names the collector revision a node runs. */
export const REVISION_LABEL = 'telemetry.rollout.dev/revision';
/** Label on every object the operator owns in a target: the owning rollout, as `namespace.name`. */
export const ROLLOUT_LABEL = 'telemetry.rollout.dev/rollout';
/** Label on owned DaemonSets and ConfigMaps: the revision they belong to. */
export const OBJECT_REVISION_LABEL = 'telemetry.rollout.dev/collector-revision';
/** Label on the DaemonSet of the stable revision, which also takes unlabelled nodes. */
export const STABLE_LABEL = 'telemetry.rollout.dev/stable';
/** The one field manager of every server-side apply the operator makes. */
export const FIELD_MANAGER = 'telemetry-rollout-operator';

/** What the operator needs to know of a target node. */
export interface NodeInfo {
  name: string;
  /** Only the labels that matter (the revision label and the usual topology labels). */
  labels: Record<string, string>;
  addresses: Array<{ type: string; address: string }>;
  ready: boolean;
  /**
   * Revisions of the rollout's pods seen running on the node (DaemonSet agents and the cluster-mode
   * watcher), from the pod list; set only in inventories. Break-glass targets a node that runs a pod of
   * the revision even when its label says otherwise (the watcher runs wherever it is scheduled).
   */
  runs?: string[];
}

/** A pod of the collector (a node agent or the cluster-mode watcher), as break-glass needs to know it. */
export interface CollectorPod {
  name: string;
  /** The node it is scheduled on ('' while unscheduled). */
  node: string;
  /** Its revision (the object revision label). */
  revision: string;
  /** `node` for a DaemonSet agent, `cluster` for the watcher. */
  mode: 'node' | 'cluster';
}

/** A collector DaemonSet the operator owns in a target, with its rollout status. */
export interface CollectorDaemonSet {
  name: string;
  revision: string;
  stable: boolean;
  desiredNumberScheduled: number;
  numberReady: number;
  /** Whether the DaemonSet controller has seen the latest spec (status.observedGeneration). */
  observed: boolean;
}

/** A Kubernetes object to apply (server-side apply), a pure function of the spec. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** Identifies an object to delete. */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
}

/** What a probe of a target's API server found. */
export interface ProbeResult {
  reachable: boolean;
  /** The API server answered but refused the kubeconfig's credentials (or failed TLS verification). */
  credentialsRejected?: boolean;
  message?: string;
}

/**
 * One target cluster, as the reconciler sees it. Implementations must be safe to call repeatedly
 * (every call is idempotent) and must never put credentials in errors.
 */
export interface ClusterClient {
  /** The cluster's name in the rollout. */
  readonly name: string;
  /**
   * Probes the API server (/readyz with a short timeout). Never throws. An API server that answers
   * but rejects the kubeconfig (HTTP 401/403, or its certificate fails verification) is reachable
   * with `credentialsRejected`: that is a broken Secret, not an outage.
   */
  probe(signal?: AbortSignal): Promise<ProbeResult>;
  /** Every node, with the labels and addresses that matter. */
  listNodes(signal?: AbortSignal): Promise<NodeInfo[]>;
  /** Sets (revision) or removes (null) the revision label of one node. */
  setNodeRevision(node: string, revision: string | null, signal?: AbortSignal): Promise<void>;
  /** Server-side applies an object with the operator's field manager. */
  apply(obj: KubeObject, signal?: AbortSignal): Promise<void>;
  /** Deletes an object; an object that is already gone is not an error. */
  delete(ref: ObjectRef, signal?: AbortSignal): Promise<void>;
  /** The collector DaemonSets of one rollout in a namespace. */
  listCollectorDaemonSets(namespace: string, rollout: string, signal?: AbortSignal): Promise<CollectorDaemonSet[]>;
  /**
   * The collector's pods in a namespace (every revision, terminating ones included: a pod that has
   * not exited still runs the agent).
   */
  listCollectorPods(namespace: string, signal?: AbortSignal): Promise<CollectorPod[]>;
  /** GETs a raw API server path such as /metrics. */
  getRaw(path: string, signal?: AbortSignal): Promise<string>;
}

/** Why a cluster client could not be had: the condition the rollout shows (never the Secret's content). */
export class ClusterUnavailableError extends Error {
  readonly reason: string;
  readonly cluster: string;
  constructor(cluster: string, reason: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ClusterUnavailableError';
    this.cluster = cluster;
    this.reason = reason;
  }
}

/** A target as resolved from the spec: explicit entry or selected Secret. */
export interface ResolvedTarget {
  name: string;
  secretName: string;
  secretKey: string;
  metrics?: { prometheusURL?: string; coreDNSMetricsURL?: string };
}

/** Gives the client of a target, building it from its kubeconfig Secret (cached per Secret version). */
export interface ClusterClientFactory {
  /** Resolves spec.targets to the list of targets (reading Secrets for a selector). */
  resolveTargets(rollout: TelemetryRollout): Promise<ResolvedTarget[]>;
  /** The client of one target; throws ClusterUnavailableError with a clear reason. */
  client(rollout: TelemetryRollout, target: ResolvedTarget): Promise<ClusterClient>;
}

/** What the gate evaluator is told about the cluster being evaluated. */
export interface GateContext {
  rollout: TelemetryRollout;
  target: ResolvedTarget;
  client: ClusterClient;
  /** The baseline captured before the current step, if any. */
  baseline?: Baseline;
  /** Fraction (0..1) of the cluster's nodes on the new revision. */
  fraction: number;
  /** Consecutive failures so far, from status. */
  consecutiveFailures: number;
  /** The previous projection of this cluster (with its points), from status. */
  projection?: Projection;
  signal?: AbortSignal;
}

/** One gate evaluation: verdict, measurements and thresholds (GateResult of the API). */
export type GateEvaluation = GateResult & {
  verdict: 'Pass' | 'Fail' | 'NoData';
  unreachable?: boolean;
  /**
   * No verdict yet: call again after this long. The evaluator's first scrape of a target it has never
   * measured (a new operator process, mid-step) only starts a window; the reconciler neither records nor
   * counts it, so a restart cannot pause or roll back a rollout on its own.
   */
  retryAfterMs?: number;
};

/**
 * The outcome of {@link GateEvaluator.captureBaseline}: a baseline, none (the step goes on under the
 * absolute SLOs only), or a request to call again after `retryAfterMs` before the step begins. The
 * reconciler requeues rather than sleeping in its pass, so a worker is never held for a warm-up.
 */
export interface BaselineCapture {
  baseline?: Baseline;
  /** Call again after this long; the step has not begun. */
  retryAfterMs?: number;
  /** Why the caller should wait, for the cluster's status message. */
  message?: string;
}

/** Decides whether a cluster's control plane is healthy enough to go on. */
export interface GateEvaluator {
  /** Whether this evaluator really measures anything (false only for the pass-through stand-in). */
  readonly measures: boolean;
  /**
   * Measures the signals before a step, to be stored as the step's baseline. A source that needs more
   * time (a scraping source's first scrape) asks to be called again later instead of blocking the pass.
   */
  captureBaseline(ctx: GateContext): Promise<BaselineCapture>;
  /** Evaluates the gates now. Never throws: failures to measure are NoData. */
  evaluate(ctx: GateContext): Promise<GateEvaluation>;
  /** Projects the load at 100 % of the nodes, before moving on to the next step (optional). */
  project?(ctx: GateContext): Promise<Projection | undefined>;
}

/** Writes the status subresource; conflicts (stale resourceVersion) throw so the pass is retried. */
export interface StatusWriter {
  writeStatus(rollout: TelemetryRollout, status: TelemetryRolloutStatus): Promise<void>;
}

/** Emits Kubernetes Events on a rollout. Never throws (events are best effort). */
export interface EventRecorder {
  event(rollout: TelemetryRollout, type: 'Normal' | 'Warning', reason: string, message: string): void;
}

/** What {@link BreakGlassActuator.clear} says. */
export interface ClearResult {
  ok: boolean;
  message: string;
  /** An attempt is under way: call again soon. */
  inProgress?: boolean;
}

/** Options of {@link BreakGlassActuator.issue}. */
export interface IssueOptions {
  /** The stop's first `issuedAt` (from status): a later attempt, even after a restart, writes the same file. */
  issuedAt?: string;
}

/**
 * Stops the agents of a revision on a cluster whose API server cannot be reached, through node-local
 * stop files written without that API server (from the node inventory kept in the management cluster).
 */
export interface BreakGlassActuator {
  /** Whether the rollout configures a transport (without one, break-glass can only be reported). */
  available(rollout: TelemetryRollout): boolean;
  /**
   * Writes the stop file naming `revision` on every inventoried node of `cluster` that runs it. Never
   * throws. May return before the nodes are done (`inProgress`, counts so far): the caller calls again
   * to learn the outcome; a call after an attempt ended with nodes unconfirmed starts a new attempt
   * for those nodes only.
   */
  issue(rollout: TelemetryRollout, cluster: string, revision: string, reason: string, options?: IssueOptions): Promise<BreakGlassStatus>;
  /**
   * Removes the stop files again (only called once no agent of the revision runs). Never throws. May
   * return before the nodes are done (not ok, "clearing"): the caller calls again; each attempt goes to
   * the nodes not cleared yet, and failures on the `notReady` nodes do not hold it.
   */
  clear(rollout: TelemetryRollout, cluster: string, revision: string, options?: { notReady?: readonly string[] }): Promise<ClearResult>;
  /**
   * Proves the transport works on a few inventoried nodes of `cluster` without writing a stop file
   * (ssh: connection, host key, user key, sudo, a writable directory); undefined when the transport has
   * nothing to check before it is needed. Never throws.
   */
  check?(rollout: TelemetryRollout, cluster: string): Promise<{ ok: boolean; message: string } | undefined>;
  /**
   * The revisions whose stops this rollout still owes on `cluster` (issued, not cleared), from a record
   * kept apart from status: a stop issued by a pass whose status write was lost is still known, also
   * after a restart. Never throws (an unreadable record is empty).
   */
  owed?(rollout: TelemetryRollout, cluster: string): Promise<string[]>;
}

/** What recording an inventory changed that the rollout should tell. */
export interface InventoryChange {
  /** Nodes that were in the stored inventory and are gone from the cluster (sorted). */
  removed: string[];
}

/** Keeps each target's node inventory in the management cluster, for break-glass without the target. */
export interface InventoryRecorder {
  /** Records the nodes of a cluster; implementations write only when something changed. Never throws. */
  record(rollout: TelemetryRollout, cluster: string, nodes: NodeInfo[]): Promise<InventoryChange | void>;
}
