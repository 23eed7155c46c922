/**
 * Metric sources of the health gates: where a cluster's control-plane signals come from
 * (shared/DESIGN.md, "Health gates").
 *
 * A {@link MetricSource} never throws for a measurement problem: every failure comes back as a
 * {@link Measurement} of kind `nodata` (with a message saying why) or, when the target API server itself
 * cannot be reached, `unreachable`, which is the break-glass signal and must not be mistaken for missing
 * data. The evaluator turns measurements plus thresholds into Pass / Fail / NoData.
 *
 * Sources:
 * - {@link ApiServerMetricsSource}: the kube-apiserver's own `/metrics` through the cluster client;
 * - {@link TextEndpointSource}: any Prometheus text endpoint by URL, e.g. CoreDNS `:9153/metrics`;
 * - {@link PrometheusSource}: a Prometheus server's HTTP API with one PromQL query per signal;
 * - {@link CompositeSource}: several of the above merged into one measurement.
 */
import type { Clock } from '#core/clock.js';
import type { ParsedMetrics } from './promtext.js';
import { PromTextParseError, keepFamilies, parsePromFloat, parsePrometheusText, selectFamilies } from './promtext.js';
import type { SampleCounts, SignalName, SignalResult, SignalValues } from './signals.js';
import { API_SERVER_FAMILIES, CORE_DNS_FAMILIES, SIGNAL_NAMES, apiServerSignals, coreDNSSignals } from './signals.js';

export type { SampleCounts, SignalName, SignalValues } from './signals.js';

/** What one measurement of a cluster's control-plane signals returned. */
export type Measurement =
  | {
      kind: 'ok';
      /** When the measurement was taken (the end of the window). */
      at: Date;
      /** The length of the window the values describe, seconds. */
      windowSeconds: number;
      /** The signals; an absent signal had no data in this window. */
      values: SignalValues;
      /** Events behind each signal, when the source knows them (not from PromQL). */
      sampleCounts?: SampleCounts;
      /** Why some signals are missing (e.g. one part of a composite had no data), when known. */
      message?: string;
    }
  | { kind: 'nodata'; at: Date; message: string }
  /** The target API server itself cannot be reached: the break-glass signal, NOT nodata. */
  | { kind: 'unreachable'; at: Date; message: string };

/** Anything that can measure a cluster's control-plane signals. Never rejects; see {@link Measurement}. */
export interface MetricSource {
  measure(signal?: AbortSignal): Promise<Measurement>;
}

/** Computes signals from two parsed scrapes of one instance; e.g. {@link apiServerSignals}. */
export type SignalComputer = (prev: ParsedMetrics, cur: ParsedMetrics, windowSeconds: number) => SignalResult;

/** The time source the scraping sources need: only "now". */
export type NowClock = Pick<Clock, 'now'>;

const systemNow: NowClock = { now: () => new Date() };

/** Options shared by the sources that compare two scrapes. */
export interface ScrapeOptions {
  /** Stamps scrapes and measurements; inject a fake in tests. Default: the system clock. */
  clock?: NowClock;
  /**
   * A previous scrape older than this is not compared against (its window would average a long, stale
   * period and hide a fresh regression); the current scrape becomes the new baseline instead. Default 300.
   */
  maxWindowSeconds?: number;
  /**
   * A scrape taken less than this after the baseline is not compared (tiny windows are pure noise); the
   * baseline is kept so the next measurement gets a longer window. Default 1.
   */
  minWindowSeconds?: number;
}

interface Scrape {
  readonly at: Date;
  readonly metrics: ParsedMetrics;
  /** `process_start_time_seconds`: identifies the process, so a restart or another replica is seen. */
  readonly instance: number | undefined;
}

/** How many instances' baselines are remembered (HA API servers or CoreDNS replicas behind one address). */
const MAX_INSTANCES = 8;

/**
 * Turns successive scrapes of one target into signal measurements, comparing only scrapes of the same
 * process. Behind a load balancer successive scrapes may come from different replicas; each replica keeps
 * its own baseline, so a replica is compared with its own previous scrape.
 */
