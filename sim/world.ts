/**
 * A simulated world: the fleet's clusters in virtual time, the API server models stepped on a fixed
 * tick, the measurements the replay reports, and (when the scenario uses it) the operator itself: the
 * real RolloutReconciler driven by the real WorkQueue and worker loop, with the real gate evaluator
 * reading the simulated /metrics and the real break-glass actuator writing stop files through the
 * simulated transport. Only the management cluster is in memory (the rollout store and the node
 * inventories, from testkit), as it is not what the replay measures.
 */
import { Writable } from 'node:stream';
import type { TelemetryRollout } from '../operator/src/api/types.generated.js';
import { TransportBreakGlass, type BreakGlassBackends } from '../operator/src/breakglass/actuator.js';
import type { InventoryStore, NodeInventory, SaveResult } from '../operator/src/breakglass/inventory.js';
import type { OwedStops, StopLedger } from '../operator/src/breakglass/stopledger.js';
import { runWorkers, WorkQueue } from '../operator/src/controller/workqueue.js';
import { ControlPlaneGateEvaluator, DefaultSourceFactory } from '../operator/src/gates/evaluator.js';
import { ClusterUnavailableError, type ClusterClient, type ClusterClientFactory, type ResolvedTarget } from '../operator/src/rollout/interfaces.js';
import { collectorLoadPreflight } from '../operator/src/rollout/preflight.js';
import { RolloutReconciler } from '../operator/src/rollout/reconciler.js';
import { createLogger } from '../operator/src/util/logging.js';
import { FakeRolloutStore } from '../testkit/operator/rollout/fakes.js';
import { SimTransport } from './breakglass.js';
import { SimCluster, type BehaviourOf } from './cluster.js';
import { hash32, Rng, SimClock } from './engine.js';
import type { ClusterShape } from './fleet.js';
import type { Behaviour } from './model/agents.js';
import type { Model } from './model/calibration.js';
import { PrometheusModel } from './model/prometheus.js';

/** The API SLO the replay counts breaches of (the gates' default absolute bound). */
export const SLO_P99_SECONDS = 1;

/** What the world measured of one cluster. */
export interface ClusterStats {
  name: string;
  nodes: number;
  crashes: number;
  downSeconds: number;
  pastSloSeconds: number;
  /** Seconds in which CoreDNS answered service names with SERVFAIL (records expired, API server down). */
  dnsFailSeconds: number;
  firstCrashAt?: number;
}

/** One point of a watched cluster's time series (for plots). */
export interface SeriesPoint {
  t: number;
  up: boolean;
  p99?: number;
  badAgents: number;
  /** CoreDNS SERVFAIL answers per second. */
  servfail: number;
}

/** Options of a world. */
export interface WorldOptions {
  seed: number;
  model: Model;
  fleet: ClusterShape[];
  /** What each image does on the API server. */
  behaviourOf: BehaviourOf;
  /** Model step, seconds (default 2). */
  tickSeconds?: number;
  /** Give every cluster a Prometheus server ({@link prometheusUrl}) scraping it from the start. */
  prometheus?: boolean;
  /**
   * Node churn: nodes are replaced (one deleted, one joins) at the model's `churn.replacedFractionPerHour`
   * on every cluster, and scenarios may replace more ({@link World.replaceNodes}).
   */
  churn?: boolean;
}

/** The address of a cluster's modelled Prometheus server (what a target's `metrics.prometheusURL` names). */
export function prometheusUrl(cluster: string): string {
  return `http://prometheus.${cluster}.sim:9090`;
}

/** The error every call of a stopped operator process gets: it no longer runs, so it acts on nothing. */
const processGone = (): Error => new Error('the operator process is gone (restarted)');

/**
 * `target` as seen by one operator process: each method refuses once the process is gone (`alive`
 * false). A call already under way lands (the request was sent), but its process does nothing after it.
 * The check is synchronous and the target's own promise is returned, so a live process pays no extra turn.
 */
function guarded<T extends object>(target: T, alive: () => boolean): T {
  return new Proxy(target, {
    get(t, prop, receiver) {
      const v: unknown = Reflect.get(t, prop, receiver);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => (alive() ? (v as (...a: unknown[]) => unknown).apply(t, args) : Promise.reject(processGone()));
    },
  });
}

