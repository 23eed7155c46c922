/**
 * A simulated target cluster behind the product's {@link ClusterClient} interface, unkind where the
 * unit-test fakes are kind: every call takes the API server model's latency in virtual time and fails
 * as the model says (429 while saturated, connection refused while crashed); DaemonSet pods start after
 * a sampled start-up delay and never on NotReady nodes; agents obey stop files written on their nodes;
 * what the running agents cost the API server comes from what their image does, not what their
 * configuration declares.
 *
 * Nodes are plain arrays indexed by position (names sort in index order), so a 7,500-node cluster costs
 * a few arrays; NodeInfo objects are built once and copied on each listNodes.
 */
import type { SimClock, Rng } from './engine.js';
import { ApiServerModel, NO_DEMAND, type Demand } from './model/apiserver.js';
import { addDemand, agentDemand, type Behaviour } from './model/agents.js';
import { CoreDnsModel } from './model/coredns.js';
import type { Model } from './model/calibration.js';
import { ALL_REVISIONS } from '../operator/src/breakglass/stopfile.js';
import {
  OBJECT_REVISION_LABEL,
  REVISION_LABEL,
  STABLE_LABEL,
  type ClusterClient,
  type CollectorDaemonSet,
  type CollectorPod,
  type KubeObject,
  type NodeInfo,
  type ObjectRef,
  type ProbeResult,
} from '../operator/src/rollout/interfaces.js';

/** Maps a container image to what its agent does on the API server. */
export type BehaviourOf = (image: string) => Behaviour;

interface SimDaemonSet {
  name: string;
  namespace: string;
  rollout: string;
  revision: string;
  stable: boolean;
  behaviour: Behaviour;
}

/** An error carrying an HTTP status, as the product's client errors do. */
function httpError(cluster: string, op: string, code: number): Error {
  return Object.assign(new Error(`cluster ${cluster}: ${op}: HTTP ${code}${code === 429 ? ' (Too Many Requests)' : ''}`), { code });
}

/**
 * The API server refusing the token: HTTP 401 with a Status body, as client-node's ApiException carries
 * it (`code` and `body`); the message names the call, never the credentials.
 */
function unauthorized(cluster: string, op: string): Error {
  return Object.assign(new Error(`cluster ${cluster}: ${op}: HTTP 401 (Unauthorized)`), {
    code: 401,
    body: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 },
  });
}

/** A connection refused (a crashed API server), classified as unreachable by the gates. */
function refused(cluster: string): Error {
  return Object.assign(new Error(`cluster ${cluster}: connect ECONNREFUSED`), { code: 'ECONNREFUSED' });
}

/** One simulated cluster: its nodes, its collector objects and agents, and its API server model. */
export class SimCluster implements ClusterClient {
  readonly name: string;
  readonly size: number;
  readonly api: ApiServerModel;
  /** The cluster's CoreDNS (its records go stale while the API server is down). */
  readonly dns: CoreDnsModel;
  /**
   * The kubeconfig's token is refused (expired, not yet renewed): /readyz answers 401, as the product's
   * client reports it, and every other call fails with a 401 shaped like client-node's.
   */
  credentialsRejected = false;
  /** Calls by operation (the operator's own load on this cluster). */
  readonly calls: Record<string, number> = {};
  private readonly clock: SimClock;
  private readonly rng: Rng;
  private readonly model: Model;
  private readonly behaviourOf: BehaviourOf;
  private readonly infos: NodeInfo[];
  private readonly index = new Map<string, number>();
  private readonly ready: Uint8Array;
  /** The revision each node's DaemonSets place on it. */
  private readonly target: Array<string | undefined>;
  /** The revision each node's agent runs (its pod started), if any. */
  private readonly running: Array<string | undefined>;
  private readonly pending: Array<(() => void) | undefined>;
  /** The revision each node's agent is counted active for. */
  private readonly counted: Array<string | undefined>;
  /** Stop files on each node: file name → the revision it names. */
  private readonly stops: Array<Map<string, string> | undefined>;
  private readonly daemonSets = new Map<string, SimDaemonSet>();
  private readonly watchers = new Map<string, string>();
  /** Agents running and not held by a stop file, by revision. */
  private readonly active = new Map<string, number>();
  /** Nodes on which an agent of the revision ever ran unstopped, by revision. */
  private readonly exposedNodes = new Map<string, Uint8Array>();
  private readonly exposedCount = new Map<string, number>();
  private readonly behaviours = new Map<string, Behaviour>();
  private demandCache: Demand | undefined;
  /** Nodes on which a stop file was ever written. */
  private readonly everStopped: Uint8Array;
  /**
   * Every node relabel that landed, in order: when (ms), the node's index and the revision (null: the
   * label removed). What the fault scenarios read to say no node was relabelled forward twice.
   */
  readonly labelLog: Array<{ t: number; node: number; revision: string | null }> = [];