class DeltaScraper {
  readonly #target: string;
  readonly #compute: SignalComputer;
  readonly #families: readonly string[] | undefined;
  readonly #familySet: ReadonlySet<string> | undefined;
  readonly #maxWindowSeconds: number;
  readonly #minWindowSeconds: number;
  readonly #baselines = new Map<string, Scrape>();
  #last: Scrape | undefined;

  /** `families`: the only families `compute` reads (and the only ones kept in memory); all when undefined. */
  constructor(target: string, compute: SignalComputer, families: readonly string[] | undefined, options: ScrapeOptions) {
    this.#target = target;
    this.#compute = compute;
    this.#families = families;
    this.#familySet = families === undefined ? undefined : new Set(families);
    this.#maxWindowSeconds = options.maxWindowSeconds ?? 300;
    this.#minWindowSeconds = options.minWindowSeconds ?? 1;
    if (!(this.#minWindowSeconds > 0) || !(this.#maxWindowSeconds >= this.#minWindowSeconds)) {
      throw new RangeError(`need 0 < minWindowSeconds <= maxWindowSeconds, got ${this.#minWindowSeconds} and ${this.#maxWindowSeconds}`);
    }
  }

  /** Parses `text` scraped at `at` and compares it with the baseline of the same instance. */
  measureText(text: string, at: Date): Measurement {
    let metrics: ParsedMetrics;
    try {
      // Filtering lines before parsing spares the work (and garbage) of the page's other families.
      const page = parsePrometheusText(this.#familySet === undefined ? text : keepFamilies(text, this.#familySet));
      // Baselines are held between measurements for every cluster: keep only what the signals read.
      metrics = this.#families === undefined ? page : selectFamilies(page, this.#families);
    } catch (err) {
      // A malformed page leaves the baselines alone: the next good scrape is compared with the last good one.
      const detail = err instanceof PromTextParseError ? err.message : describeError(err);
      return { kind: 'nodata', at, message: `${this.#target} metrics page is malformed: ${detail}` };
    }
    const startTime = metrics.families.get('process_start_time_seconds')?.samples[0]?.value;
    const cur: Scrape = { at, metrics, instance: startTime !== undefined && Number.isFinite(startTime) ? startTime : undefined };

    const key = String(cur.instance ?? 'unknown');
    const prev = this.#baselines.get(key);
    const last = this.#last;
    this.#last = cur;
    if (prev === undefined) {
      this.#remember(key, cur);
      if (last === undefined) {
        return { kind: 'nodata', at, message: `warming up: first scrape of ${this.#target}; the next measurement compares against it` };
      }
      if (last.instance !== undefined && cur.instance !== undefined && cur.instance < last.instance) {
        return { kind: 'nodata', at, message: `another ${this.#target} instance answered (process started at ${isoSeconds(cur.instance)}); new baseline` };
      }
      return { kind: 'nodata', at, message: `${this.#target} restarted; new baseline` };
    }

    const windowSeconds = (at.getTime() - prev.at.getTime()) / 1000;
    if (windowSeconds < this.#minWindowSeconds) {
      return { kind: 'nodata', at, message: `only ${windowSeconds} s since the previous scrape of ${this.#target} (minimum ${this.#minWindowSeconds} s); keeping the baseline` };
    }
    this.#remember(key, cur);
    if (windowSeconds > this.#maxWindowSeconds) {
      return { kind: 'nodata', at, message: `the previous scrape of ${this.#target} is ${windowSeconds} s old (maximum ${this.#maxWindowSeconds} s); new baseline` };
    }

    let result: SignalResult;
    try {
      result = this.#compute(prev.metrics, metrics, windowSeconds);
    } catch (err) {
      return { kind: 'nodata', at, message: `cannot compute ${this.#target} signals: ${describeError(err)}` };
    }
    if (Object.keys(result.values).length === 0) {
      return { kind: 'nodata', at, message: `${this.#target} metrics page has none of the expected metrics` };
    }
    return { kind: 'ok', at, windowSeconds, values: result.values, sampleCounts: result.sampleCounts };
  }

  #remember(key: string, scrape: Scrape): void {
    this.#baselines.delete(key); // re-insert so Map order is least recently seen first
    this.#baselines.set(key, scrape);
    while (this.#baselines.size > MAX_INSTANCES) {
      const oldest = this.#baselines.keys().next().value;
      if (oldest === undefined) break;
      this.#baselines.delete(oldest);
    }
  }
}

function isoSeconds(epochSeconds: number): string {
  const d = new Date(epochSeconds * 1000);
  return Number.isNaN(d.getTime()) ? String(epochSeconds) : d.toISOString();
}

/**
 * Runs measurements one at a time: two overlapping calls would race on the baseline and produce a
 * meaningless window.
 */
class Serial {
  #tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(fn, fn);
    this.#tail = next.catch(() => undefined);
    return next;
  }
}

