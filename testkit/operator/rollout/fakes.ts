/**
 * In-memory fakes of the reconciler's interfaces, for unit tests only. They
 * model the behaviour the reconciler relies on (a DaemonSet controller that runs one ready pod per
 * matching node, optimistic concurrency on status writes) and never stand in for a real API server in
 * a test that claims API behaviour.
 */
import type { BreakGlassStatus, TelemetryRollout, TelemetryRolloutStatus } from '../../../operator/src/api/types.generated.js';
import { validateRollout } from '../../../operator/src/api/validate.js';
import { formatErrors } from '../api/fixtures.js';
import {
  OBJECT_REVISION_LABEL,
  REVISION_LABEL,
  STABLE_LABEL,
  type BaselineCapture,
  type BreakGlassActuator,
  type ClusterClient,
  type ClusterClientFactory,
  type CollectorDaemonSet,
  type CollectorPod,
  type EventRecorder,
  type GateEvaluation,
  type GateEvaluator,
  type KubeObject,
  type NodeInfo,
  type ObjectRef,
  type ProbeResult,
  type ResolvedTarget,
  type StatusWriter,
} from '../../../operator/src/rollout/interfaces.js';
import type { RolloutReader } from '../../../operator/src/rollout/reconciler.js';

/** An in-memory target cluster. */
export class FakeCluster implements ClusterClient {
  readonly nodes = new Map<string, NodeInfo>();
  readonly objects = new Map<string, KubeObject>();
  reachable = true;
  /**
   * The kubeconfig's credentials as the API server judges them: `expired` (every request, /readyz
   * included, gets 401) or `no-rights` (/readyz still answers, every resource call gets 403).
   */
  credentials: 'valid' | 'expired' | 'no-rights' = 'valid';
  /** Operations answered with 403 although the credentials are fine (a lost verb, a quota, a webhook). */
  readonly forbidden = new Set<string>();
  /** Operations answered with 429 (an API server shedding load: it answers /readyz, refuses work). */
  readonly overloaded = new Set<string>();
  /** Counts of calls, by operation, to check pacing and idempotence. */
  readonly calls: Record<string, number> = {};
  /** When set, pods of these revisions never become ready (a crash-looping collector). */
  readonly notReady = new Set<string>();
  /**
   * Where the cluster-mode watcher of a revision runs (a node that need not carry the revision label);
   * by default the last node, which a step relabels last.
   */
  watcherNode?: string;
  /** Pods that outlive their DaemonSet's placement (stuck terminating), by node: the revision they run. */
  readonly lingeringPods = new Map<string, string>();
  /** Every relabel in order: [node, revision|null]. */
  readonly relabels: Array<[string, string | null]> = [];

  readonly name: string;
  constructor(name: string, nodeCount: number) {
    this.name = name;
    for (let i = 0; i < nodeCount; i++) {
      const n = `${name}-node-${String(i).padStart(4, '0')}`;
      this.nodes.set(n, { name: n, labels: {}, addresses: [{ type: 'InternalIP', address: `10.0.${Math.floor(i / 250)}.${i % 250}` }], ready: true });
    }
  }

  private count(op: string): void {
    this.calls[op] = (this.calls[op] ?? 0) + 1;
    if (!this.reachable) throw new Error(`${this.name}: connect ECONNREFUSED`);
    if (this.overloaded.has(op)) throw Object.assign(new Error(`cluster ${this.name}: ${op}: HTTP 429 (Too Many Requests)`), { code: 429 });
    if (this.forbidden.has(op)) throw Object.assign(new Error(`cluster ${this.name}: ${op}: HTTP 403`), { code: 403 });
    if (this.credentials !== 'valid') {
      const code = this.credentials === 'expired' ? 401 : 403;
      throw Object.assign(new Error(`cluster ${this.name}: ${op}: HTTP ${code}`), { code });
    }
  }

  /** Awaited by every probe before it answers (a probe that takes its whole timeout). */
  probeWait?: () => Promise<void>;

  async probe(): Promise<ProbeResult> {
    this.calls.probe = (this.calls.probe ?? 0) + 1;
    await this.probeWait?.();
    if (!this.reachable) return { reachable: false, message: 'timeout after 3s' };
    if (this.credentials === 'expired')
      return { reachable: true, credentialsRejected: true, message: "GET /readyz answered HTTP 401 (the kubeconfig's credentials were rejected)" };
    return { reachable: true };
  }