  /** Node slots: the initial nodes, then those that join (node churn); a deleted node's slot stays empty. */
  private readonly capacity: number;
  /** Slots in use (initial nodes plus joined ones). */
  private used: number;
  /** Whether the node of each slot exists (not deleted). */
  private readonly exists: Uint8Array;
  /** Nodes deleted and nodes joined so far (node churn). */
  nodesLeft = 0;
  nodesJoined = 0;
  /** What the operator's watch-backed node cache holds: the live nodes while the API server answers. */
  private nodeSnapshot: NodeInfo[] | undefined;

  /**
   * `size` nodes, named `<cluster>-n<index>`; `spare` more slots for nodes that join later (node churn;
   * default none, and then names and behaviour are those of a fixed cluster).
   */
  constructor(name: string, size: number, o: { clock: SimClock; rng: Rng; model: Model; behaviourOf: BehaviourOf; spare?: number }) {
    this.name = name;
    this.size = size;
    this.capacity = size + (o.spare ?? 0);
    this.used = size;
    this.exists = new Uint8Array(this.capacity).fill(1, 0, size);
    this.clock = o.clock;
    this.rng = o.rng;
    this.model = o.model;
    this.behaviourOf = o.behaviourOf;
    this.api = new ApiServerModel(o.model, size, o.clock.nowMs());
    this.dns = new CoreDnsModel(o.model, size, o.clock.nowMs());
    this.ready = new Uint8Array(this.capacity);
    this.target = new Array<string | undefined>(this.capacity);
    this.running = new Array<string | undefined>(this.capacity);
    this.pending = new Array<(() => void) | undefined>(this.capacity);
    this.counted = new Array<string | undefined>(this.capacity);
    this.stops = new Array<Map<string, string> | undefined>(this.capacity);
    this.everStopped = new Uint8Array(this.capacity);
    this.infos = [];
    for (let i = 0; i < this.used; i++) {
      const n = this.nodeName(i);
      const ok = !this.rng.chance(o.model.cluster.notReadyFraction);
      this.ready[i] = ok ? 1 : 0;
      this.index.set(n, i);
      this.infos.push({ name: n, labels: {}, addresses: [{ type: 'InternalIP', address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }], ready: ok });
    }
  }

  // ---- the model's view -------------------------------------------------------------------------

  /** The agents' demand on the API server now. */
  demand(): Demand {
    if (this.demandCache) return this.demandCache;
    let d: Demand = NO_DEMAND;
    for (const [rev, n] of this.active) if (n > 0) d = addDemand(d, agentDemand(this.model, this.behaviours.get(rev) ?? 'frugal', this.size, n));
    return (this.demandCache = d);
  }

  /** Agents of `revision` running and not stopped. */
  activeAgents(revision: string): number {
    return this.active.get(revision) ?? 0;
  }

  /** Agents running unstopped whose image behaves as `behaviour`. */
  activeByBehaviour(behaviour: Behaviour): number {
    let n = 0;
    for (const [rev, c] of this.active) if (this.behaviours.get(rev) === behaviour) n += c;
    return n;
  }

  /** Nodes on which an agent of `behaviour` ever ran unstopped. */
  exposedByBehaviour(behaviour: Behaviour): number {
    let n = 0;
    for (const [rev, c] of this.exposedCount) if (this.behaviours.get(rev) === behaviour) n += c;
    return n;
  }