/**
 * Reads a non-resource path (`/metrics`) of one cluster's API server and resolves with the body of a 2xx
 * answer. In production this is the cluster client (`KubeClusterClient.getRaw`, over controller/kube.ts's
 * `rawGet`); {@link ApiServerMetricsSource} tells its failures apart by their cause chain.
 */
export interface RawGetter {
  getRaw(path: string, signal?: AbortSignal): Promise<string>;
}

/** Options of {@link ApiServerMetricsSource}. */
export interface ApiServerMetricsSourceOptions extends ScrapeOptions {
  /** The metrics path. Default `/metrics`. */
  path?: string;
}

/**
 * Measures the API server signals ({@link apiServerSignals}) from the kube-apiserver's own `/metrics`,
 * read through a {@link RawGetter} (in production the target cluster's client).
 *
 * Each call scrapes once and compares with the previous scrape of the same API server process (identified
 * by `process_start_time_seconds`):
 * - first call: `nodata` "warming up";
 * - the process changed (restart): `nodata` "API server restarted; new baseline" for that one window;
 * - connection failure or timeout: `unreachable` (the break-glass signal);
 * - an HTTP error status (e.g. 403 when RBAC does not allow `get` on `/metrics`), a TLS or kubeconfig
 *   problem, a malformed page, or the caller aborting: `nodata` with the reason. The server answered or
 *   was never tried, so it is not "unreachable".
 * Calls are serialized.
 */
export class ApiServerMetricsSource implements MetricSource {
  readonly #getter: RawGetter;
  readonly #path: string;
  readonly #clock: NowClock;
  readonly #scraper: DeltaScraper;
  readonly #serial = new Serial();

  constructor(getter: RawGetter, options: ApiServerMetricsSourceOptions = {}) {
    this.#getter = getter;
    this.#path = options.path ?? '/metrics';
    this.#clock = options.clock ?? systemNow;
    this.#scraper = new DeltaScraper('API server', apiServerSignals, API_SERVER_FAMILIES, options);
  }

  /** Scrapes once; see the class comment for what each outcome means. Never rejects. */
  measure(signal?: AbortSignal): Promise<Measurement> {
    return this.#serial.run(() => this.#measure(signal));
  }

  async #measure(signal?: AbortSignal): Promise<Measurement> {
    let text: string;
    try {
      text = await this.#getter.getRaw(this.#path, signal);
    } catch (err) {
      const at = this.#clock.now();
      const failure = transportFailure(err);
      if (failure === 'unreachable') {
        // A ClusterRequestError already says the URL and the failure (never credentials); its causes only repeat it.
        const why = err instanceof Error && err.name === 'ClusterRequestError' ? err.message : describeError(err);
        return { kind: 'unreachable', at, message: `API server unreachable: ${why}` };
      }
      if (failure === 'aborted') return { kind: 'nodata', at, message: 'measurement aborted' };
      return { kind: 'nodata', at, message: `cannot read API server metrics: ${describeError(err)}` };
    }
    return this.#scraper.measureText(text, this.#clock.now());
  }
}

/** System error codes of a request that never got an answer: the server is down, hung or unroutable. */
const UNREACHABLE_CODES = new Set([
  'ETIMEDOUT', 'ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_SOCKET',
]);

