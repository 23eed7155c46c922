/**
 * The health gate: measures a target's control plane (kube-apiserver p99 latency, error ratio and APF
 * rejections; CoreDNS error ratio and p99) and holds each signal to an absolute SLO and, for API server
 * latency, to a bound relative to the baseline measured before the step. Every verdict carries what was
 * measured, against which bound, and why.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Baseline, GatesSpec, Projection, TelemetryRollout } from '../api/types.generated.js';
import type { BaselineCapture, GateContext, GateEvaluation, GateEvaluator, ResolvedTarget } from '../rollout/interfaces.js';
import type { Clock } from '#core/clock.js';
import { projectTrend } from './predict.js';
import { PrometheusSource } from './prometheus.js';
import { ApiServerMetricsSource, TextEndpointSource } from './scrape.js';
import { CompositeSource, type Measurement, type MetricSource } from './sources.js';
import type { SampleCounts, SignalName, SignalValues } from './signals.js';

/**
 * Fewer events than this in a window make a ratio or a quantile noise (a p99 of 5 requests is the
 * slowest of them), so such a signal is not judged in that window.
 */
export const MIN_SAMPLES = 20;

/**
 * The default of `spec.gates.apiServer.minLatencyIncreaseSeconds`: a relative latency bound never sits
 * closer than this above the baseline, because apiserver latency buckets are 25-50 ms apart below 0.5 s
 * and smaller moves of an interpolated p99 are bucket noise. Used when a spec predates the field (a
 * unit-test spec or an object written before it existed and not yet defaulted on read).
 */
export const RELATIVE_FLOOR_SECONDS = 0.1;

/**
 * The noise floor of API server p99 for these gates: the spec's `minLatencyIncreaseSeconds`, or
 * {@link RELATIVE_FLOOR_SECONDS}. Targets whose control planes share busy CPUs raise it so that scheduler
 * noise is not read as the collector's regression.
 */
export function latencyFloorSeconds(gates: GatesSpec): number {
  const v = (gates.apiServer as Partial<GatesSpec['apiServer']>).minLatencyIncreaseSeconds;
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : RELATIVE_FLOOR_SECONDS;
}

/**
 * When a target's first baseline finds its source warming up (a scraping source's first scrape), the
 * evaluator has the reconciler come back after one gate interval, clamped to these bounds, and measures
 * again, so the first step gets a baseline over a window like the evaluations' (long enough to hold
 * {@link MIN_SAMPLES} requests on a quiet cluster, short enough not to hold up a step for long).
 */
export const BASELINE_WARMUP_SECONDS = { min: 10, max: 30 } as const;

/** Shortest time between two scrapes of one target while an evaluation warms up (the scrape's minimum window). */
export const MIN_RESCRAPE_MS = 1000;

/** The warm-up wait of a first baseline, seconds: the gate interval within {@link BASELINE_WARMUP_SECONDS}. */
export function baselineWarmupSeconds(gates: GatesSpec): number {
  return Math.min(BASELINE_WARMUP_SECONDS.max, Math.max(BASELINE_WARMUP_SECONDS.min, gates.intervalSeconds));
}

/** Signals that are a ratio or a quantile of events, and so mean nothing over too few of them. */
const SAMPLED: ReadonlySet<SignalName> = new Set(['apiServerP99Seconds', 'apiServerErrorRatio', 'coreDNSErrorRatio', 'coreDNSP99Seconds']);

/**
 * The values of a measurement that can serve as a baseline or a projection point: ratios and quantiles
 * resting on fewer than {@link MIN_SAMPLES} events are left out, as {@link judge} leaves them unjudged.
 * A p99 of 11 requests is the slowest of them; as a baseline it would set a bound from noise, and as a
 * point of the predictive guard's curve it would be extrapolated to 100 % of the nodes (found on the
 * real control plane: a 0.93 s "baseline" of a few requests made the guard project 7 s). Rates stay:
 * 0.4 requests per second is a measurement, whatever the count.
 */
export function reliableValues(m: { values: SignalValues; sampleCounts?: SampleCounts }): SignalValues {
  const out: SignalValues = {};
  for (const [k, v] of Object.entries(m.values) as Array<[SignalName, number | undefined]>) {
    if (v === undefined) continue;
    const n = m.sampleCounts?.[k];
    if (SAMPLED.has(k) && n !== undefined && n < MIN_SAMPLES) continue;
    out[k] = v;
  }
  return out;
}