  /** Whether an agent of `behaviour` ever ran unstopped on node `i`. */
  exposedTo(behaviour: Behaviour, i: number): boolean {
    for (const [rev, seen] of this.exposedNodes) if (this.behaviours.get(rev) === behaviour && seen[i] === 1) return true;
    return false;
  }

  /** Nodes that run a pod (started or not) of `revision`. */
  podsOf(revision: string): number {
    let n = 0;
    for (let i = 0; i < this.used; i++) if (this.exists[i] && (this.running[i] === revision || this.target[i] === revision)) n++;
    return n;
  }

  /** The name of slot `i`'s node (zero-padded to the widest slot, so names sort in slot order). */
  private nodeName(i: number): string {
    return `${this.name}-n${String(i).padStart(String(this.capacity - 1).length, '0')}`;
  }

  /** Nodes whose agent (started or about to start) is of a revision that behaves as `behaviour`. */
  podsByBehaviour(behaviour: Behaviour): number {
    let n = 0;
    for (let i = 0; i < this.used; i++) {
      if (!this.exists[i]) continue;
      const r = this.running[i] ?? this.target[i];
      if (r !== undefined && this.behaviours.get(r) === behaviour) n++;
    }
    return n;
  }

  /** Live nodes carrying a revision label (any revision): the nodes the rollout has moved. */
  labelledNodes(): number {
    let n = 0;
    for (let i = 0; i < this.used; i++) if (this.exists[i] && this.infos[i]!.labels[REVISION_LABEL] !== undefined) n++;
    return n;
  }

  /** Nodes that exist now. */
  get liveNodes(): number {
    return this.size - this.nodesLeft + this.nodesJoined;
  }

