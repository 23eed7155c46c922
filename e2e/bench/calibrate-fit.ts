/**
 * The pure half of `npm run sim:calibrate`: the simulator's API server model's prediction for a measured
 * point, the fits of its parameters to the measured points, and the calibration file written from them.
 * The measuring half (e2e/bench/calibrate.ts) needs the real control plane; this half is unit-tested.
 */
import type { CalibrationFile, Model } from '../../sim/model/calibration.js';
import { predictListLatency, predictSmallLatency } from '../../sim/model/predict.js';

const MIB = 1048576;

/** A batch of identical GETs or LISTs the calibration measured (what the calibration file keeps). */
export interface MeasuredPoint {
  /** `LIST` (cluster-wide, without resourceVersion: served from etcd) or `GET` (one object). */
  verb: 'LIST' | 'GET';
  resource: 'pods' | 'nodes';
  /** Nodes and pods in the cluster when measured. */
  nodes: number;
  pods: number;
  /** Objects in one response. */
  objects: number;
  /** Clients sending at once, each waiting for its answer before the next request. */
  concurrency: number;
  requests: number;
  /** Median response size: the JSON encoded, and on the wire (gzip). */
  bytes: number;
  wireBytes: number;
  /** Client latency quantiles, seconds (p99 of a few requests is their slowest). */
  p50: number;
  p99: number;
  /** The sigma of ln(latency) over the batch. */
  logSigma: number;
  /** The API server's own mean latency (apiserver_request_duration_seconds sum/count delta), seconds. */
  serverMean: number;
  /** CPU seconds per request, the background rate subtracted: kube-apiserver, and the shared etcd. */
  apiserverCpu: number;
  etcdCpu: number;
  /** kube-apiserver RSS before the batch and at its peak, MiB. */
  rssBeforeMiB: number;
  rssPeakMiB: number;
}

/** The cluster at rest at one size (the background the batches' CPU is corrected by). */
export interface BackgroundPoint {
  nodes: number;
  pods: number;
  requestsPerSecond: number;
  apiserverCpuPerSecond: number;
  etcdCpuPerSecond: number;
  rssMiB: number;
  /** The window's resource requests (not WATCH) by latency: `[upper bound s, cumulative count]`, finite bounds. */
  latencyBuckets: Array<[number, number]>;
  /** Requests the histogram observed in the window (its +Inf bucket). */
  observations: number;
}

/** WATCHes held open: what they cost while nothing changes. */
export interface WatchPoint {
  pods: number;
  watches: number;
  seconds: number;
  /** Median time to the response headers of a WATCH from a current resourceVersion, seconds. */
  establishP50: number;
  /** kube-apiserver CPU seconds per watch per second, the background subtracted. */
  apiserverCpuPerWatchSecond: number;
}

/** Everything one calibration run measured, plus the conditions it ran under. */
export interface Measurements {
  date: string;
  /** The machine's cores (the local control plane shares them with everything else). */
  cores: number;
  /** os.loadavg() at the start and at the end of the run. */
  loadAverageStart: number[];
  loadAverageEnd: number[];
  durationSeconds: number;
  controlPlane: string;
  background: BackgroundPoint[];
  points: MeasuredPoint[];
  watch?: WatchPoint;
}

/** The model's prediction for a measured point (median latency, seconds). */
export function predict(model: Model, p: MeasuredPoint, cores: number): number {
  return p.verb === 'LIST'
    ? predictListLatency(model, { nodes: p.nodes, bytes: p.bytes, concurrency: p.concurrency, cores })
    : predictSmallLatency(model, p.nodes, cores);
}

/** ln(predicted/measured) of a point: 0 is exact, ln 2 a factor of two too slow. */
export function logError(model: Model, p: MeasuredPoint, cores: number): number {
  return Math.log(predict(model, p, cores) / p.p50);
}

/**
 * The listSecondsPerMiB that best predicts the LIST points' median latencies through the model (least
 * squares of ln(predicted/measured), golden-section search over ln k between 1e-4 and 10 s/MiB).
 */