/** The signals that are judged (the others are recorded only). */
const JUDGED: readonly SignalName[] = ['apiServerP99Seconds', 'apiServerErrorRatio', 'apfRejectionsPerSecond', 'coreDNSErrorRatio', 'coreDNSP99Seconds'];

/** Makes the MetricSource of a target. Sources keep the previous scrape, so one is kept per target. */
export interface SourceFactory {
  source(ctx: GateContext): MetricSource;
}

/** Options of {@link DefaultSourceFactory}. */
export interface DefaultSourceFactoryOptions {
  /**
   * The fetch of the sources that read a URL (a Prometheus server, a CoreDNS metrics endpoint). Default
   * the global fetch. The fleet simulator passes one that answers in virtual time from its modelled
   * Prometheus servers, so the gates it runs go through the same source selection as the operator's.
   */
  fetch?: typeof fetch;
}

/**
 * The default sources: a Prometheus server when the target names one; otherwise the API server's own
 * /metrics through the cluster client, plus CoreDNS's metrics endpoint when the target names one.
 */
export class DefaultSourceFactory implements SourceFactory {
  private readonly cache = new Map<string, { fingerprint: string; client: unknown; source: MetricSource }>();
  private readonly clock?: Clock;
  private readonly fetch?: typeof fetch;
  constructor(clock?: Clock, options: DefaultSourceFactoryOptions = {}) {
    this.clock = clock;
    if (options.fetch) this.fetch = options.fetch;
  }

  source(ctx: GateContext): MetricSource {
    const key = `${ctx.rollout.metadata?.namespace ?? ''}/${ctx.rollout.metadata?.name ?? ''}/${ctx.target.name}`;
    const g = ctx.rollout.spec.gates;
    const fingerprint = JSON.stringify([ctx.target.metrics ?? {}, g.windowSeconds, g.promQL ?? {}]);
    const hit = this.cache.get(key);
    // A rebuilt client (rotated kubeconfig) gets a new source: the old one scrapes through the old client.
    if (hit && hit.fingerprint === fingerprint && hit.client === ctx.client) return hit.source;
    const clock = this.clock ? { clock: this.clock } : {};
    const fetchImpl = this.fetch ? { fetch: this.fetch } : {};
    let source: MetricSource;
    const m = ctx.target.metrics;
    if (m?.prometheusURL) {
      source = new PrometheusSource({ url: m.prometheusURL, windowSeconds: g.windowSeconds, queries: { ...(g.promQL ?? {}) }, ...clock, ...fetchImpl });
    } else {
      const parts = [{ name: 'apiserver', source: new ApiServerMetricsSource(ctx.client, clock) as MetricSource }];
      if (m?.coreDNSMetricsURL) parts.push({ name: 'coredns', source: new TextEndpointSource(m.coreDNSMetricsURL, { ...clock, ...fetchImpl }) });
      source = new CompositeSource(parts);
    }
    this.cache.set(key, { fingerprint, client: ctx.client, source });
    return source;
  }

  /** Forgets a target's source (for example when the target is removed). */
  forget(rollout: TelemetryRollout, target: ResolvedTarget): void {
    this.cache.delete(`${rollout.metadata?.namespace ?? ''}/${rollout.metadata?.name ?? ''}/${target.name}`);
  }
}

/** The bounds a measurement is held to: absolute SLOs, tightened by the baseline for API server p99. */
export function thresholdsFor(gates: GatesSpec, baseline?: Baseline): Partial<Record<SignalName, { bound: number; why: string }>> {
  const abs = gates.apiServer.maxP99LatencySeconds;
  const b = baseline?.values?.apiServerP99Seconds;
  let p99 = { bound: abs, why: 'absolute SLO' };
  if (b !== undefined && Number.isFinite(b)) {
    // Rounded to 6 significant digits: status shows 0.3, not 0.30000000000000004.
    const ratio = gates.apiServer.maxLatencyIncreaseRatio;
    const floor = latencyFloorSeconds(gates);
    const rel = Number(Math.max(b * ratio, b + floor).toPrecision(6));
    // The message names the term that set the bound, so an operator knows which knob moved it.
    const why = b * ratio >= b + floor ? `baseline ${fmt(b)}s x ${ratio}` : `baseline ${fmt(b)}s + ${fmt(floor)}s (minLatencyIncreaseSeconds)`;
    if (rel < abs) p99 = { bound: rel, why };
  }
  return {
    apiServerP99Seconds: p99,
    apiServerErrorRatio: { bound: gates.apiServer.maxErrorRatio, why: 'absolute SLO' },
    apfRejectionsPerSecond: { bound: gates.apiServer.maxAPFRejectionsPerSecond, why: 'absolute SLO' },
    coreDNSErrorRatio: { bound: gates.coreDNS.maxErrorRatio, why: 'absolute SLO' },
    coreDNSP99Seconds: { bound: gates.coreDNS.maxP99LatencySeconds, why: 'absolute SLO' },
  };
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toPrecision(3).replace(/\.?0+$/, '');
}

