// Shared by the gates e2e test and the gates benchmark: TelemetryRollout manifests tuned for gate
// scenarios, and a watcher that records every gate evaluation and phase change the REAL operator writes
// into a rollout's status, with the time each was first seen, so detection latency can be read off.
//
// Must stay runnable under Node's type stripping (the benchmark runs without ts-jest): no enums, no
// parameter properties, type-only imports from operator/.
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { ClusterStatus, HistoryEntry, TelemetryRollout, TelemetryRolloutStatus } from '../../operator/src/api/types.generated.js';

/** The API coordinates of TelemetryRollout (operator/src/api/crd.ts; repeated to keep this file light). */
const GROUP = 'telemetry.rollout.dev';
const VERSION = 'v1alpha1';
const PLURAL = 'telemetryrollouts';

/** Options of {@link gateRollout}. */
export interface GateRolloutOptions {
  name: string;
  namespace: string;
  /** The one target cluster (its kubeconfig Secret is `<target>-kubeconfig`, as prepareFleet makes it). */
  target: string;
  metrics?: { prometheusURL?: string; coreDNSMetricsURL?: string };
  /** Default [10, 50, 100]. */
  nodeSteps?: number[];
  /** Default 600: the rollout sits in its first step until a gate acts (or a promote). */
  bakeSeconds?: number;
  /** Gate interval, seconds. Default 5. */
  intervalSeconds?: number;
  /** Gate window (PromQL sources), seconds. Default 10. */
  windowSeconds?: number;
  /** Prometheus scrape interval the operator adds to the signal lag. Default 1. */
  scrapeIntervalSeconds?: number;
  /** Default 2 (the API default). */
  failureLimit?: number;
  onFailure?: 'Rollback' | 'Pause';
  onNoData?: 'Pause' | 'Rollback' | 'Ignore';
  /** Image tag suffix; a new one is a new revision. Default: the name. */
  tag?: string;
}

/**
 * A single-target TelemetryRollout for gate scenarios. Thresholds are the API defaults (p99 1 s, x1.5
 * of the baseline with the evaluator's 0.1 s floor, error ratio 1 %, APF 1/s, CoreDNS 1 % and 0.25 s):
 * the scenarios must trip the real bounds, not bounds tuned to them. The predictive guard is off because
 * the collector pods here are kwok pods that do no work, so a projection would only extrapolate noise;
 * it has its own tests. DNS cache TTL 0 keeps the minimum bake short (the gates are what is tested).
 */
export function gateRollout(o: GateRolloutOptions): Record<string, unknown> {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'TelemetryRollout',
    metadata: { name: o.name, namespace: o.namespace },
    spec: {
      collector: { image: `registry.example/collector:${o.tag ?? o.name}` },
      targets: { clusters: [{ name: o.target, kubeconfigSecretRef: { name: `${o.target}-kubeconfig` }, ...(o.metrics ? { metrics: o.metrics } : {}) }] },
      strategy: {
        order: 'AsListed',
        nodeRelabelQPS: 20,
        stages: [{ name: 'canary', clusters: 1, nodeSteps: o.nodeSteps ?? [10, 50, 100], bakeSeconds: o.bakeSeconds ?? 600 }],
      },
      gates: {
        intervalSeconds: o.intervalSeconds ?? 5,
        windowSeconds: o.windowSeconds ?? 10,
        scrapeIntervalSeconds: o.scrapeIntervalSeconds ?? 1,
        failureLimit: o.failureLimit ?? 2,
        onFailure: o.onFailure ?? 'Rollback',
        onNoData: o.onNoData ?? 'Pause',
        coreDNS: { cacheTTLSeconds: 0 },
        prediction: { enabled: false },
      },
    },
  };
}

/** One gate evaluation as the operator recorded it in `status.clusters[].lastGate`. */
export interface GateRecord {
  /** The reconciler's timestamp of the evaluation (the start of the pass that made it). */
  time: Date;
  /** When this watcher first saw it in the API. */
  seenAt: Date;
  verdict: 'Pass' | 'Fail' | 'NoData';
  measurements: Record<string, number>;
  thresholds: Record<string, number>;
  failed: string[];
  consecutiveFailures: number;
  message: string;
  /** The cluster's phase and step in the same status. */
  clusterPhase: ClusterStatus['phase'];
  step: number | undefined;
}