/**
 * Classifies a getter failure by walking its cause chain. The production getter (the operator's
 * KubeClusterClient) throws a ClusterRequestError whose cause is the controller's raw-GET error
 * (controller/kube.ts `RawGetError`) with a system `code` (`ETIMEDOUT`, `ECONNREFUSED`, `EABORTED`, ...) and
 * whose name is `TimeoutError` / `AbortError` for its own timeout and aborts. Duck-typed on purpose: the
 * gates must not depend on the cluster client's classes. An HTTP status (a number) is never unreachable:
 * the server answered.
 */
function transportFailure(err: unknown): 'unreachable' | 'aborted' | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 6 && typeof e === 'object' && e !== null; depth++) {
    const { code, name, cause } = e as { code?: unknown; name?: unknown; cause?: unknown };
    if (code === 'EABORTED' || name === 'AbortError') return 'aborted';
    if (typeof code === 'string' && UNREACHABLE_CODES.has(code)) return 'unreachable';
    if (name === 'TimeoutError') return 'unreachable';
    e = cause;
  }
  return undefined;
}

/** Options of {@link TextEndpointSource}. */
export interface TextEndpointSourceOptions extends ScrapeOptions {
  /** Signals to compute from the page. Default {@link coreDNSSignals}. */
  compute?: SignalComputer;
  /**
   * The metric families `compute` reads, the only ones kept between measurements (add
   * `process_start_time_seconds` for restart detection). Default: {@link CORE_DNS_FAMILIES} with the
   * default `compute`, every family with a custom one.
   */
  families?: readonly string[];
  /** What the endpoint is, for messages. Default `CoreDNS`. */
  target?: string;
  /** Whole-request timeout, ms. Default 5000. */
  timeoutMs?: number;
  /** Largest accepted page, bytes. Default 16 MiB. */
  maxBytes?: number;
  /** The fetch implementation. Default the global `fetch`. */
  fetch?: typeof fetch;
}

/**
 * Measures signals from a Prometheus text endpoint by URL (e.g. CoreDNS `http://10.0.0.10:9153/metrics`),
 * with the same same-instance comparison as {@link ApiServerMetricsSource}.
 *
 * Every failure, including a connection failure, is `nodata`: an unreachable CoreDNS is data about DNS,
 * not about the API server, and the evaluator decides what it means. Calls are serialized.
 */
export class TextEndpointSource implements MetricSource {
  readonly #url: string;
  readonly #authHeaders: Record<string, string>;
  readonly #shownUrl: string;
  readonly #target: string;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;
  readonly #fetch: typeof fetch;
  readonly #clock: NowClock;
  readonly #scraper: DeltaScraper;
  readonly #serial = new Serial();

  /** @throws {TypeError} when `url` is not an absolute URL. */
  constructor(url: string, options: TextEndpointSourceOptions = {}) {
    const split = splitCredentials(url);
    this.#url = split.url;
    this.#authHeaders = split.headers;
    this.#shownUrl = redactUrl(url);
    this.#target = options.target ?? 'CoreDNS';
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
    this.#fetch = options.fetch ?? fetch;
    this.#clock = options.clock ?? systemNow;
    const families = options.families ?? (options.compute === undefined ? CORE_DNS_FAMILIES : undefined);
    this.#scraper = new DeltaScraper(this.#target, options.compute ?? coreDNSSignals, families, options);
  }

  /** Scrapes once and compares with the previous scrape of the same instance. Never rejects. */
  measure(signal?: AbortSignal): Promise<Measurement> {
    return this.#serial.run(() => this.#measure(signal));
  }

  async #measure(signal?: AbortSignal): Promise<Measurement> {
    const got = await fetchText(this.#fetch, this.#url, {
      accept: 'text/plain;version=0.0.4;q=1,*/*;q=0.1',
      timeoutMs: this.#timeoutMs,
      maxBytes: this.#maxBytes,
      headers: this.#authHeaders,
      ...(signal ? { signal } : {}),
    });
    const at = this.#clock.now();
    if (!got.ok) {
      return { kind: 'nodata', at, message: got.aborted ? 'measurement aborted' : `cannot scrape ${this.#target} at ${this.#shownUrl}: ${got.error}` };
    }
    return this.#scraper.measureText(got.body, at);
  }
}

