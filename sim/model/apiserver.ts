/**
 * A kube-apiserver in aggregate: CPU demand from the requests it serves, queueing latency as utilisation
 * grows, APF rejections (429) beyond capacity, LISTs that outlive the request timeout (504), memory held
 * by LISTs in flight, an OOM-like crash (unreachable) with kubelet's crash-loop backoff, and recovery once
 * the load is gone. It renders its own /metrics page (the series the real gate evaluator reads) from
 * counters it accumulates step by step, so the gates judge the model the way they judge a real server.
 */
import type { Model } from './calibration.js';
import { tier } from './calibration.js';

/** LISTs of one size: one resource listed cluster-wide without resourceVersion (from etcd). */
export interface ListClass {
  /** Requests per second. */
  rps: number;
  /** Serialized size of one response, bytes. */
  bytes: number;
}

/** The load on the API server for one step, besides the cluster's own baseline. */
export interface Demand {
  /** Small requests (GET, PUT, PATCH of one object) per second. */
  smallRps: number;
  /**
   * LISTs by size. Kept apart, not averaged: the p99 of a mix is the largest LIST's latency, which a
   * mean size would hide (a pods LIST is 40x a services LIST).
   */
  lists: ListClass[];
}

/** No load. */
export const NO_DEMAND: Demand = { smallRps: 0, lists: [] };

/** The real kube-apiserver's latency buckets (seconds). */
export const BUCKETS = [0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60];

/** Standard normal CDF (Abramowitz-Stegun 7.1.26 erf, |error| < 1.5e-7). */
function phi(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? (1 + y) / 2 : (1 - y) / 2;
}

/** P(L <= x) for a log-normal latency of median `m` and sigma `s`. */
function lnCdf(x: number, m: number, s: number): number {
  if (m <= 0) return 1;
  return phi(Math.log(x / m) / s);
}

/** Counters of one request class (a verb), as the histogram and the request counter expose them. */
class VerbSeries {
  readonly cum = new Float64Array(BUCKETS.length);
  count = 0;
  sum = 0;
  readonly codes = new Map<string, number>();
  add(n: number, median: number, sigma: number, timeout: number, code: string, timedOutCode?: string): void {
    if (n <= 0) return;
    let served = n;
    if (timedOutCode !== undefined) {
      const late = n * (1 - lnCdf(timeout, median, sigma));
      if (late > 0) {
        this.codes.set(timedOutCode, (this.codes.get(timedOutCode) ?? 0) + late);
        served = n - late;
      }
    }
    this.codes.set(code, (this.codes.get(code) ?? 0) + served);
    for (let i = 0; i < BUCKETS.length; i++) this.cum[i]! += BUCKETS[i]! >= timeout ? n : n * lnCdf(BUCKETS[i]!, median, sigma);
    this.count += n;
    this.sum += n * Math.min(timeout, median * Math.exp((sigma * sigma) / 2));
  }
  reject(n: number): void {
    if (n > 0) this.codes.set('429', (this.codes.get('429') ?? 0) + n);
  }
}

/** What the model reports about one step (for the replay's measurements). */
export interface StepReport {
  up: boolean;
  /** The p99 latency of the requests served in the step, seconds (undefined when down or idle). */
  p99?: number;
  utilisation: number;
  rejectedFraction: number;
  memoryMiB: number;
}

/** One cluster's kube-apiserver. */
export class ApiServerModel {
  private readonly m: Model['apiserver'];
  readonly cores: number;
  readonly memoryLimitMiB: number;
  private readonly baseMemoryMiB: number;
  private readonly baselineRps: number;
  /** Whether it answers at all. */
  up = true;
  private downUntil = 0;
  private upSince: number;
  private backoffIndex = 0;
  /** Crashes so far. */
  crashes = 0;
  /** process_start_time_seconds of the running instance. */
  private startSeconds: number;
  memoryMiB: number;
  /** Latest step's state, which the cluster client's calls see. */
  utilisation = 0;
  queueFactor = 1;
  rejectedFraction = 0;
  private get: VerbSeries = new VerbSeries();
  private list: VerbSeries = new VerbSeries();
  private rejected = 0;
  private readonly objects: { pods: number; services: number; nodes: number };