/** A change of the rollout's phase, with when it was first seen. */
export interface PhaseChange {
  phase: TelemetryRolloutStatus['phase'];
  reason: string | undefined;
  seenAt: Date;
}

/**
 * Polls one rollout (a GET every `intervalMs`, default 250 ms, much shorter than a gate interval, so no
 * evaluation goes unseen) and records every distinct gate evaluation of each cluster and every phase
 * change. Polling rather than watching: a watch adds nothing at this rate and has reconnects to manage.
 */
export class RolloutWatcher {
  readonly #api: CustomObjectsApi;
  readonly #namespace: string;
  readonly #name: string;
  readonly #intervalMs: number;
  readonly #gates = new Map<string, GateRecord[]>();
  readonly #phases: PhaseChange[] = [];
  #latest: TelemetryRollout | undefined;
  #timer: NodeJS.Timeout | undefined;
  #polling: Promise<void> | undefined;
  #stopped = false;
  #errors = 0;

  constructor(kc: KubeConfig, namespace: string, name: string, intervalMs = 250) {
    this.#api = kc.makeApiClient(CustomObjectsApi);
    this.#namespace = namespace;
    this.#name = name;
    this.#intervalMs = intervalMs;
  }

  /** Starts polling. */
  start(): this {
    const tick = (): void => {
      if (this.#stopped) return;
      this.#polling = this.poll()
        .then(() => undefined)
        .finally(() => {
          if (!this.#stopped) this.#timer = setTimeout(tick, this.#intervalMs);
        });
    };
    tick();
    return this;
  }

  /** Stops polling (waits for a poll in flight). */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#polling;
  }

  /** One GET; records what is new. Failures are counted (the management API may be slow under load). */
  async poll(): Promise<TelemetryRollout | undefined> {
    let ro: TelemetryRollout;
    try {
      ro = (await this.#api.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: this.#namespace,
        plural: PLURAL,
        name: this.#name,
      })) as TelemetryRollout;
    } catch {
      this.#errors++;
      return undefined;
    }
    const seenAt = new Date();
    this.#latest = ro;
    const st = ro.status;
    const last = this.#phases[this.#phases.length - 1];
    if (st?.phase && (last?.phase !== st.phase || last.reason !== st.reason)) this.#phases.push({ phase: st.phase, reason: st.reason, seenAt });
    for (const c of st?.clusters ?? []) {
      const g = c.lastGate;
      if (!g?.time || !g.verdict) continue;
      const list = this.#gates.get(c.name) ?? [];
      if (!this.#gates.has(c.name)) this.#gates.set(c.name, list);
      const time = new Date(g.time);
      if (list.some((r) => r.time.getTime() === time.getTime())) continue;
      list.push({
        time,
        seenAt,
        verdict: g.verdict,
        measurements: { ...(g.measurements ?? {}) },
        thresholds: { ...(g.thresholds ?? {}) },
        failed: [...(g.failed ?? [])],
        consecutiveFailures: g.consecutiveFailures ?? 0,
        message: g.message ?? '',
        clusterPhase: c.phase,
        step: c.step,
      });
    }
    return ro;
  }

  /** The latest rollout read. */
  get latest(): TelemetryRollout | undefined {
    return this.#latest;
  }

  /** GETs that failed so far. */
  get errors(): number {
    return this.#errors;
  }