/** Default PromQL per signal. `$window` is replaced by the gate window (see {@link renderQuery}). */
export const DEFAULT_PROMQL: Readonly<Record<SignalName, string>> = (() => {
  const gated = 'verb!~"WATCH|WATCHLIST|CONNECT",subresource!~"exec|attach|portforward|proxy|log"';
  const requests = `sum(rate(apiserver_request_total{${gated}}[$window]))`;
  const responses = 'sum(rate(coredns_dns_responses_total[$window]))';
  return {
    apiServerP99Seconds: `histogram_quantile(0.99, sum by (le) (rate(apiserver_request_duration_seconds_bucket{${gated}}[$window])))`,
    // Error series appear only at the first error: `or 0 * total` turns "no error series" into 0, while
    // "no API server data at all" stays empty (no data) and 0 requests gives NaN (no data).
    apiServerErrorRatio: `(sum(rate(apiserver_request_total{${gated},code=~"5..|429"}[$window])) or 0 * ${requests}) / ${requests}`,
    apiServerRequestRate: requests,
    apiServerListRate: `sum(rate(apiserver_request_total{verb="LIST",subresource!~"exec|attach|portforward|proxy|log"}[$window])) or 0 * ${requests}`,
    // Rejection series appear only at the first rejection; as above, 0 while the API server is scraped.
    apfRejectionsPerSecond: `sum(rate(apiserver_flowcontrol_rejected_requests_total[$window])) or 0 * ${requests}`,
    coreDNSErrorRatio: `(sum(rate(coredns_dns_responses_total{rcode=~"SERVFAIL|REFUSED"}[$window])) or 0 * ${responses}) / ${responses}`,
    coreDNSP99Seconds: 'histogram_quantile(0.99, sum by (le) (rate(coredns_dns_request_duration_seconds_bucket[$window])))',
    coreDNSRequestRate: 'sum(rate(coredns_dns_requests_total[$window]))',
  };
})();

/**
 * Substitutes `$window` in a PromQL template with a Prometheus duration for `windowSeconds`
 * (`30s`; `1500ms` for fractional seconds, since PromQL durations are integers).
 */
export function renderQuery(template: string, windowSeconds: number): string {
  const duration = Number.isInteger(windowSeconds) ? `${windowSeconds}s` : `${Math.round(windowSeconds * 1000)}ms`;
  return template.replaceAll('$window', duration);
}

/** Options of {@link PrometheusSource}. */
export interface PrometheusSourceOptions {
  /** The Prometheus server's base URL, e.g. `http://prometheus:9090` (a path prefix is kept). */
  url: string;
  /**
   * The gate window substituted for `$window`, seconds. It should cover at least two scrape intervals of
   * the Prometheus server, or `rate()` has too few points and the signal is empty.
   */
  windowSeconds: number;
  /**
   * Per-signal PromQL overriding {@link DEFAULT_PROMQL}; `null` disables a signal (e.g. no CoreDNS in this
   * Prometheus). A query should return a single series; if it returns several, the largest value is used
   * (the worst case, for latencies and error ratios).
   */
  queries?: Partial<Record<SignalName, string | null>>;
  /** Extra request headers, e.g. `Authorization`. Never shown in messages. */
  headers?: Record<string, string>;
  /** Per-query timeout, ms. Default 10 000. */
  timeoutMs?: number;
  /** The fetch implementation. Default the global `fetch`. */
  fetch?: typeof fetch;
  /** Stamps measurements. Default the system clock. */
  clock?: NowClock;
}

/** What one PromQL query gave. */
type QueryOutcome = { ok: true; value?: number; series: number } | { ok: false; error: string; aborted: boolean };

/**
 * Measures the signals with instant queries against a Prometheus server's HTTP API (`/api/v1/query`),
 * all queries in parallel. An empty result, or NaN (e.g. a ratio over zero requests), leaves that signal
 * undefined. When every query fails (Prometheus down, HTTP error) the measurement is `nodata`; when
 * some fail, `ok` with those signals undefined and a message naming them. Never `unreachable`: Prometheus
 * being down says nothing about the target API server.
 */