/** Which count gates a signal (a ratio needs requests, a quantile observations). */
function enoughSamples(name: SignalName, counts: SampleCounts | undefined): boolean {
  if (!counts) return true; // PromQL sources do not report counts; Prometheus already averaged a window.
  if (name === 'apfRejectionsPerSecond') return true; // any rejection counts
  const n = counts[name];
  return n === undefined || n >= MIN_SAMPLES;
}

/**
 * Judges one measurement: every judged signal with enough samples against its bound. Fail if any is
 * over; NoData if none could be judged; Pass otherwise.
 */
export function judge(m: Measurement, gates: GatesSpec, baseline?: Baseline): GateEvaluation {
  if (m.kind === 'unreachable') return { verdict: 'NoData', unreachable: true, message: m.message, measurements: {}, thresholds: {} };
  if (m.kind === 'nodata') return { verdict: 'NoData', message: m.message, measurements: {}, thresholds: {} };
  const bounds = thresholdsFor(gates, baseline);
  const measurements: Record<string, number> = {};
  for (const [k, v] of Object.entries(m.values) as Array<[SignalName, number | undefined]>) if (v !== undefined && Number.isFinite(v)) measurements[k] = v;
  const thresholds: Record<string, number> = {};
  const failed: string[] = [];
  const notes: string[] = [];
  let judged = 0;
  for (const name of JUDGED) {
    const bound = bounds[name];
    const v = m.values[name];
    if (!bound) continue;
    thresholds[name] = bound.bound;
    if (v === undefined || !Number.isFinite(v)) continue;
    if (!enoughSamples(name, m.sampleCounts)) {
      notes.push(`${name} not judged (${m.sampleCounts?.[name] ?? 0} < ${MIN_SAMPLES} samples)`);
      continue;
    }
    judged++;
    if (v > bound.bound) {
      failed.push(name);
      notes.unshift(`${name} ${fmt(v)} > ${fmt(bound.bound)} (${bound.why})`);
    }
  }
  if (failed.length) return { verdict: 'Fail', failed, measurements, thresholds, message: notes.join('; ') };
  if (judged === 0)
    return {
      verdict: 'NoData',
      measurements,
      thresholds,
      message: `no signal had enough data${m.message ? `: ${m.message}` : ''}${notes.length ? ` (${notes.join('; ')})` : ''}`,
    };
  return { verdict: 'Pass', measurements, thresholds, message: `${judged} signals within bounds${notes.length ? `; ${notes.join('; ')}` : ''}` };
}

/** Options of the evaluator. */
export interface ControlPlaneGateEvaluatorOptions {
  sources?: SourceFactory;
  clock: Clock;
  /** Registry for the gate metrics (per evaluation: measurements, thresholds, verdicts). */
  registry?: Registry;
}

/** The real GateEvaluator: measures, judges, and projects. */
export class ControlPlaneGateEvaluator implements GateEvaluator {
  readonly measures = true;
  private readonly sources: SourceFactory;
  private readonly clock: Clock;
  /** The reliable values ({@link reliableValues}) of the latest ok measurement per target, for baselines and projections. */
  private readonly lastOk = new Map<string, { at: Date; values: SignalValues }>();
  /** When each target's first baseline found its source warming up (clock ms), until it is measured. */
  private readonly warming = new Map<string, number>();
  /** Targets this evaluator has scraped at least once (for a baseline or an evaluation). */
  private readonly scraped = new Set<string>();
  /** When this evaluator first scraped a target for an evaluation (clock ms), during that warm-up window. */
  private readonly evalWarming = new Map<string, number>();
  /** When each target was last scraped for an evaluation (clock ms). */
  private readonly evalScrapedAt = new Map<string, number>();
  private readonly measured?: Gauge;
  private readonly bounds?: Gauge;
  private readonly verdicts?: Counter;