  /** The slots of the nodes that exist now. */
  liveIndices(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.used; i++) if (this.exists[i]) out.push(i);
    return out;
  }

  /** The revision whose agent runs on node `i` (started, stopped or not), if any. */
  runningOn(i: number): string | undefined {
    return this.running[i];
  }

  /** Whether node `i` ever ran an agent of `behaviour` unstopped (it may have been deleted since). */
  wasExposed(i: number, behaviour: Behaviour): boolean {
    for (const [rev, seen] of this.exposedNodes) if (this.behaviours.get(rev) === behaviour && seen[i]) return true;
    return false;
  }

  /** Whether node `i` runs an agent of `behaviour` that no stop file holds. */
  activeOn(i: number, behaviour: Behaviour): boolean {
    const r = this.activeRevision(i);
    return r !== undefined && this.behaviours.get(r) === behaviour;
  }

  /** Whether node `i` exists (it was not deleted). */
  nodeExists(i: number): boolean {
    return this.exists[i] === 1;
  }

  /**
   * Deletes node `i` (scale-down, repair): it leaves the node list, its pods and stop files go with it,
   * and its name no longer resolves (break-glass cannot reach it). What it ran stays counted as exposed.
   */
  removeNode(i: number): void {
    if (!this.exists[i]) return;
    this.exists[i] = 0;
    this.nodesLeft++;
    this.index.delete(this.infos[i]!.name);
    this.pending[i]?.();
    this.pending[i] = undefined;
    this.target[i] = undefined;
    this.stops[i] = undefined;
    this.setRunning(i, undefined);
  }

  /**
   * A node joins (a new name, Ready, without labels): the DaemonSets place on it what its labels say (an
   * unlabelled node gets the stable revision's pod, if there is one). Returns its slot.
   * @throws {RangeError} when the cluster has no spare slot left.
   */
  addNode(): number {
    if (this.used >= this.capacity) throw new RangeError(`cluster ${this.name}: no spare node slot`);
    const i = this.used++;
    const n = this.nodeName(i);
    this.exists[i] = 1;
    this.ready[i] = 1;
    this.nodesJoined++;
    this.index.set(n, i);
    this.infos[i] = { name: n, labels: {}, addresses: [{ type: 'InternalIP', address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }], ready: true };
    this.retarget(i);
    return i;
  }

  /** The index of a node by name, or undefined. */
  nodeIndex(name: string): number | undefined {
    return this.index.get(name);
  }

  /** Whether a node answers (a NotReady node is down: no kubelet, no sshd). */
  nodeReady(i: number): boolean {
    return this.ready[i] === 1;
  }

  /** The revision the DaemonSets place on node `i` now, and the one its agent runs (if any). */
  agentOf(i: number): { target: string | undefined; running: string | undefined } {
    return { target: this.target[i], running: this.running[i] };
  }

  /** Whether a stop file was ever written on node `i`. */
  wasStopped(i: number): boolean {
    return this.everStopped[i] === 1;
  }

  /** Nodes holding at least one stop file now. */
  nodesWithStopFiles(): number {
    let n = 0;
    for (const m of this.stops) if (m && m.size > 0) n++;
    return n;
  }

  /** Writes a stop file on node `i` naming `revision` (break-glass). */
  writeStop(i: number, file: string, revision: string): void {
    const m = (this.stops[i] ??= new Map());
    m.set(file, revision);
    this.everStopped[i] = 1;
    this.settle(i);
  }

  /** Removes a stop file from node `i`; true when it was there. */
  clearStop(i: number, file: string): boolean {
    const had = this.stops[i]?.delete(file) ?? false;
    this.settle(i);
    return had;
  }

  /** The stop files on node `i`. */
  stopFiles(i: number): Array<[string, string]> {
    return [...(this.stops[i] ?? [])].sort();
  }

  /** Applies a DaemonSet directly, without the API (the incident: everything at once). */
  applyDirect(obj: KubeObject): void {
    this.applyObject(obj);
  }

  // ---- ClusterClient ----------------------------------------------------------------------------

  async probe(signal?: AbortSignal): Promise<ProbeResult> {
    this.calls.probe = (this.calls.probe ?? 0) + 1;
    if (this.api.up && this.credentialsRejected) {
      await this.clock.sleep(this.sample(this.api.smallLatency()), signal);
      return { reachable: true, credentialsRejected: true, message: "GET /readyz answered HTTP 401 (the kubeconfig's credentials were rejected)" };
    }
    if (!this.api.up) {
      await this.clock.sleep(this.model.apiserver.probeTimeoutSeconds * 1000, signal);
      return { reachable: false, message: `timeout after ${this.model.apiserver.probeTimeoutSeconds}s` };
    }
    // /readyz is exempt from APF: it answers while the server sheds work.
    await this.clock.sleep(this.sample(this.api.smallLatency()), signal);
    if (!this.api.up) return { reachable: false, message: 'connection reset' };
    return { reachable: true };
  }

  async listNodes(signal?: AbortSignal): Promise<NodeInfo[]> {
    // The product's client keeps a watch-backed node cache: one LIST, then reads from memory (which go
    // on serving the last known nodes while the API server is down).
    if (!this.nodesCached) {
      await this.call('listNodes', this.api.listLatency(this.size * 8192), signal);
      this.nodesCached = true;
    } else {
      await this.clock.sleep(0, signal);
    }
    // The watch keeps the cache current while the API server answers; while it is down the cache holds
    // the nodes it last saw (deleted ones included, joined ones missing).
    if (this.api.up || !this.nodeSnapshot) this.nodeSnapshot = this.liveIndices().map((i) => this.infos[i]!);
    return this.nodeSnapshot.map((n) => ({ ...n, labels: { ...n.labels } }));
  }

  private nodesCached = false;

  async setNodeRevision(node: string, revision: string | null, signal?: AbortSignal): Promise<void> {
    await this.call('setNodeRevision', this.api.smallLatency(), signal);
    const i = this.index.get(node);
    if (i === undefined) throw httpError(this.name, `node ${node}`, 404);
    const info = this.infos[i]!;
    if (revision === null) delete info.labels[REVISION_LABEL];
    else info.labels[REVISION_LABEL] = revision;
    this.labelLog.push({ t: this.clock.nowMs(), node: i, revision });
    this.retarget(i);
  }

  async apply(obj: KubeObject, signal?: AbortSignal): Promise<void> {
    await this.call('apply', this.api.smallLatency(), signal);
    this.applyObject(obj);
  }

  async delete(ref: ObjectRef, signal?: AbortSignal): Promise<void> {
    await this.call('delete', this.api.smallLatency(), signal);
    if (ref.kind === 'DaemonSet' && this.daemonSets.delete(`${ref.namespace ?? ''}/${ref.name}`)) this.retargetAll();
    if (ref.kind === 'Deployment') this.watchers.delete(`${ref.namespace ?? ''}/${ref.name}`);
  }

  async listCollectorDaemonSets(namespace: string, rollout: string, signal?: AbortSignal): Promise<CollectorDaemonSet[]> {
    await this.call('listCollectorDaemonSets', this.api.smallLatency(), signal);
    const out: CollectorDaemonSet[] = [];
    for (const ds of this.daemonSets.values()) {
      if (ds.namespace !== namespace || ds.rollout !== rollout) continue;
      let desired = 0;
      let ready = 0;
      for (let i = 0; i < this.used; i++) {
        if (!this.exists[i] || this.target[i] !== ds.revision) continue;
        desired++;
        if (this.running[i] === ds.revision) ready++;
      }
      out.push({ name: ds.name, revision: ds.revision, stable: ds.stable, desiredNumberScheduled: desired, numberReady: ready, observed: true });
    }
    return out;
  }

  async listCollectorPods(namespace: string, signal?: AbortSignal): Promise<CollectorPod[]> {
    await this.call('listCollectorPods', this.api.listLatency(this.podsOfAll() * 4096), signal);
    const pods: CollectorPod[] = [];
    for (let i = 0; i < this.used; i++) {
      if (!this.exists[i]) continue;
      const node = this.infos[i]!.name;
      const r = this.running[i];
      const t = this.target[i];
      if (r !== undefined) pods.push({ name: `agent-${r}-${node}`, node, revision: r, mode: 'node' });
      if (t !== undefined && t !== r) pods.push({ name: `agent-${t}-${node}-new`, node, revision: t, mode: 'node' });
    }
    for (const [key, revision] of this.watchers) {
      if (!key.startsWith(`${namespace}/`)) continue;
      pods.push({ name: `watcher-${revision}`, node: this.infos[this.size - 1]?.name ?? '', revision, mode: 'cluster' });
    }
    return pods;
  }

  async getRaw(path: string, signal?: AbortSignal): Promise<string> {
    await this.call('getRaw', this.api.smallLatency(), signal);
    return path === '/metrics' ? this.api.metricsText() : '';
  }

  // ---- internals --------------------------------------------------------------------------------

  private podsOfAll(): number {
    let n = 0;
    for (let i = 0; i < this.used; i++) if (this.exists[i] && (this.running[i] !== undefined || this.target[i] !== undefined)) n++;
    return n;
  }

  /** Latency in ms drawn around a median (seconds), log-normal. */
  private sample(medianSeconds: number): number {
    return Math.max(1, this.rng.logNormal(medianSeconds * 1000, 0.5));
  }

  /** One API call: the model's latency, then its verdict (refused while down, 429 while saturated). */
  private async call(op: string, medianSeconds: number, signal?: AbortSignal): Promise<void> {
    this.calls[op] = (this.calls[op] ?? 0) + 1;
    if (!this.api.up) {
      await this.clock.sleep(1, signal);
      throw refused(this.name);
    }
    await this.clock.sleep(this.sample(medianSeconds + this.model.operator.clientRequestMedianSeconds), signal);
    if (!this.api.up) throw refused(this.name);
    if (this.credentialsRejected) throw unauthorized(this.name, op);
    // APF isolates the operator's flow from the agents' (its own queues), so it is refused far less often.
    const refusal = this.api.rejectedFraction * this.model.apiserver.operatorFlowRejectionFactor;
    if (refusal > 0 && this.rng.chance(refusal)) throw httpError(this.name, op, 429);
  }

  private applyObject(obj: KubeObject): void {
    const labels = obj.metadata.labels ?? {};
    const key = `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
    const revision = labels[OBJECT_REVISION_LABEL] ?? '';
    if (obj.kind === 'DaemonSet') {
      const spec = obj.spec as { template?: { spec?: { containers?: Array<{ image?: string }> } } } | undefined;
      const image = spec?.template?.spec?.containers?.[0]?.image ?? '';
      const behaviour = this.behaviourOf(image);
      this.behaviours.set(revision, behaviour);
      this.daemonSets.set(key, {
        name: obj.metadata.name,
        namespace: obj.metadata.namespace ?? '',
        rollout: labels['telemetry.rollout.dev/rollout'] ?? '',
        revision,
        stable: labels[STABLE_LABEL] === 'true',
        behaviour,
      });
      this.retargetAll();
    } else if (obj.kind === 'Deployment') {
      const replicas = (obj.spec as { replicas?: number } | undefined)?.replicas ?? 1;
      if (replicas > 0) this.watchers.set(key, revision);
      else this.watchers.delete(key);
    }
  }

  /** The revision the DaemonSets place on node `i` (a labelled node: its revision's; unlabelled: the stable one's). */
  private placement(i: number): string | undefined {
    const label = this.infos[i]!.labels[REVISION_LABEL];
    let stable: string | undefined;
    for (const ds of this.daemonSets.values()) {
      if (label !== undefined && ds.revision === label) return ds.revision;
      if (ds.stable) stable = ds.revision;
    }
    return label === undefined ? stable : undefined;
  }

  private retargetAll(): void {
    for (let i = 0; i < this.used; i++) if (this.exists[i]) this.retarget(i);
  }

  /**
   * Moves node `i` towards its placement: the old pod ends after its grace period, the new one starts
   * after a sampled start-up delay (never on a NotReady node).
   */
  private retarget(i: number): void {
    const want = this.placement(i);
    if (want === this.target[i]) return;
    this.target[i] = want;
    this.pending[i]?.();
    this.pending[i] = undefined;
    const c = this.model.cluster;
    const old = this.running[i];
    const stopMs = old !== undefined && old !== want ? c.podStopSeconds * 1000 : 0;
    const startMs = want !== undefined && old !== want ? this.rng.logNormal(c.podStartMedianSeconds * 1000, c.podStartSigma) : 0;
    if (stopMs === 0 && startMs === 0) return;
    this.pending[i] = this.clock.setTimer(stopMs, () => {
      if (old !== undefined && old !== want) this.setRunning(i, undefined);
      if (want === undefined || old === want || !this.ready[i]) {
        this.pending[i] = undefined;
        return;
      }
      this.pending[i] = this.clock.setTimer(startMs, () => {
        this.pending[i] = undefined;
        this.setRunning(i, want);
      });
    });
  }

  private isStopped(i: number, revision: string): boolean {
    const m = this.stops[i];
    if (!m) return false;
    for (const r of m.values()) if (r === revision || r === ALL_REVISIONS) return true;
    return false;
  }

  /** Whether node i's agent currently counts as active, and for which revision. */
  private activeRevision(i: number): string | undefined {
    const r = this.running[i];
    return r !== undefined && !this.isStopped(i, r) ? r : undefined;
  }

  private setRunning(i: number, revision: string | undefined): void {
    this.running[i] = revision;
    this.recount(i);
  }

  /** Re-evaluates node i's agent after its stop files changed. */
  private settle(i: number): void {
    this.recount(i);
  }

  /** Brings the active counts in line with node i's agent (running, and not held by a stop file). */
  private recount(i: number): void {
    const now = this.activeRevision(i);
    const was = this.counted[i];
    if (now === was) return;
    this.counted[i] = now;
    this.demandCache = undefined;
    if (was !== undefined) this.active.set(was, (this.active.get(was) ?? 0) - 1);
    if (now === undefined) return;
    this.active.set(now, (this.active.get(now) ?? 0) + 1);
    let seen = this.exposedNodes.get(now);
    if (!seen) this.exposedNodes.set(now, (seen = new Uint8Array(this.capacity)));
    if (!seen[i]) {
      seen[i] = 1;
      this.exposedCount.set(now, (this.exposedCount.get(now) ?? 0) + 1);
    }
  }
}