/** Factory over the simulated clusters: every target is a cluster of the fleet. */
class SimFactory implements ClusterClientFactory {
  private readonly clusters: Map<string, SimCluster>;
  private readonly alive: () => boolean;
  private readonly guardedClients = new Map<string, ClusterClient>();
  constructor(clusters: Map<string, SimCluster>, alive: () => boolean) {
    this.clusters = clusters;
    this.alive = alive;
  }
  async resolveTargets(rollout: TelemetryRollout): Promise<ResolvedTarget[]> {
    // As the product's factory does: the target's metric sources go with it.
    return (rollout.spec.targets.clusters ?? []).map((c) => ({
      name: c.name,
      secretName: c.kubeconfigSecretRef.name,
      secretKey: c.kubeconfigSecretRef.key,
      ...(c.metrics ? { metrics: { ...c.metrics } } : {}),
    }));
  }
  async client(_r: TelemetryRollout, target: ResolvedTarget): Promise<ClusterClient> {
    const c = this.clusters.get(target.name);
    if (!c) throw new ClusterUnavailableError(target.name, 'SecretNotFound', `Secret ${target.secretName} not found`);
    // One client per cluster for the process's life, as the product's factory caches them (the gate
    // evaluator keeps its scrape state per client object).
    let g = this.guardedClients.get(c.name);
    if (!g) this.guardedClients.set(c.name, (g = guarded<ClusterClient>(c, this.alive)));
    return g;
  }
}

/**
 * The management cluster's inventory store, in memory and without the ConfigMap store's hashing and
 * copying: the management cluster is not what the replay measures, and hashing a 7,500-node inventory
 * after every relabel batch would dominate the simulator's own run time. (The real store pays that cost:
 * it is part of the operator's own cost at fleet scale, which the replay does not measure.)
 */
class SimInventoryStore implements InventoryStore {
  private readonly items = new Map<string, NodeInventory>();
  async load(cluster: string): Promise<NodeInventory | undefined> {
    return this.items.get(cluster);
  }
  async save(inv: NodeInventory): Promise<SaveResult> {
    this.items.set(inv.cluster, inv);
    return { written: true, hash: '' };
  }
  async delete(cluster: string): Promise<void> {
    this.items.delete(cluster);
  }
}

/**
 * The stop ledger in the management cluster, in memory: like the ConfigMap ledger it outlives an
 * operator process, so a restarted operator still knows which stops it owes.
 */
class SimStopLedger implements StopLedger {
  private readonly owedStops = new Map<string, OwedStops>();
  async record(rollout: string, cluster: string, revision: string, issuedAt: string): Promise<void> {
    const k = `${rollout}/${cluster}`;
    this.owedStops.set(k, { ...this.owedStops.get(k), [revision]: issuedAt });
  }
  async remove(rollout: string, cluster: string, revision: string): Promise<void> {
    const o = this.owedStops.get(`${rollout}/${cluster}`);
    if (o) delete o[revision];
  }
  async owed(rollout: string, cluster: string): Promise<OwedStops> {
    return { ...this.owedStops.get(`${rollout}/${cluster}`) };
  }
}

/** The operator as the replay drives it: its rollout store (which outlives a process) and its controls. */
export interface OperatorHandle {
  /** The rollout (spec and status), as the management cluster's API server keeps it. */
  store: FakeRolloutStore;
  /** Enqueues the rollout in the running process (what its informer does when a person changes it). */
  kick: () => void;
  /** Stops the running process for good (the end of the replay). */
  stop: () => void;
  /**
   * Kills the running process and starts a new one on the same store, inventories and stop ledger (a
   * crash and a restart, or a leader change): a new reconciler, work queue, gate evaluator and
   * break-glass actuator; what the old one held in memory (pacing, an attempt under way) is lost, and
   * nothing it still had in flight acts any more.
   */
  restart: () => void;
  /** Processes started so far (1 before any restart). */
  generation: () => number;
}

/** A warning event as the replay sees it: when, why, where. */
export interface SeenEvent {
  t: number;
  type: string;
  reason: string;
  message: string;
}