  constructor(model: Model, nodes: number, nowMs: number) {
    this.m = model.apiserver;
    this.cores = tier(this.m.coresByNodes, nodes);
    this.memoryLimitMiB = tier(this.m.memoryLimitGiBByNodes, nodes) * 1024;
    const pods = Math.round(nodes * model.cluster.podsPerNode);
    this.objects = { pods, services: Math.round(pods * model.cluster.servicesPerPod), nodes };
    const objects = this.objects.pods + this.objects.services * 2 + nodes;
    this.baseMemoryMiB = this.m.memoryBaseMiB + (objects * this.m.memoryPerObjectKiB) / 1024;
    this.memoryMiB = this.baseMemoryMiB;
    this.baselineRps = nodes * this.m.baselineRequestsPerNodePerSecond;
    this.upSince = nowMs;
    this.startSeconds = Math.floor(nowMs / 1000);
  }

  /** Median latency of a small request now (seconds), for the cluster client's calls. */
  smallLatency(): number {
    return this.m.smallRequestMedianSeconds * this.queueFactor;
  }

  /** Median latency of a LIST of `bytes` now (seconds). */
  listLatency(bytes: number): number {
    return Math.min(this.m.requestTimeoutSeconds, (bytes / 1048576) * this.m.listSecondsPerMiB * this.queueFactor + this.smallLatency());
  }

  /**
   * Advances the model by `dt` seconds under `demand`, ending at `nowMs`. Restarts a crashed server
   * whose backoff has passed; crashes one whose memory passes its limit.
   */
  step(nowMs: number, dt: number, demand: Demand): StepReport {
    const m = this.m;
    if (!this.up) {
      if (nowMs < this.downUntil) return { up: false, utilisation: 0, rejectedFraction: 1, memoryMiB: 0 };
      // A new process: counters start again from zero, memory from the base.
      this.up = true;
      this.upSince = nowMs;
      this.startSeconds = Math.floor(nowMs / 1000);
      this.memoryMiB = this.baseMemoryMiB;
      this.get = new VerbSeries();
      this.list = new VerbSeries();
      this.rejected = 0;
    }
    if (nowMs - this.upSince >= m.crashLoopResetSeconds * 1000) this.backoffIndex = 0;
    const smallRps = this.baselineRps + demand.smallRps;
    const lists = demand.lists.filter((l) => l.rps > 0);
    let cpu = smallRps * m.smallRequestCpuSeconds;
    let listRps = 0;
    for (const l of lists) {
      cpu += l.rps * (l.bytes / 1048576) * m.listSecondsPerMiB;
      listRps += l.rps;
    }
    const rho = cpu / this.cores;
    this.utilisation = rho;
    this.queueFactor = 1 / (1 - Math.min(rho, m.queueingCap));
    const accept = rho > 1 ? 1 / rho : 1;
    this.rejectedFraction = 1 - accept;
    const smallMedian = m.smallRequestMedianSeconds * this.queueFactor;
    const T = m.requestTimeoutSeconds;
    const nSmall = smallRps * accept * dt;
    this.get.add(nSmall, smallMedian, m.smallRequestSigma, T, '200');
    this.get.reject(smallRps * (1 - accept) * dt);
    const classes: Array<{ n: number; median: number; sigma: number }> = [{ n: nSmall, median: smallMedian, sigma: m.smallRequestSigma }];
    // Memory: the watch cache plus every LIST in flight, times its amplification. LISTs in flight are
    // offered rate x latency (Little's law) up to what APF's seats admit at once; a saturated server
    // keeps its seats full of slow LISTs, which is what exhausts its memory.
    let inflight = 0;
    let inflightMiB = 0;
    for (const l of lists) {
      const mib = l.bytes / 1048576;
      const median = mib * m.listSecondsPerMiB * this.queueFactor + smallMedian;
      const n = l.rps * accept * dt;
      this.list.add(n, median, m.listSigma, T, '200', '504');
      this.list.reject(l.rps * (1 - accept) * dt);
      classes.push({ n, median, sigma: m.listSigma });
      const k = l.rps * Math.min(median, T);
      inflight += k;
      inflightMiB += k * mib;
    }
    this.rejected += (smallRps + listRps) * (1 - accept) * dt;
    const seatsForLists = m.apfSeats / m.listSeatWidth;
    if (inflight > seatsForLists) inflightMiB *= seatsForLists / inflight;
    const target = this.baseMemoryMiB + inflightMiB * m.listMemoryAmplification;
    this.memoryMiB += (target - this.memoryMiB) * (1 - Math.exp(-dt / m.memoryTimeConstantSeconds));
    const p99 = quantile99(classes, T);
    const report: StepReport = { up: true, utilisation: rho, rejectedFraction: this.rejectedFraction, memoryMiB: this.memoryMiB };
    if (p99 !== undefined) report.p99 = p99;
    if (this.memoryMiB > this.memoryLimitMiB) {
      // OOM-killed: down for the restart plus the crash-loop backoff, which grows while it keeps dying.
      const backoff = m.crashLoopBackoffSeconds[Math.min(this.backoffIndex, m.crashLoopBackoffSeconds.length - 1)] ?? 0;
      this.backoffIndex++;
      this.crashes++;
      this.up = false;
      this.downUntil = nowMs + (m.restartSeconds + backoff) * 1000;
      this.utilisation = 0;
    }
    return report;
  }