  /** Every evaluation of `cluster` seen, oldest first. */
  evaluations(cluster: string): GateRecord[] {
    return [...(this.#gates.get(cluster) ?? [])];
  }

  /** Every phase change seen, oldest first. */
  phases(): PhaseChange[] {
    return [...this.#phases];
  }

  /**
   * Polls (on top of the timer) until `pred` holds for the latest rollout; rejects after `timeoutMs` with
   * `what` and the status, so a failing test says where the rollout stood.
   */
  async waitFor(what: string, pred: (r: TelemetryRollout, w: RolloutWatcher) => boolean, timeoutMs = 120_000): Promise<TelemetryRollout> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.#latest;
      if (r && pred(r, this)) return r;
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${this.#namespace}/${this.#name}: ${what}\nstatus: ${JSON.stringify(r?.status, null, 1)?.slice(0, 5000)}`,
        );
      }
      await new Promise((res) => setTimeout(res, this.#intervalMs));
    }
  }
}

/** What happened between a regression's start and the rollout's halt, as the operator recorded it. */
export interface Detection {
  /** When the regression was induced (e.g. the load generator started). */
  inducedAt: Date;
  /** The first evaluation after `inducedAt` whose measured API server p99 is over its bound. */
  breach: GateRecord | undefined;
  /** The first Fail verdict after `inducedAt` (normally the breach itself). */
  firstFail: GateRecord | undefined;
  /** The history entry of the halt (`... N times in a row`), with the reconciler's timestamp. */
  haltEntry: HistoryEntry | undefined;
  /** When the watcher first saw the rollout halted (RollingBack, RolledBack or Paused). */
  haltSeenAt: Date | undefined;
}

const HALTED = new Set(['RollingBack', 'RolledBack', 'Paused']);

/** True when the API server p99 of an evaluation is over the bound it was held to. */
export function p99OverBound(g: GateRecord): boolean {
  const v = g.measurements['apiServerP99Seconds'];
  const b = g.thresholds['apiServerP99Seconds'];
  return v !== undefined && b !== undefined && v > b;
}

/** Reads a {@link Detection} off a watcher for `cluster`, for a regression induced at `inducedAt`. */
export function detection(w: RolloutWatcher, cluster: string, inducedAt: Date): Detection {
  const after = w.evaluations(cluster).filter((g) => g.time.getTime() >= inducedAt.getTime());
  const halt = w.phases().find((p) => p.seenAt.getTime() >= inducedAt.getTime() && p.phase !== undefined && HALTED.has(p.phase));
  const haltEntry = (w.latest?.status?.history ?? []).find((h) => Date.parse(h.time ?? '') >= inducedAt.getTime() && /times in a row/.test(h.message ?? ''));
  return {
    inducedAt,
    breach: after.find(p99OverBound),
    firstFail: after.find((g) => g.verdict === 'Fail'),
    haltEntry,
    haltSeenAt: halt?.seenAt,
  };
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;

/** One human line per detection: what was measured, against which bound, and the delays. */
export function formatDetection(d: Detection, intervalSeconds: number): string {
  const parts: string[] = [];
  const b = d.breach;
  if (b) {
    parts.push(
      `breach at +${secs(b.time.getTime() - d.inducedAt.getTime())}: p99 ${b.measurements['apiServerP99Seconds']?.toFixed(3)}s > bound ${b.thresholds['apiServerP99Seconds']?.toFixed(3)}s (verdict ${b.verdict})`,
    );
  } else {
    parts.push('no evaluation with p99 over its bound');
  }
  if (d.firstFail)
    parts.push(
      `first Fail at +${secs(d.firstFail.time.getTime() - d.inducedAt.getTime())} (seen +${secs(d.firstFail.seenAt.getTime() - d.inducedAt.getTime())}; failed: ${d.firstFail.failed.join(',')})`,
    );
  if (d.haltEntry?.time) {
    const halt = Date.parse(d.haltEntry.time);
    parts.push(`halt (${d.haltEntry.reason}) at +${secs(halt - d.inducedAt.getTime())}`);
    if (b)
      parts.push(
        `breach -> halt ${secs(halt - b.time.getTime())} = ${((halt - b.time.getTime()) / 1000 / intervalSeconds).toFixed(2)} gate intervals of ${intervalSeconds}s`,
      );
  }
  if (d.haltSeenAt) {
    parts.push(`halt seen at +${secs(d.haltSeenAt.getTime() - d.inducedAt.getTime())}`);
    if (b)
      parts.push(
        `breach -> halt seen ${secs(d.haltSeenAt.getTime() - b.time.getTime())} = ${((d.haltSeenAt.getTime() - b.time.getTime()) / 1000 / intervalSeconds).toFixed(2)} intervals`,
      );
  }
  return parts.join('; ');
}