  constructor(o: ControlPlaneGateEvaluatorOptions) {
    this.clock = o.clock;
    this.sources = o.sources ?? new DefaultSourceFactory(o.clock);
    if (o.registry) {
      const labelNames = ['namespace', 'name', 'cluster', 'signal'] as const;
      this.measured = new Gauge({ name: 'tro_gate_measurement', help: 'Latest measured value of a gate signal', labelNames, registers: [o.registry] });
      this.bounds = new Gauge({
        name: 'tro_gate_threshold',
        help: 'Bound a gate signal is held to in the latest evaluation',
        labelNames,
        registers: [o.registry],
      });
      this.verdicts = new Counter({
        name: 'tro_gate_evaluations_total',
        help: 'Gate evaluations by verdict',
        labelNames: ['namespace', 'name', 'cluster', 'verdict'],
        registers: [o.registry],
      });
    }
  }

  private key(ctx: GateContext): string {
    return `${ctx.rollout.metadata?.namespace ?? ''}/${ctx.rollout.metadata?.name ?? ''}/${ctx.target.name}`;
  }

  async captureBaseline(ctx: GateContext): Promise<BaselineCapture> {
    const key = this.key(ctx);
    const waitMs = baselineWarmupSeconds(ctx.rollout.spec.gates) * 1000;
    const message = `measuring the baseline before the step (the metrics source's first scrape needs a second one ${waitMs / 1000}s later)`;
    const began = this.warming.get(key);
    // Not measured again before the window is up: a scrape moments after the first (a status write
    // wakes the reconciler at once) would make a "baseline" of a few requests.
    const left = began === undefined ? 0 : began + waitMs - this.clock.now().getTime();
    if (left > 0) return { retryAfterMs: left, message };
    const m = await this.sources.source(ctx).measure(ctx.signal);
    this.scraped.add(key);
    if (m.kind === 'nodata' && !this.lastOk.has(key) && began === undefined) {
      // A scraping source that has never measured this target only holds its first scrape now ("warming
      // up"), so the first step of every cluster (the canary's first batch, where detection matters most)
      // would run without a baseline and only the absolute SLO would apply. One short window fixes that;
      // it happens once per target and evaluator. Found on the real control plane (e2e/gates). The
      // reconciler requeues for it: no worker sleeps through the window.
      this.warming.set(key, this.clock.now().getTime());
      return { retryAfterMs: waitMs, message };
    }
    // Measured, or waited one window already: go on, with no baseline if there still is none.
    this.warming.delete(key);
    if (m.kind === 'ok') this.lastOk.set(key, { at: m.at, values: reliableValues(m) });
    const last = this.lastOk.get(key);
    if (!last) return {};
    const values: Record<string, number> = {};
    for (const [k, v] of Object.entries(last.values)) if (typeof v === 'number' && Number.isFinite(v)) values[k] = v;
    return { baseline: { capturedAt: last.at.toISOString(), values } };
  }