/** The simulated fleet in virtual time. */
export class World {
  readonly clock: SimClock;
  readonly model: Model;
  readonly clusters = new Map<string, SimCluster>();
  readonly stats = new Map<string, ClusterStats>();
  readonly start: number;
  readonly series = new Map<string, SeriesPoint[]>();
  readonly events: SeenEvent[] = [];
  /** Each cluster's Prometheus server, by its URL's host (only with the `prometheus` option). */
  readonly prometheus = new Map<string, PrometheusModel>();
  /** The latest time (ms) any cluster was unhealthy: down, past the SLO, or running a bad agent. */
  lastUnhealthyAt: number | undefined;
  /** The first time (ms) any cluster was past the SLO or down. */
  firstBreachAt: number | undefined;
  /** The first time (ms) a bad agent ran anywhere (seen at a model step). */
  firstBadAt: number | undefined;
  passes = 0;
  passErrors = 0;
  private readonly rng: Rng;
  private readonly tickSeconds: number;
  private readonly nodeOwner = new Map<string, SimCluster>();
  private readonly churn: boolean;
  private churnRng: Rng | undefined;

  constructor(o: WorldOptions) {
    this.clock = new SimClock();
    this.start = this.clock.nowMs();
    this.model = o.model;
    this.rng = new Rng(o.seed);
    this.tickSeconds = o.tickSeconds ?? 2;
    this.churn = o.churn ?? false;
    if (this.churn) this.churnRng = this.rng.fork(11);
    for (const shape of o.fleet) {
      const c = new SimCluster(shape.name, shape.nodes, {
        clock: this.clock,
        rng: new Rng((o.seed ^ hash32(shape.name)) >>> 0),
        model: o.model,
        behaviourOf: o.behaviourOf,
        // Room for the nodes that join: the background rate plus a scenario's burst.
        ...(o.churn ? { spare: Math.ceil(shape.nodes * 0.25) + 8 } : {}),
      });
      this.clusters.set(shape.name, c);
      this.stats.set(shape.name, { name: shape.name, nodes: shape.nodes, crashes: 0, downSeconds: 0, pastSloSeconds: 0, dnsFailSeconds: 0 });
    }
    if (o.prometheus) {
      for (const c of this.clusters.values()) {
        const p = new PrometheusModel(o.model, { apiserver: () => (c.api.up ? c.api.metricsText() : undefined), coredns: () => c.dns.metricsText() });
        this.prometheus.set(new URL(prometheusUrl(c.name)).host, p);
        const scrape = (): void => {
          p.scrape(this.clock.nowMs());
          this.clock.setTimer(p.intervalMs, scrape);
        };
        this.clock.setTimer(p.intervalMs, scrape);
      }
    }
    // The three largest clusters get a time series.
    for (const c of [...this.clusters.values()].sort((a, b) => b.size - a.size).slice(0, 3)) this.series.set(c.name, []);
    this.clock.setTimer(this.tickSeconds * 1000, () => this.tick());
  }