  async listNodes(): Promise<NodeInfo[]> {
    this.count('listNodes');
    return [...this.nodes.values()].map((n) => ({ ...n, labels: { ...n.labels } }));
  }

  async setNodeRevision(node: string, revision: string | null): Promise<void> {
    this.count('setNodeRevision');
    const n = this.nodes.get(node);
    if (!n) throw new Error(`node ${node} not found`);
    if (revision === null) delete n.labels[REVISION_LABEL];
    else n.labels[REVISION_LABEL] = revision;
    this.relabels.push([node, revision]);
  }

  async apply(obj: KubeObject): Promise<void> {
    this.count('apply');
    this.objects.set(key(obj), JSON.parse(JSON.stringify(obj)) as KubeObject);
  }

  async delete(ref: ObjectRef): Promise<void> {
    this.count('delete');
    this.objects.delete(key({ ...ref, metadata: { name: ref.name, namespace: ref.namespace } }));
  }

  async listCollectorDaemonSets(namespace: string, rollout: string): Promise<CollectorDaemonSet[]> {
    this.count('listCollectorDaemonSets');
    return [...this.objects.values()]
      .filter((o) => o.kind === 'DaemonSet' && o.metadata.namespace === namespace && o.metadata.labels?.['telemetry.rollout.dev/rollout'] === rollout)
      .map((o) => {
        const revision = o.metadata.labels?.[OBJECT_REVISION_LABEL] ?? '';
        const stable = o.metadata.labels?.[STABLE_LABEL] === 'true';
        const matching = this.nodesRunning(revision, stable).length;
        return {
          name: o.metadata.name,
          revision,
          stable,
          desiredNumberScheduled: matching,
          numberReady: this.notReady.has(revision) ? 0 : matching,
          observed: true,
        };
      });
  }

  async listCollectorPods(namespace: string): Promise<CollectorPod[]> {
    this.count('listCollectorPods');
    const pods: CollectorPod[] = [];
    for (const [node, revision] of this.placement()) if (revision) pods.push({ name: `agent-${revision}-${node}`, node, revision, mode: 'node' });
    for (const [node, revision] of this.lingeringPods) pods.push({ name: `agent-${revision}-${node}-old`, node, revision, mode: 'node' });
    const names = [...this.nodes.keys()].sort();
    for (const o of this.objects.values()) {
      if (o.kind !== 'Deployment' || o.metadata.namespace !== namespace) continue;
      const spec = o.spec as { replicas?: number } | undefined;
      const revision = o.metadata.labels?.[OBJECT_REVISION_LABEL];
      if (!revision || spec?.replicas === 0) continue;
      const node = this.watcherNode && this.nodes.has(this.watcherNode) ? this.watcherNode : (names[names.length - 1] ?? '');
      pods.push({ name: `watcher-${revision}`, node, revision, mode: 'cluster' });
    }
    return pods.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** What getRaw('/metrics') returns. */
  metricsText = '# no metrics\n';

  async getRaw(path: string): Promise<string> {
    this.count('getRaw');
    return path === '/metrics' ? this.metricsText : `# fake ${path}\n`;
  }

  /** Nodes a revision's DaemonSet runs on: labelled with it, or unlabelled when it is stable. */
  nodesRunning(revision: string, stable = this.isStable(revision)): string[] {
    return [...this.nodes.values()]
      .filter((n) => n.labels[REVISION_LABEL] === revision || (stable && n.labels[REVISION_LABEL] === undefined))
      .map((n) => n.name);
  }

  /** Which revision's agent runs on each node (undefined: none), as the DaemonSets place them. */
  placement(): Map<string, string | undefined> {
    const out = new Map<string, string | undefined>();
    const sets = [...this.objects.values()].filter((o) => o.kind === 'DaemonSet');
    for (const n of this.nodes.values()) {
      const ds = sets.find((o) => {
        const r = o.metadata.labels?.[OBJECT_REVISION_LABEL];
        const st = o.metadata.labels?.[STABLE_LABEL] === 'true';
        return n.labels[REVISION_LABEL] === r || (st && n.labels[REVISION_LABEL] === undefined);
      });
      out.set(n.name, ds?.metadata.labels?.[OBJECT_REVISION_LABEL]);
    }
    return out;
  }

  /** Counts nodes per revision label value ('' for unlabelled). */
  labelCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const n of this.nodes.values()) {
      const r = n.labels[REVISION_LABEL] ?? '';
      out[r] = (out[r] ?? 0) + 1;
    }
    return out;
  }

  private isStable(revision: string): boolean {
    return [...this.objects.values()].some(
      (o) => o.kind === 'DaemonSet' && o.metadata.labels?.[OBJECT_REVISION_LABEL] === revision && o.metadata.labels?.[STABLE_LABEL] === 'true',
    );
  }
}

