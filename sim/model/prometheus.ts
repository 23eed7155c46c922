/**
 * A Prometheus server scraping one cluster (its kube-apiserver's and its CoreDNS's /metrics), answering
 * the product's gate queries over HTTP the way the real one would, so the real PrometheusSource reads it:
 * - it scrapes every `scrapeIntervalSeconds` while it is up; a scrape of a crashed API server fails and
 *   adds no sample (CoreDNS keeps being scraped);
 * - a sample is the value at the last successful scrape: `rate(x[w])` needs two samples of the same
 *   process inside the window `w`, and a series with no sample within the lookback delta
 *   (`stalenessSeconds`, 5 min) is stale, so a query over it is empty: no data;
 * - down, it neither scrapes nor answers (connection refused), which the gates see as NoData.
 *
 * It answers only the product's default PromQL (`DEFAULT_PROMQL`, the window read from the query): it
 * recognises each query and computes its value with the product's own signal code over the two
 * scrapes, rather than evaluating PromQL. Prometheus extrapolates `rate()` to the window's edges; the
 * model divides by the time between the samples, which is what the operator's own scraping does.
 */
import { DEFAULT_PROMQL, renderQuery } from '../../operator/src/gates/prometheus.js';
import { parsePrometheusText, type ParsedMetrics } from '../../operator/src/gates/promtext.js';
import { apiServerSignals, coreDNSSignals, SIGNAL_NAMES, type SignalName } from '../../operator/src/gates/signals.js';
import type { Model } from './calibration.js';

/** What the modelled server scrapes: the target's two pages, or undefined when the target does not answer. */
export interface ScrapeTargets {
  apiserver(): string | undefined;
  coredns(): string;
}

interface Sample {
  t: number;
  metrics: ParsedMetrics;
  instance: number | undefined;
}

/** An HTTP answer of the query API. */
export interface QueryAnswer {
  status: number;
  body: unknown;
}

const API_SIGNALS: ReadonlySet<SignalName> = new Set([
  'apiServerP99Seconds',
  'apiServerErrorRatio',
  'apiServerRequestRate',
  'apiServerListRate',
  'apfRejectionsPerSecond',
]);

/** One cluster's Prometheus server. */
export class PrometheusModel {
  /** Whether it runs (scrapes and answers). */
  up = true;
  /** Successful scrapes so far, by job. */
  readonly scrapes = { apiserver: 0, coredns: 0 };
  private readonly m: Model['prometheus'];
  private readonly targets: ScrapeTargets;
  private readonly series: Record<'apiserver' | 'coredns', Sample[]> = { apiserver: [], coredns: [] };

  constructor(model: Model, targets: ScrapeTargets) {
    this.m = model.prometheus;
    this.targets = targets;
  }

  /** The scrape interval, ms. */
  get intervalMs(): number {
    return this.m.scrapeIntervalSeconds * 1000;
  }

  /** One scrape of both jobs at `nowMs` (nothing while down). */
  scrape(nowMs: number): void {
    if (!this.up) return;
    const api = this.targets.apiserver();
    if (api !== undefined) this.keep('apiserver', nowMs, api);
    this.keep('coredns', nowMs, this.targets.coredns());
  }

  private keep(job: 'apiserver' | 'coredns', t: number, text: string): void {
    const metrics = parsePrometheusText(text);
    const start = metrics.families.get('process_start_time_seconds')?.samples[0]?.value;
    const s = this.series[job];
    s.push({ t, metrics, instance: start });
    this.scrapes[job]++;
    // Kept for twice the lookback delta: enough for the default 30 s window and the staleness rule (a
    // gate window longer than that sees only what is kept, which the simulator's scenarios never use).
    const horizon = t - 2 * this.m.stalenessSeconds * 1000;
    while (s.length > 0 && s[0]!.t < horizon) s.shift();
  }

  /** Answers `GET /api/v1/query?query=…` at `nowMs`. */
  query(query: string, nowMs: number): QueryAnswer {
    const w = /\[(\d+)(ms|s)\]/.exec(query);
    const windowSeconds = w ? Number(w[1]) / (w[2] === 'ms' ? 1000 : 1) : undefined;
    const name = windowSeconds === undefined ? undefined : SIGNAL_NAMES.find((n) => renderQuery(DEFAULT_PROMQL[n], windowSeconds) === query);
    if (name === undefined || windowSeconds === undefined)
      return { status: 400, body: { status: 'error', errorType: 'bad_data', error: 'the modelled Prometheus answers only the default gate queries' } };
    const job = API_SIGNALS.has(name) ? 'apiserver' : 'coredns';
    const value = this.value(job, name, windowSeconds, nowMs);
    const result = value === undefined ? [] : [{ metric: {}, value: [nowMs / 1000, String(value)] }];
    return { status: 200, body: { status: 'success', data: { resultType: 'vector', result } } };
  }

  /** The signal over the window ending now, or undefined (no data: stale, or fewer than two samples). */
  private value(job: 'apiserver' | 'coredns', name: SignalName, windowSeconds: number, nowMs: number): number | undefined {
    const s = this.series[job];
    const last = s[s.length - 1];
    if (!last || nowMs - last.t > this.m.stalenessSeconds * 1000) return undefined;
    const from = nowMs - windowSeconds * 1000;
    // The oldest sample in the window of the newest sample's process (a restart resets the counters).
    const first = s.find((x) => x.t > from && x.instance === last.instance);
    if (!first || first === last) return undefined;
    const seconds = (last.t - first.t) / 1000;
    const r = job === 'apiserver' ? apiServerSignals(first.metrics, last.metrics, seconds) : coreDNSSignals(first.metrics, last.metrics, seconds);
    return r.values[name];
  }
}