export function fitListSecondsPerMiB(model: Model, points: readonly MeasuredPoint[], cores: number): number {
  const lists = points.filter((p) => p.verb === 'LIST');
  if (lists.length === 0) throw new Error('no LIST points to fit');
  const cost = (lnK: number) => {
    const m: Model = { ...model, apiserver: { ...model.apiserver, listSecondsPerMiB: Math.exp(lnK) } };
    return lists.reduce((a, p) => a + logError(m, p, cores) ** 2, 0);
  };
  let lo = Math.log(1e-4);
  let hi = Math.log(10);
  const g = (Math.sqrt(5) - 1) / 2;
  let x1 = hi - g * (hi - lo);
  let x2 = lo + g * (hi - lo);
  let f1 = cost(x1);
  let f2 = cost(x2);
  for (let i = 0; i < 40; i++) {
    if (f1 < f2) {
      hi = x2;
      x2 = x1;
      f2 = f1;
      x1 = hi - g * (hi - lo);
      f1 = cost(x1);
    } else {
      lo = x1;
      x1 = x2;
      f1 = f2;
      x2 = lo + g * (hi - lo);
      f2 = cost(x2);
    }
  }
  return Math.exp((lo + hi) / 2);
}

/** Least-squares line y = a + b·x; undefined with fewer than two distinct x. */
export function linearFit(xs: readonly number[], ys: readonly number[]): { a: number; b: number } | undefined {
  const n = xs.length;
  if (n < 2 || n !== ys.length) return undefined;
  const mx = xs.reduce((s, x) => s + x, 0) / n;
  const my = ys.reduce((s, y) => s + y, 0) / n;
  const sxx = xs.reduce((s, x) => s + (x - mx) ** 2, 0);
  if (sxx === 0) return undefined;
  const b = xs.reduce((s, x, i) => s + (x - mx) * ((ys[i] ?? 0) - my), 0) / sxx;
  return { a: my - b * mx, b };
}

/** The standard normal CDF (Abramowitz-Stegun 7.1.26, |error| < 1.5e-7). */
function phi(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? (1 + y) / 2 : (1 - y) / 2;
}