  /**
   * The fetch the gates' URL sources use: a modelled Prometheus answers its query API after its query
   * latency; one that is down, or an address no model serves, refuses the connection (as undici reports it).
   */
  readonly fetch = (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : input);
    const p = this.prometheus.get(url.host);
    await this.clock.sleep(this.model.prometheus.queryMedianSeconds * 1000, init?.signal ?? undefined);
    if (!p?.up || url.pathname !== '/api/v1/query') {
      throw new TypeError('fetch failed', { cause: Object.assign(new Error(`connect ECONNREFUSED ${url.host}`), { code: 'ECONNREFUSED' }) });
    }
    const a = p.query(url.searchParams.get('query') ?? '', this.clock.nowMs());
    return new Response(JSON.stringify(a.body), { status: a.status, headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;

  /**
   * Replaces `n` nodes of `c`: deletes `n` (those of `first` first, then drawn at random among the
   * live ones) and lets as many new ones join. Returns the deleted slots.
   */
  replaceNodes(c: SimCluster, n: number, first: readonly number[] = []): number[] {
    const rng = (this.churnRng ??= this.rng.fork(11));
    const gone: number[] = [];
    for (const i of first) {
      if (gone.length >= n) break;
      if (c.nodeExists(i)) {
        c.removeNode(i);
        gone.push(i);
      }
    }
    const live = c.liveIndices();
    while (gone.length < n && live.length > 0) {
      const k = Math.floor(rng.next() * live.length);
      const i = live[k]!;
      live[k] = live[live.length - 1]!;
      live.pop();
      c.removeNode(i);
      gone.push(i);
    }
    for (let k = 0; k < gone.length; k++) c.addNode();
    return gone;
  }

  /** Total nodes of the fleet. */
  get nodes(): number {
    let n = 0;
    for (const c of this.clusters.values()) n += c.size;
    return n;
  }

  /** Seconds since the world began. */
  seconds(ms = this.clock.nowMs()): number {
    return (ms - this.start) / 1000;
  }

  /** Finds a node's cluster and index (node names are unique across the fleet). */
  locate = (node: string): { cluster: SimCluster; index: number } | undefined => {
    const prefix = node.slice(0, node.lastIndexOf('-n'));
    const c = this.nodeOwner.get(prefix) ?? this.clusters.get(prefix);
    const index = c?.nodeIndex(node);
    return c && index !== undefined ? { cluster: c, index } : undefined;
  };

  /** Nodes on which an agent of `behaviour` ever ran unstopped, fleet-wide. */
  exposed(behaviour: Behaviour): number {
    let n = 0;
    for (const c of this.clusters.values()) n += c.exposedByBehaviour(behaviour);
    return n;
  }

  /** Agents of `behaviour` running unstopped now, fleet-wide. */
  active(behaviour: Behaviour): number {
    let n = 0;
    for (const c of this.clusters.values()) n += c.activeByBehaviour(behaviour);
    return n;
  }

  /** One model step of every API server, and the measurements. */
  private tick(): void {
    const now = this.clock.nowMs();
    const dt = this.tickSeconds;
    for (const c of this.clusters.values()) {
      const st = this.stats.get(c.name)!;
      const crashesBefore = c.api.crashes;
      const r = c.api.step(now, dt, c.demand());
      if (c.api.crashes > crashesBefore) {
        st.crashes = c.api.crashes;
        st.firstCrashAt ??= this.seconds(now);
      }
      if (this.churn) {
        // Replacements in this step: a Poisson count, drawn as its integer part plus one more by chance.
        const expected = c.liveNodes * (this.model.churn.replacedFractionPerHour / 3600) * dt;
        const n = Math.floor(expected) + (this.churnRng!.chance(expected - Math.floor(expected)) ? 1 : 0);
        if (n > 0) this.replaceNodes(c, n);
      }
      const dns = c.dns.step(now, dt, r.up);
      if (dns.servfailPerSecond > 0) st.dnsFailSeconds += dt;
      const bad = c.activeByBehaviour('list-everything');
      const past = r.up && r.p99 !== undefined && r.p99 > SLO_P99_SECONDS;
      if (!r.up) st.downSeconds += dt;
      if (past) st.pastSloSeconds += dt;
      if (!r.up || past) this.firstBreachAt ??= now;
      if (!r.up || past || bad > 0) this.lastUnhealthyAt = now;
      if (bad > 0) this.firstBadAt ??= now;
      const s = this.series.get(c.name);
      if (s && (now - this.start) % 10_000 < dt * 1000)
        s.push({
          t: this.seconds(now),
          up: r.up,
          ...(r.p99 !== undefined ? { p99: round(r.p99) } : {}),
          badAgents: bad,
          servfail: Math.round(dns.servfailPerSecond),
        });
    }
    this.clock.setTimer(dt * 1000, () => this.tick());
  }

  /**
   * Calls `fn` at `seconds` after the world began (a scenario's fault at a fixed moment); a past moment
   * means now. Returns a function that cancels it.
   */
  at(seconds: number, fn: () => void): () => void {
    return this.clock.at(this.start + seconds * 1000, fn);
  }

  /**
   * Calls `fn` once, at the first poll (every `pollMs` of virtual time) at which `pred` holds: a fault
   * tied to a state of the rollout rather than a moment ("while the rollback is relabelling").
   * Returns a function that cancels it.
   */
  when(pred: () => boolean, fn: () => void, pollMs = 500): () => void {
    let cancelled = false;
    const poll = (): void => {
      if (cancelled) return;
      if (pred()) fn();
      else this.clock.setTimer(pollMs, poll);
    };
    this.clock.setTimer(0, poll);
    return () => {
      cancelled = true;
    };
  }

  /**
   * Kills `cluster`'s API server now, whatever its load, for `downSeconds` (then it restarts, as after
   * an OOM crash). Counted with the crashes the load causes.
   */
  crash(cluster: string, downSeconds: number): void {
    const c = this.clusters.get(cluster);
    if (!c) throw new Error(`no cluster ${cluster}`);
    const now = this.clock.nowMs();
    c.api.forceCrash(now, downSeconds);
    const st = this.stats.get(cluster)!;
    st.crashes = c.api.crashes;
    st.firstCrashAt ??= this.seconds(now);
  }

  /**
   * Starts the operator on `manifest` (a TelemetryRollout): the real reconciler behind the real work
   * queue with 4 workers; a status write enqueues the key again, as the operator's informer does. The
   * rollout store, the node inventories and the stop ledger belong to the management cluster and
   * outlive a process: {@link OperatorHandle.restart} starts a new process on them.
   */
  startOperator(manifest: Record<string, unknown>): OperatorHandle {
    const store = new FakeRolloutStore(manifest);
    // Only the current object is read; keeping every status written would fill the heap on a long replay.
    store.keepWrites = false;
    const inventories = new SimInventoryStore();
    const ledger = new SimStopLedger();
    let generation = 0;
    let current = this.runOperator(store, inventories, ledger, ++generation);
    return {
      store,
      kick: () => current.kick(),
      stop: () => current.stop(),
      restart: () => {
        current.stop();
        current = this.runOperator(store, inventories, ledger, ++generation);
      },
      generation: () => generation,
    };
  }

  /** One operator process on the management cluster's state; returns what enqueues its rollout and what kills it. */
  private runOperator(
    store: FakeRolloutStore,
    inventories: SimInventoryStore,
    ledger: SimStopLedger,
    generation: number,
  ): { kick: () => void; stop: () => void } {
    const clock = this.clock;
    let alive = true;
    const isAlive = (): boolean => alive;
    const key = `${store.current().metadata?.namespace ?? 'default'}/${store.current().metadata?.name ?? ''}`;
    const queue = new WorkQueue({ clock, name: 'telemetryrollouts' });
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const logger = createLogger({ level: 'error', stream: sink });
    const backends: BreakGlassBackends = {
      inventory: () => guarded<InventoryStore>(inventories, isAlive),
      secrets: () => ({ readSecretKey: async () => '' }),
      ledger: () => guarded<StopLedger>(ledger, isAlive),
    };
    // The first process draws from the stream it always did (salt 7), so a replay without a restart is unchanged.
    const bgRng = this.rng.fork(6 + generation);
    const breakGlass = new TransportBreakGlass(backends, clock, logger, async (spec) => {
      return new SimTransport({
        clock,
        rng: bgRng,
        model: this.model,
        locate: this.locate,
        concurrency: spec.concurrency,
        timeoutSeconds: spec.timeoutSeconds,
        alive: isAlive,
      });
    });
    const reconciler = new RolloutReconciler({
      rollouts: guarded(store, isAlive),
      clusters: new SimFactory(this.clusters, isAlive),
      // The product's default sources, with URL sources answered by the modelled Prometheus servers.
      gates: new ControlPlaneGateEvaluator({ clock, sources: new DefaultSourceFactory(clock, { fetch: this.fetch }) }),
      status: {
        async writeStatus(r, s) {
          // A dead process writes nothing (its pass in flight ends without its status write).
          if (!alive) throw processGone();
          await store.writeStatus(r, s);
          queue.add(key);
        },
      },
      events: {
        event: (_r, type, reason, message) => {
          if (alive) this.events.push({ t: this.seconds(), type, reason, message });
        },
      },
      clock,
      breakGlass,
      inventory: breakGlass,
      options: { preflight: [collectorLoadPreflight()] },
    });
    const ac = new AbortController();
    queue.add(key);
    const done = runWorkers(
      queue,
      4,
      async (k) => {
        if (alive) this.passes++;
        try {
          return await reconciler.reconcile(k);
        } catch (err) {
          if (alive) this.passErrors++;
          throw err;
        }
      },
      { clock, logger, signal: ac.signal },
    );
    // Stops taking keys. What is in flight stays pending or fails on its next call: virtual time goes on
    // (after a restart) or no longer moves (the end), and nothing holds a real resource.
    return {
      kick: () => queue.add(key),
      stop: () => {
        alive = false;
        ac.abort(new Error('operator process stopped'));
        void queue.shutDown();
        void done;
      },
    };
  }
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}