  async evaluate(ctx: GateContext): Promise<GateEvaluation> {
    const key = this.key(ctx);
    // A target this evaluator has never scraped (a restarted operator, in the middle of a step): its
    // first scrape only starts a window, so a NoData then says nothing of the target. For one warm-up
    // window (as for a first baseline) a NoData asks the reconciler to come back instead of counting
    // towards failureLimit; Pass, Fail and unreachable count at once. Found by the simulator: a restart
    // right after a step's first (too-early) NoData paused the rollout with the candidate running.
    const now = this.clock.now().getTime();
    const waitMs = baselineWarmupSeconds(ctx.rollout.spec.gates) * 1000;
    let began = this.evalWarming.get(key);
    const warmingMessage = `measuring (a new evaluator's first scrape needs a window of up to ${waitMs / 1000}s)`;
    // Within the window, no two scrapes less than a second apart (the scrape's own minimum window).
    if (began !== undefined && now - began < waitMs && now - (this.evalScrapedAt.get(key) ?? 0) < MIN_RESCRAPE_MS) {
      return { verdict: 'NoData', retryAfterMs: (this.evalScrapedAt.get(key) ?? 0) + MIN_RESCRAPE_MS - now, message: warmingMessage };
    }
    if (began === undefined && !this.scraped.has(key)) this.evalWarming.set(key, (began = now));
    const m = await this.sources.source(ctx).measure(ctx.signal);
    this.scraped.add(key);
    this.evalScrapedAt.set(key, now);
    if (m.kind === 'ok') this.lastOk.set(key, { at: m.at, values: reliableValues(m) });
    const ev = judge(m, ctx.rollout.spec.gates, ctx.baseline);
    if (began !== undefined && now - began < waitMs && ev.verdict === 'NoData' && !ev.unreachable) {
      return { ...ev, retryAfterMs: Math.max(MIN_RESCRAPE_MS, began + waitMs - now), message: `${warmingMessage}: ${ev.message ?? ''}` };
    }
    // A verdict, or the window is up: from now on every evaluation counts.
    this.evalWarming.delete(key);
    const labels = { namespace: ctx.rollout.metadata?.namespace ?? '', name: ctx.rollout.metadata?.name ?? '', cluster: ctx.target.name };
    this.verdicts?.inc({ ...labels, verdict: ev.unreachable ? 'Unreachable' : ev.verdict });
    for (const [signal, v] of Object.entries(ev.measurements ?? {})) this.measured?.set({ ...labels, signal }, v);
    for (const [signal, v] of Object.entries(ev.thresholds ?? {})) this.bounds?.set({ ...labels, signal }, v);
    return ev;
  }

  /**
   * Adds the latest measurement at the current fraction to the projection's points, fits request rate
   * and p99 against the fraction, and projects both to 100 % of the nodes. Fail when the projected p99
   * breaks the SLO.
   */
  async project(ctx: GateContext): Promise<Projection | undefined> {
    const g = ctx.rollout.spec.gates;
    const last = this.lastOk.get(this.key(ctx));
    const points = [...(ctx.projection?.points ?? [])];
    if (!points.length && ctx.baseline?.values) {
      // The first baseline was measured before any node moved: the curve's anchor at fraction 0.
      points.push({ fraction: 0, requestRate: ctx.baseline.values.apiServerRequestRate, p99Seconds: ctx.baseline.values.apiServerP99Seconds });
    }
    if (last) {
      const at = points.findIndex((p) => Math.abs(p.fraction - ctx.fraction) < 1e-9);
      const point = { fraction: ctx.fraction, requestRate: last.values.apiServerRequestRate, p99Seconds: last.values.apiServerP99Seconds };
      if (at >= 0) points[at] = point;
      else points.push(point);
    }
    points.sort((a, b) => a.fraction - b.fraction);
    const trimmed = points.slice(-25);
    const curve = (k: 'requestRate' | 'p99Seconds') => trimmed.flatMap((p) => (typeof p[k] === 'number' ? [{ fraction: p.fraction, value: p[k] }] : []));
    // p99 moves smaller than the noise floor (minLatencyIncreaseSeconds) are bucket noise: a curve within
    // it is flat and is not extrapolated.
    const p99 = projectTrend(curve('p99Seconds'), latencyFloorSeconds(g));
    const rate = projectTrend(curve('requestRate'), 0);
    const bound = g.prediction.maxProjectedP99LatencySeconds ?? g.apiServer.maxP99LatencySeconds;
    const base: Projection = { time: this.clock.now().toISOString(), points: trimmed };
    if (p99 === undefined)
      return { ...base, verdict: 'NoData', message: `need measurements at two node fractions to project (have ${curve('p99Seconds').length})` };
    const proj: Projection = { ...base, projectedP99Seconds: p99, verdict: p99 > bound ? 'Fail' : 'Pass' };
    if (rate !== undefined) proj.projectedRequestRate = rate;
    const from = trimmed
      .map(
        (p) =>
          `${Math.round(p.fraction * 1000) / 10}%: p99 ${p.p99Seconds === undefined ? '?' : fmt(p.p99Seconds)}s${p.requestRate === undefined ? '' : `, ${fmt(p.requestRate)} req/s`}`,
      )
      .join('; ');
    proj.message = `projected at 100% of nodes: p99 ${fmt(p99)}s (bound ${fmt(bound)}s)${rate === undefined ? '' : `, ${fmt(rate)} req/s`}; fitted to ${from}`;
    return proj;
  }
}