/** The inverse of {@link phi}, by bisection. */
function probit(p: number): number {
  let lo = -10;
  let hi = 10;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (phi(mid) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/**
 * A log-normal fitted to latency histograms (summed): every finite bucket whose cumulative share F is
 * strictly between 0 and 1 gives a point (probit(F), ln(bound)) on the line ln(x) = ln(median) + sigma·z.
 * Undefined with fewer than two such buckets.
 */
export function logNormalFromBuckets(
  windows: ReadonlyArray<{ latencyBuckets: Array<[number, number]>; observations: number }>,
): { median: number; sigma: number; observations: number } | undefined {
  const total = windows.reduce((a, w) => a + w.observations, 0);
  if (total <= 0) return undefined;
  const byBound = new Map<number, number>();
  for (const w of windows) for (const [le, n] of w.latencyBuckets) byBound.set(le, (byBound.get(le) ?? 0) + n);
  const zs: number[] = [];
  const lns: number[] = [];
  for (const [le, n] of [...byBound].sort((a, b) => a[0] - b[0])) {
    const f = n / total;
    if (f > 0 && f < 1) {
      zs.push(probit(f));
      lns.push(Math.log(le));
    }
  }
  const fit = linearFit(zs, lns);
  if (!fit || fit.b <= 0) return undefined;
  return { median: Math.exp(fit.a), sigma: fit.b, observations: Math.round(total) };
}

/** A fitted parameter: its new value and the source string the calibration file gives it. */
export interface Fitted {
  value: number;
  source: string;
}

const r3 = (x: number) => Number(x.toPrecision(3));

/** Where a calibration's note begins in a source it only annotates (so a later run replaces the note). */
const NOTE = ' | bound from ';

/** `source` with the calibration's `note` in place of any earlier one. */
function annotate(source: string | undefined, note: string): string {
  const own = (source ?? 'assumed: no source').split(NOTE)[0] ?? '';
  return `${own}${NOTE}${note}`;
}

/**
 * The parameters the measurements determine, each with its source. A parameter the measurements only
 * bound (memory: RSS is a high-water mark) keeps its value when the bound allows it, its source (from
 * `sources`, the file's) annotated with the bound; one they say nothing about is left out.
 */
export function fitParameters(model: Model, ms: Measurements, sources: Readonly<Record<string, string>> = {}): Record<string, Fitted> {
  const out: Record<string, Fitted> = {};
  const at = `sim:calibrate on the local control plane (${ms.controlPlane}), ${ms.date}, ${ms.cores} shared cores`;
  const gets = ms.points.filter((p) => p.verb === 'GET');
  const g = gets.length > 0 ? gets.reduce((a, b) => (b.requests > a.requests ? b : a)) : undefined;
  const getNote = g
    ? `; GETs of one pod alone, one at a time: median ${r3(g.p50 * 1000)} ms, sigma ${r3(g.logSigma)}, ${r3(g.apiserverCpu * 1000)} ms of CPU each (measuredPoints)`
    : '';
  // The model's small requests are mostly the cluster's own baseline (lease renewals, status patches,
  // controllers' GETs), so they are measured on the idle cluster, where that is all the API server does.
  const rest = logNormalFromBuckets(ms.background);
  if (rest) {
    out.smallRequestMedianSeconds = {
      value: r3(rest.median),
      source: `fitted: ${at}: log-normal fitted (least squares on the probit of each bucket's share) to the latency histogram of the idle cluster's resource requests at every size, pooled (${rest.observations} requests)${getNote}`,
    };
    out.smallRequestSigma = { value: r3(rest.sigma), source: `fitted: the same fit's sigma` };
  } else if (g) {
    out.smallRequestMedianSeconds = { value: r3(g.p50), source: `measured: ${at}: median client latency of ${g.requests} GETs of one pod, one at a time` };
    if (Number.isFinite(g.logSigma)) out.smallRequestSigma = { value: r3(g.logSigma), source: `measured: ${at}: sigma of ln(latency) of the same GETs` };
  }
  const restRps = ms.background.reduce((a, b) => a + b.requestsPerSecond, 0);
  const restCpu = ms.background.reduce((a, b) => a + b.apiserverCpuPerSecond, 0);
  if (restRps > 0 && restCpu > 0)
    out.smallRequestCpuSeconds = {
      value: r3(restCpu / restRps),
      source: `measured: ${at}: kube-apiserver CPU of the idle cluster over the requests it served (/proc and apiserver_request_total, every size pooled: ${ms.background.map((b) => `${b.nodes} nodes ${r3((b.apiserverCpuPerSecond / b.requestsPerSecond) * 1000)} ms`).join(', ')}): all it does per baseline request, watch fan-out included${getNote}`,
    };
  const small = out.smallRequestMedianSeconds?.value ?? model.apiserver.smallRequestMedianSeconds;
  const base: Model = { ...model, apiserver: { ...model.apiserver, smallRequestMedianSeconds: small } };
  const lists = ms.points.filter((p) => p.verb === 'LIST');
  if (lists.length > 0) {
    const k = fitListSecondsPerMiB(base, lists, ms.cores);
    const cpuPerMiB = lists.filter((p) => p.concurrency === 1).map((p) => p.apiserverCpu / (p.bytes / MIB));
    out.listSecondsPerMiB = {
      value: r3(k),
      source: `fitted: ${at}: least squares of ln(model/measured) over the ${lists.length} LIST points of measuredPoints (pods and nodes LISTs without resourceVersion, 1 to ${Math.max(...lists.map((p) => p.concurrency))} clients back to back), through sim's ApiServerModel with the machine's cores; the same points measured ${cpuPerMiB.length ? `${r3(Math.min(...cpuPerMiB))}-${r3(Math.max(...cpuPerMiB))}` : '-'} kube-apiserver CPU seconds per MiB one at a time (the model uses one figure for both)`,
    };
    const serial = lists.filter((p) => p.concurrency === 1 && Number.isFinite(p.logSigma) && p.requests >= 3);
    if (serial.length > 0) {
      const s = serial.reduce((a, p) => a + p.logSigma, 0) / serial.length;
      out.listSigma = { value: r3(s), source: `measured: ${at}: mean sigma of ln(latency) of same-size LISTs, one at a time (${serial.length} sizes)` };
    }
    const amp = lists
      .filter((p) => p.concurrency > 1)
      .map((p) => (p.rssPeakMiB - p.rssBeforeMiB) / (p.concurrency * (p.bytes / MIB)))
      .filter((a) => a > 0);
    if (amp.length > 0) {
      // A lower bound only: RSS grows only where the Go heap had no room left. It replaces the value
      // only when the value contradicts it; otherwise it is cited beside the value's own source.
      const lower = r3(Math.max(...amp));
      const what = `kube-apiserver RSS grew by ${lower}x the MiB of LISTs in flight (concurrency x response size; largest of ${amp.map(r3).join(', ')} over the concurrent batches), a lower bound (RSS grows only where the Go heap had no room left)`;
      out.listMemoryAmplification =
        model.apiserver.listMemoryAmplification >= lower
          ? { value: model.apiserver.listMemoryAmplification, source: annotate(sources.listMemoryAmplification, `${at}: ${what}; consistent with the value`) }
          : { value: lower, source: `measured: ${at}: ${what}; the value is that bound` };
    }
  }
  const bg = ms.background;
  if (bg.length > 0) {
    const perNode = bg.reduce((a, b) => a + b.requestsPerSecond, 0) / bg.reduce((a, b) => a + b.nodes, 0);
    out.baselineRequestsPerNodePerSecond = {
      value: r3(perNode),
      source: `measured: ${at}: requests/s of the idle cluster over its nodes (${bg.map((b) => `${b.nodes} nodes ${r3(b.requestsPerSecond)}/s`).join(', ')}; kwok's heartbeats and the controllers)`,
    };
    const first = bg.reduce((a, b) => (b.nodes < a.nodes ? b : a));
    out.memoryBaseMiB = {
      value: first.rssMiB,
      source: `measured: ${at}: kube-apiserver RSS at rest on ${first.nodes} nodes and ${first.pods} pods, before any measured LIST`,
    };
    const fit = linearFit(
      bg.map((b) => b.pods + b.nodes),
      bg.map((b) => b.rssMiB),
    );
    if (fit && fit.b > 0) {
      // An upper bound only: RSS at rest keeps what earlier LISTs and the objects' creation grew.
      const upper = r3(fit.b * 1024);
      const what = `the slope of kube-apiserver RSS at rest against objects stored is ${upper} KiB per object (${bg.map((b) => `${b.pods + b.nodes} objects ${r3(b.rssMiB)} MiB`).join(', ')}), an upper bound (RSS keeps what earlier LISTs and the objects' creation grew)`;
      out.memoryPerObjectKiB =
        model.apiserver.memoryPerObjectKiB <= upper
          ? { value: model.apiserver.memoryPerObjectKiB, source: annotate(sources.memoryPerObjectKiB, `${at}: ${what}; consistent with the value`) }
          : { value: upper, source: `measured: ${at}: ${what}; the value is that bound` };
    }
  }
  return out;
}

/**
 * The calibration file after a run: `file` with the fitted parameters' values and sources replaced, the
 * run's date, and the measured points the fit came from.
 */
export function calibratedFile(file: CalibrationFile & Record<string, unknown>, fitted: Record<string, Fitted>, ms: Measurements): Record<string, unknown> {
  const apiserver = { ...file.apiserver };
  for (const [k, f] of Object.entries(fitted)) {
    if (!(k in apiserver)) throw new Error(`apiserver.${k}: not a parameter of the calibration file`);
    apiserver[k] = { value: f.value, source: f.source };
  }
  const { measuredPoints: _old, ...rest } = file;
  void _old;
  return {
    ...rest,
    '//': "The simulator's model parameters, one place. Each entry: value and source ('measured: <where>' from the repository's own benchmark figures or from `npm run sim:calibrate` on the local control plane, 'fitted: <what>' when derived from measured points through the model, 'documented: <what>' for Kubernetes defaults, 'assumed: <why>' otherwise). `npm run sim:calibrate` rewrites the API server entries it measures, the date, and measuredPoints (the raw points of that run; the machine's cores and load average say how far to trust them).",
    date: ms.date,
    apiserver,
    measuredPoints: ms,
  };
}