export class PrometheusSource implements MetricSource {
  readonly #queryUrl: URL;
  readonly #shownUrl: string;
  readonly #windowSeconds: number;
  readonly #queries: [SignalName, string][];
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;
  readonly #clock: NowClock;

  /** @throws {TypeError | RangeError} on a malformed URL or a non-positive window (configuration errors). */
  constructor(options: PrometheusSourceOptions) {
    if (!(options.windowSeconds > 0) || !Number.isFinite(options.windowSeconds)) {
      throw new RangeError(`windowSeconds must be positive, got ${options.windowSeconds}`);
    }
    const split = splitCredentials(options.url);
    const base = split.url.endsWith('/') ? split.url : `${split.url}/`;
    this.#queryUrl = new URL('api/v1/query', base);
    this.#shownUrl = redactUrl(options.url);
    this.#windowSeconds = options.windowSeconds;
    this.#queries = [];
    for (const name of SIGNAL_NAMES) {
      const override = options.queries?.[name];
      if (override === null) continue;
      this.#queries.push([name, renderQuery(override ?? DEFAULT_PROMQL[name], options.windowSeconds)]);
    }
    // Explicit headers win over credentials in the URL.
    this.#headers = { ...split.headers, ...options.headers };
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#fetch = options.fetch ?? fetch;
    this.#clock = options.clock ?? systemNow;
  }

  /** The rendered query of each enabled signal, in signal order (for status and debugging). */
  get queries(): ReadonlyArray<readonly [SignalName, string]> {
    return this.#queries;
  }

  /** Runs every enabled query once. Never rejects. */
  async measure(signal?: AbortSignal): Promise<Measurement> {
    const outcomes = await Promise.all(this.#queries.map(([, query]) => this.#query(query, signal)));
    const at = this.#clock.now();
    const values: SignalValues = {};
    const failures: string[] = [];
    const notes: string[] = [];
    let aborted = false;
    this.#queries.forEach(([name], i) => {
      const outcome = outcomes[i];
      if (outcome === undefined) return;
      if (!outcome.ok) {
        aborted ||= outcome.aborted;
        failures.push(`${name}: ${outcome.error}`);
        return;
      }
      if (outcome.value !== undefined) values[name] = outcome.value;
      if (outcome.series > 1) notes.push(`${name}: ${outcome.series} series, used the largest`);
    });
    if (aborted) return { kind: 'nodata', at, message: 'measurement aborted' };
    if (this.#queries.length > 0 && failures.length === this.#queries.length) {
      return { kind: 'nodata', at, message: `Prometheus at ${this.#shownUrl}: ${failures[0] ?? ''}${failures.length > 1 ? ` (and ${failures.length - 1} more failed queries)` : ''}` };
    }
    const messages = [...(failures.length > 0 ? [`failed queries: ${failures.join('; ')}`] : []), ...notes];
    return {
      kind: 'ok',
      at,
      windowSeconds: this.#windowSeconds,
      values,
      ...(messages.length > 0 ? { message: messages.join('; ') } : {}),
    };
  }

  async #query(query: string, signal?: AbortSignal): Promise<QueryOutcome> {
    const url = new URL(this.#queryUrl);
    url.searchParams.set('query', query);
    const got = await fetchText(this.#fetch, url.href, {
      accept: 'application/json',
      timeoutMs: this.#timeoutMs,
      maxBytes: 16 * 1024 * 1024,
      headers: this.#headers,
      acceptErrorBodies: true,
      ...(signal ? { signal } : {}),
    });
    if (!got.ok) return { ok: false, error: got.error, aborted: got.aborted };
    let body: unknown;
    try {
      body = JSON.parse(got.body);
    } catch {
      return { ok: false, error: `HTTP ${got.status}: the answer is not JSON`, aborted: false };
    }
    return interpretQueryResponse(got.status, body);
  }
}

/**
 * Reads a `/api/v1/query` response: `{status, data: {resultType, result}, errorType, error}`, with vector
 * results `[{metric, value: [ts, "v"]}]` or a scalar `[ts, "v"]`.
 */