  /**
   * Kills the process now, whatever its load (a scenario's fault: a node failure, an OOM from someone
   * else's load): down for `downSeconds`, after which the next step restarts it as after a crash. Does not
   * advance the crash-loop backoff (this death is not the load's doing).
   */
  forceCrash(nowMs: number, downSeconds: number): void {
    this.crashes++;
    this.up = false;
    this.downUntil = Math.max(this.downUntil, nowMs + downSeconds * 1000);
    this.utilisation = 0;
  }

  /** The /metrics page: the series the gates and the preflight read, from the running instance's counters. */
  metricsText(): string {
    const out: string[] = [];
    out.push('# TYPE apiserver_request_duration_seconds histogram');
    for (const [verb, s] of [
      ['GET', this.get],
      ['LIST', this.list],
    ] as const) {
      for (let i = 0; i < BUCKETS.length; i++)
        out.push(`apiserver_request_duration_seconds_bucket{verb="${verb}",le="${BUCKETS[i]}"} ${Math.round(s.cum[i]!)}`);
      out.push(`apiserver_request_duration_seconds_bucket{verb="${verb}",le="+Inf"} ${Math.round(s.count)}`);
      out.push(`apiserver_request_duration_seconds_sum{verb="${verb}"} ${s.sum.toFixed(3)}`);
      out.push(`apiserver_request_duration_seconds_count{verb="${verb}"} ${Math.round(s.count)}`);
    }
    out.push('# TYPE apiserver_request_total counter');
    for (const [verb, s] of [
      ['GET', this.get],
      ['LIST', this.list],
    ] as const) {
      for (const [code, n] of [...s.codes].sort()) out.push(`apiserver_request_total{verb="${verb}",code="${code}"} ${Math.round(n)}`);
    }
    if (this.rejected > 0) {
      out.push('# TYPE apiserver_flowcontrol_rejected_requests_total counter');
      out.push(
        `apiserver_flowcontrol_rejected_requests_total{flow_schema="service-accounts",priority_level="workload-low",reason="queue-full"} ${Math.round(this.rejected)}`,
      );
    }
    out.push('# TYPE apiserver_resource_objects gauge');
    out.push(`apiserver_resource_objects{group="",resource="pods"} ${this.objects.pods}`);
    out.push(`apiserver_resource_objects{group="",resource="services"} ${this.objects.services}`);
    out.push(`apiserver_resource_objects{group="discovery.k8s.io",resource="endpointslices"} ${this.objects.services}`);
    out.push('# TYPE process_start_time_seconds gauge');
    out.push(`process_start_time_seconds ${this.startSeconds}`);
    return `${out.join('\n')}\n`;
  }
}

/** The p99 of a mixture of log-normal classes (latencies capped at `cap`), by bisection in log space. */
function quantile99(classes: Array<{ n: number; median: number; sigma: number }>, cap: number): number | undefined {
  const n = classes.reduce((a, c) => a + c.n, 0);
  if (n <= 0) return undefined;
  const cdf = (x: number): number => {
    if (x >= cap) return 1;
    let sum = 0;
    for (const c of classes) sum += c.n * lnCdf(x, c.median, c.sigma);
    return sum / n;
  };
  let lo = Math.log(1e-4);
  let hi = Math.log(cap);
  if (cdf(Math.exp(hi) * 0.999999) < 0.99) return cap;
  for (let i = 0; i < 40; i++) {
    const mid = (lo + hi) / 2;
    if (cdf(Math.exp(mid)) < 0.99) lo = mid;
    else hi = mid;
  }
  return Math.exp(hi);
}
