/**
 * The gate source that asks a Prometheus server: one instant PromQL query per signal
 * ({@link PrometheusSource}, {@link DEFAULT_PROMQL}). See sources.ts for the {@link Measurement} contract.
 */
import { fetchText, redactUrl, splitCredentials } from './fetchtext.js';
import { parsePromFloat } from './promtext.js';
import type { SignalName, SignalValues } from './signals.js';
import { SIGNAL_NAMES } from './signals.js';
import { systemNow, type Measurement, type MetricSource, type NowClock } from './sources.js';

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
      return {
        kind: 'nodata',
        at,
        message: `Prometheus at ${this.#shownUrl}: ${failures[0] ?? ''}${failures.length > 1 ? ` (and ${failures.length - 1} more failed queries)` : ''}`,
      };
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