function interpretQueryResponse(status: number, body: unknown): QueryOutcome {
  if (!isRecord(body)) return { ok: false, error: `HTTP ${status}: unexpected answer`, aborted: false };
  if (body['status'] !== 'success') {
    const kind = typeof body['errorType'] === 'string' ? body['errorType'] : 'error';
    const detail = typeof body['error'] === 'string' ? body['error'] : 'no error message';
    return { ok: false, error: `HTTP ${status}: ${kind}: ${detail}`, aborted: false };
  }
  const data = body['data'];
  if (!isRecord(data)) return { ok: false, error: 'answer without data', aborted: false };
  const result = data['result'];
  const resultType = data['resultType'];
  let samples: unknown[];
  if (resultType === 'vector' && Array.isArray(result)) {
    samples = result.map((r) => (isRecord(r) ? r['value'] : undefined));
  } else if (resultType === 'scalar') {
    samples = [result];
  } else {
    return { ok: false, error: `unsupported result type ${JSON.stringify(resultType)} (want an instant vector or scalar)`, aborted: false };
  }
  let value: number | undefined;
  for (const sample of samples) {
    const raw = Array.isArray(sample) ? (sample[1] as unknown) : undefined;
    const v = typeof raw === 'string' ? parsePromFloat(raw) : undefined;
    if (v === undefined) return { ok: false, error: 'malformed sample in the answer', aborted: false };
    if (Number.isNaN(v)) continue; // e.g. 0/0: nothing to measure
    value = value === undefined ? v : Math.max(value, v);
  }
  return value === undefined ? { ok: true, series: samples.length } : { ok: true, value, series: samples.length };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** One named part of a {@link CompositeSource}. */
export interface CompositePart {
  /** Shown in messages, e.g. `apiserver` or `coredns`. */
  readonly name: string;
  readonly source: MetricSource;
}

/**
 * Merges several sources (typically the API server's `/metrics` and CoreDNS's) into one measurement,
 * measured in parallel:
 * - any part `unreachable` → `unreachable` (the break-glass signal wins over everything);
 * - every part `nodata` → `nodata` with all the reasons;
 * - otherwise `ok` with the union of the values (an earlier part wins when two define the same signal),
 *   the longest window of the ok parts, and a message naming the parts that had no data and why.
 * A part that rejects (breaking the MetricSource contract) counts as `nodata`.
 */
export class CompositeSource implements MetricSource {
  readonly #parts: readonly CompositePart[];

  /** @throws {RangeError} without parts. */
  constructor(parts: readonly CompositePart[]) {
    if (parts.length === 0) throw new RangeError('a CompositeSource needs at least one part');
    this.#parts = [...parts];
  }

  /** Measures every part once, in parallel. Never rejects. */
  async measure(signal?: AbortSignal): Promise<Measurement> {
    const results = await Promise.all(
      this.#parts.map(async (part): Promise<Measurement> => {
        try {
          return await part.source.measure(signal);
        } catch (err) {
          return { kind: 'nodata', at: new Date(), message: `source failed: ${describeError(err)}` };
        }
      }),
    );
    const at = new Date(Math.max(...results.map((r) => r.at.getTime())));
    const named = results.map((r, i) => ({ name: this.#parts[i]?.name ?? `part ${i}`, r }));

    const unreachable = named.filter(({ r }) => r.kind === 'unreachable');
    if (unreachable.length > 0) {
      return { kind: 'unreachable', at, message: unreachable.map(({ name, r }) => `${name}: ${messageOf(r)}`).join('; ') };
    }
    const oks = named.flatMap(({ name, r }) => (r.kind === 'ok' ? [{ name, r }] : []));
    const noData = named.filter(({ r }) => r.kind === 'nodata');
    if (oks.length === 0) {
      return { kind: 'nodata', at, message: noData.map(({ name, r }) => `${name}: ${messageOf(r)}`).join('; ') };
    }

    const values: SignalValues = {};
    const sampleCounts: SampleCounts = {};
    let haveCounts = false;
    for (const { r } of oks) {
      for (const name of SIGNAL_NAMES) {
        const v = r.values[name];
        if (v !== undefined && values[name] === undefined) {
          values[name] = v;
          const c = r.sampleCounts?.[name];
          if (c !== undefined) {
            sampleCounts[name] = c;
            haveCounts = true;
          }
        }
      }
    }
    const messages = [
      ...noData.map(({ name, r }) => `${name}: no data: ${messageOf(r)}`),
      ...oks.flatMap(({ name, r }) => (r.message ? [`${name}: ${r.message}`] : [])),
    ];
    return {
      kind: 'ok',
      at,
      windowSeconds: Math.max(...oks.map(({ r }) => r.windowSeconds)),
      values,
      ...(haveCounts ? { sampleCounts } : {}),
      ...(messages.length > 0 ? { message: messages.join('; ') } : {}),
    };
  }
}

function messageOf(m: Measurement): string {
  return m.kind === 'ok' ? (m.message ?? 'ok') : m.message;
}

/** A URL without user info, for messages. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.href;
  } catch {
    return '(invalid URL)';
  }
}

/**
 * Splits `http://user:pass@host/...` into the bare URL and a Basic Authorization header: fetch refuses
 * URLs with credentials, and the credentials must never reach a message.
 * @throws {TypeError} when `url` is not an absolute URL.
 */
function splitCredentials(url: string): { url: string; headers: Record<string, string> } {
  const u = new URL(url);
  if (u.username === '' && u.password === '') return { url: u.href, headers: {} };
  const user = decodeURIComponent(u.username);
  const password = decodeURIComponent(u.password);
  u.username = '';
  u.password = '';
  return { url: u.href, headers: { Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` } };
}

/**
 * The message of an error and of its causes (undici hides the socket error, e.g. ECONNREFUSED, in
 * `cause`). Duck-typed rather than `instanceof Error`, which fails for errors from another realm.
 */
function describeError(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth++) {
    const message = plainMessage(current);
    const code = typeof current === 'object' && 'code' in current && typeof current.code === 'string' ? current.code : '';
    parts.push(code && !message.includes(code) ? `${code}: ${message}` : message);
    current = typeof current === 'object' && 'cause' in current ? current.cause : undefined;
  }
  return parts.join(': ');
}

function plainMessage(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null) {
    return 'message' in v && typeof v.message === 'string' ? v.message : JSON.stringify(v);
  }
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' || typeof v === 'symbol') return v.toString();
  return 'unknown error';
}

interface FetchTextOptions {
  accept: string;
  timeoutMs: number;
  maxBytes: number;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Return the body of non-2xx answers too (Prometheus explains errors in JSON). */
  acceptErrorBodies?: boolean;
}

type FetchTextResult = { ok: true; status: number; body: string } | { ok: false; error: string; aborted: boolean };

/** GET with a timeout and a size limit; every failure comes back as a value. */
async function fetchText(fetchImpl: typeof fetch, url: string, options: FetchTextOptions): Promise<FetchTextResult> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  try {
    const res = await fetchImpl(url, { headers: { ...options.headers, Accept: options.accept }, signal, redirect: 'follow' });
    const length = Number(res.headers.get('content-length') ?? NaN);
    if (length > options.maxBytes) {
      await res.body?.cancel();
      return { ok: false, error: `answer larger than ${options.maxBytes} bytes`, aborted: false };
    }
    if (!res.ok && !options.acceptErrorBodies) {
      await res.body?.cancel();
      return { ok: false, error: `HTTP ${res.status} ${res.statusText}`.trim(), aborted: false };
    }
    const body = await res.text();
    if (body.length > options.maxBytes) return { ok: false, error: `answer larger than ${options.maxBytes} bytes`, aborted: false };
    return { ok: true, status: res.status, body };
  } catch (err) {
    if (options.signal?.aborted) return { ok: false, error: 'aborted', aborted: true };
    if (timeout.aborted) return { ok: false, error: `no answer within ${options.timeoutMs} ms`, aborted: false };
    return { ok: false, error: describeError(err), aborted: false };
  }
}