function key(o: { kind: string; metadata: { name: string; namespace?: string } }): string {
  return `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

/** A factory over FakeClusters; a cluster listed in `missingSecrets` fails like a missing Secret. */
export class FakeClusterFactory implements ClusterClientFactory {
  readonly clusters = new Map<string, FakeCluster>();
  readonly missingSecrets = new Set<string>();

  add(c: FakeCluster): this {
    this.clusters.set(c.name, c);
    return this;
  }

  async resolveTargets(rollout: TelemetryRollout): Promise<ResolvedTarget[]> {
    return (rollout.spec.targets.clusters ?? []).map((c) => ({ name: c.name, secretName: c.kubeconfigSecretRef.name, secretKey: c.kubeconfigSecretRef.key }));
  }

  async client(_rollout: TelemetryRollout, target: ResolvedTarget): Promise<ClusterClient> {
    const { ClusterUnavailableError } = await import('../../../operator/src/rollout/interfaces.js');
    if (this.missingSecrets.has(target.name)) throw new ClusterUnavailableError(target.name, 'SecretNotFound', `Secret ${target.secretName} not found`);
    const c = this.clusters.get(target.name);
    if (!c) throw new ClusterUnavailableError(target.name, 'SecretNotFound', `Secret ${target.secretName} not found`);
    return c;
  }
}

/**
 * A store of one TelemetryRollout with the API server's status semantics: status writes must carry the
 * current resourceVersion, and each write bumps it.
 */
export class FakeRolloutStore implements RolloutReader, StatusWriter {
  private obj: TelemetryRollout;
  private rv = 1;
  /** Every status written, in order (while {@link keepWrites}). */
  readonly writes: TelemetryRolloutStatus[] = [];
  /**
   * Whether {@link writes} records each status. The fleet simulator turns it off: a day of a 150-cluster
   * rollout writes tens of thousands of statuses of ~150 KiB each, which filled a 4 GiB heap.
   */
  keepWrites = true;
  /** When > 0, that many next status writes fail (a crash before the write landed). */
  failNextWrites = 0;

  constructor(manifest: Record<string, unknown>) {
    const r = validateRollout(manifest);
    if (!r.valid) throw new Error(`invalid test rollout:\n${formatErrors(r.errors)}`);
    this.obj = r.defaulted as unknown as TelemetryRollout;
    this.obj.metadata = { namespace: 'default', generation: 1, ...this.obj.metadata, resourceVersion: String(this.rv) };
  }

  async get(): Promise<TelemetryRollout> {
    return JSON.parse(JSON.stringify(this.obj)) as TelemetryRollout;
  }

  current(): TelemetryRollout {
    return this.obj;
  }

  async writeStatus(rollout: TelemetryRollout, status: TelemetryRolloutStatus): Promise<void> {
    if (rollout.metadata?.resourceVersion !== this.obj.metadata?.resourceVersion) throw Object.assign(new Error('conflict'), { code: 409 });
    if (this.failNextWrites > 0) {
      this.failNextWrites--;
      throw new Error('injected crash before the status write');
    }
    this.obj.status = JSON.parse(JSON.stringify(status)) as TelemetryRolloutStatus;
    this.obj.metadata = { ...this.obj.metadata, resourceVersion: String(++this.rv) };
    if (this.keepWrites) this.writes.push(this.obj.status);
  }

  /** Changes the spec (bumps generation), as `kubectl apply` would. */
  updateSpec(fn: (spec: TelemetryRollout['spec']) => void): void {
    fn(this.obj.spec);
    this.obj.metadata = { ...this.obj.metadata, generation: (this.obj.metadata?.generation ?? 1) + 1, resourceVersion: String(++this.rv) };
  }

  /** Sets an annotation (does not bump generation). */
  annotate(key: string, value: string): void {
    this.obj.metadata = { ...this.obj.metadata, annotations: { ...(this.obj.metadata?.annotations ?? {}), [key]: value }, resourceVersion: String(++this.rv) };
  }
}

/** Records events. */
export class FakeEvents implements EventRecorder {
  readonly events: Array<{ type: string; reason: string; message: string }> = [];
  event(_r: TelemetryRollout, type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.events.push({ type, reason, message });
  }
}

/** A scripted gate evaluator: a function of (cluster, fraction) gives each verdict. */
export class ScriptedGates implements GateEvaluator {
  readonly measures = true;
  readonly evaluations: Array<{ cluster: string; fraction: number; verdict: string }> = [];
  private readonly verdict: (cluster: string, fraction: number) => GateEvaluation['verdict'];
  constructor(verdict: (cluster: string, fraction: number) => GateEvaluation['verdict'] = () => 'Pass') {
    this.verdict = verdict;
  }
  async captureBaseline(): Promise<BaselineCapture> {
    return { baseline: { capturedAt: new Date(0).toISOString(), values: { apiServerP99Seconds: 0.1 } } };
  }
  async evaluate(ctx: { target: ResolvedTarget; fraction: number }): Promise<GateEvaluation> {
    const verdict = this.verdict(ctx.target.name, ctx.fraction);
    this.evaluations.push({ cluster: ctx.target.name, fraction: ctx.fraction, verdict });
    return {
      verdict,
      message: `scripted ${verdict}`,
      measurements: { apiServerP99Seconds: verdict === 'Fail' ? 2 : 0.1 },
      thresholds: { apiServerP99Seconds: 1 },
    };
  }
}

/** Records break-glass actions; the order of calls proves clearing happens after the agents are gone. */
export class FakeBreakGlass implements BreakGlassActuator {
  readonly calls: Array<{ op: 'issue' | 'clear'; cluster: string; revision: string; agentsRunning: number }> = [];
  private readonly factory: FakeClusterFactory;
  private readonly configured;
  constructor(factory: FakeClusterFactory, configured = true) {
    this.factory = factory;
    this.configured = configured;
  }
  available(): boolean {
    return this.configured;
  }
  /** The next this many attempts fail on two nodes (a transport that cannot reach them yet). */
  failingAttempts = 0;
  /** The next this many attempts reach no node (an inventory that missed the latest batch). */
  emptyAttempts = 0;
  /** What the transport check says (undefined: nothing to check, as for a local or exec transport). */
  checkResult?: { ok: boolean; message: string };
  /** Clusters the transport was checked on, in order. */
  readonly checks: string[] = [];

  async check(_r: TelemetryRollout, cluster: string): Promise<{ ok: boolean; message: string } | undefined> {
    this.checks.push(cluster);
    return this.checkResult;
  }

  async issue(_r: TelemetryRollout, cluster: string, revision: string): Promise<BreakGlassStatus> {
    const c = this.factory.clusters.get(cluster);
    const empty = this.emptyAttempts > 0;
    if (empty) this.emptyAttempts--;
    const running = c && !empty ? c.nodesRunning(revision, false).length : 0;
    this.calls.push({ op: 'issue', cluster, revision, agentsRunning: running });
    this.ledger.add(`${cluster}/${revision}`);
    const failed = this.failingAttempts > 0 ? Math.min(2, running) : 0;
    if (this.failingAttempts > 0) this.failingAttempts--;
    return { issuedAt: new Date(0).toISOString(), nodesTargeted: running, nodesStopped: running - failed, nodesFailed: failed, nodesTimedOut: 0 };
  }
  async clear(_r: TelemetryRollout, cluster: string, revision: string): Promise<{ ok: boolean; message: string }> {
    const c = this.factory.clusters.get(cluster);
    this.calls.push({ op: 'clear', cluster, revision, agentsRunning: c ? [...c.placement().values()].filter((r) => r === revision).length : 0 });
    this.ledger.delete(`${cluster}/${revision}`);
    return { ok: true, message: 'cleared' };
  }

  /**
   * The stop ledger, kept apart from status like the operator's ConfigMap (it outlives a reconciler
   * restart, and a pass whose status write is lost): `cluster/revision` of stops issued, not cleared.
   */
  readonly ledger = new Set<string>();

  async owed(_r: TelemetryRollout, cluster: string): Promise<string[]> {
    return [...this.ledger].filter((k) => k.startsWith(`${cluster}/`)).map((k) => k.slice(cluster.length + 1));
  }
}
