/**
 * Control-plane health signals computed from two scrapes of the same target (a kube-apiserver or a
 * CoreDNS instance), as the gates use them (docs/concepts.md, "Health gates").
 *
 * Every value is over the window between the two scrapes, from counter increases, so it describes what
 * happened in that window and not since the process started. A signal that had nothing to measure in the
 * window is `undefined` (never 0 or NaN), which the evaluator maps to NoData:
 * - latency quantiles and error ratios are undefined when the window saw no requests;
 * - rates are undefined only when the metric is missing from the page altogether; a rate of 0 is a
 *   real measurement (an idle cluster), not missing data.
 */
import type { Labels, ParsedMetrics, Sample } from './promtext.js';
import { samplesNamed } from './promselect.js';
import type { LabelFilter } from './quantile.js';
import { counterIncrease, histogramIncrease, histogramQuantile, seriesKey } from './quantile.js';

/**
 * The gate signals. Names are part of the gate contract (status, thresholds, PromQL overrides); keep them
 * stable. All are optional: absent means "no data for this signal in this window".
 */
export interface SignalValues {
  /** p99 of `apiserver_request_duration_seconds`, seconds, excluding long-running requests. */
  apiServerP99Seconds?: number;
  /** (5xx + 429) / all of `apiserver_request_total`, same exclusions; 0..1. */
  apiServerErrorRatio?: number;
  /** `apiserver_request_total` per second, same exclusions. */
  apiServerRequestRate?: number;
  /** LIST requests per second: the signature of the December 2024 incident. */
  apiServerListRate?: number;
  /** `apiserver_flowcontrol_rejected_requests_total` per second (API Priority and Fairness rejections). */
  apfRejectionsPerSecond?: number;
  /** (SERVFAIL + REFUSED) / all of `coredns_dns_responses_total`; 0..1. */
  coreDNSErrorRatio?: number;
  /** p99 of `coredns_dns_request_duration_seconds`, seconds. */
  coreDNSP99Seconds?: number;
  /** `coredns_dns_requests_total` per second. */
  coreDNSRequestRate?: number;
}

/** The name of one signal. */
export type SignalName = keyof SignalValues;

/** Every signal name, API server first, in a stable order for status and logs. */
export const SIGNAL_NAMES: readonly SignalName[] = [
  'apiServerP99Seconds',
  'apiServerErrorRatio',
  'apiServerRequestRate',
  'apiServerListRate',
  'apfRejectionsPerSecond',
  'coreDNSErrorRatio',
  'coreDNSP99Seconds',
  'coreDNSRequestRate',
];

/**
 * How many events each signal rests on in the window: requests for request-based ratios and rates, histogram
 * observations for quantiles, rejections for the APF rate. Lets the evaluator distrust a p99 of 3 requests.
 */
export type SampleCounts = Partial<Record<SignalName, number>>;

/** Signals of one window and the event counts behind them. */
export interface SignalResult {
  readonly values: SignalValues;
  readonly sampleCounts: SampleCounts;
}

/**
 * The metric families {@link apiServerSignals} reads, plus `process_start_time_seconds` (instance identity):
 * a source holding a scrape as a baseline keeps only these.
 */
export const API_SERVER_FAMILIES: readonly string[] = [
  'apiserver_request_duration_seconds',
  'apiserver_request_total',
  'apiserver_flowcontrol_rejected_requests_total',
  'process_start_time_seconds',
];
/** The metric families {@link coreDNSSignals} reads, plus `process_start_time_seconds`. */
export const CORE_DNS_FAMILIES: readonly string[] = [
  'coredns_dns_responses_total',
  'coredns_dns_request_duration_seconds',
  'coredns_dns_requests_total',
  'process_start_time_seconds',
];

/** The quantile the latency signals use. */
export const LATENCY_QUANTILE = 0.99;

/**
 * Verbs excluded from API server latency and error signals: their duration is the lifetime of a stream
 * (watches, exec/attach/port-forward connections), not the cost of a request.
 */
export const EXCLUDED_VERBS: readonly string[] = ['WATCH', 'WATCHLIST', 'CONNECT'];
/** Long-running subresources, excluded for the same reason whatever the verb (e.g. `GET .../log?follow`). */
export const EXCLUDED_SUBRESOURCES: readonly string[] = ['exec', 'attach', 'portforward', 'proxy', 'log'];

const excludedVerbs = new Set(EXCLUDED_VERBS);
const excludedSubresources = new Set(EXCLUDED_SUBRESOURCES);

/** True for API server series the gates count: not a long-running verb or subresource. */
export const isGatedApiRequest: LabelFilter = (labels) => {
  // kube-apiserver reports verbs in upper case; compare case-insensitively anyway so a proxy that
  // rewrites them cannot silently re-include watches.
  const verb = (labels['verb'] ?? '').toUpperCase();
  if (excludedVerbs.has(verb)) return false;
  return !excludedSubresources.has(labels['subresource'] ?? '');
};

/** A server error or "too many requests" (APF / max-inflight rejection). */
function isErrorCode(code: string | undefined): boolean {
  if (code === undefined) return false;
  // 53 is the character code of '5': any 5xx.
  return code === '429' || (code.length === 3 && code.charCodeAt(0) === 53);
}

/**
 * Sums the counter increases between two scrapes of the samples named `name`, over the series `filter`
 * accepts, and also over the subset `also` accepts. `present` says whether the current scrape has the
 * metric at all.
 */
function counterIncreases(
  prev: ParsedMetrics,
  cur: ParsedMetrics,
  name: string,
  filter: LabelFilter,
  also: LabelFilter[] = [],
): { present: boolean; total: number; subsets: number[] } {
  const before = new Map<string, number>();
  for (const s of samplesNamed(prev, name)) before.set(seriesKey(s.labels), s.value);
  const current: Sample[] = samplesNamed(cur, name);
  let total = 0;
  const subsets = also.map(() => 0);
  for (const s of current) {
    if (!filter(s.labels)) continue;
    const inc = counterIncrease(before.get(seriesKey(s.labels)), s.value);
    if (!Number.isFinite(inc)) continue; // a NaN counter would poison every sum
    total += inc;
    also.forEach((f, i) => {
      if (f(s.labels)) subsets[i] = (subsets[i] ?? 0) + inc;
    });
  }
  return { present: current.length > 0, total, subsets };
}

/** p99 of a histogram's increase over the series `filter` accepts, or undefined when nothing was observed. */
function latencyQuantile(prev: ParsedMetrics, cur: ParsedMetrics, family: string, filter?: LabelFilter): { value?: number; observations: number } {
  const bucketName = `${family}_bucket`;
  const inc = histogramIncrease(samplesNamed(prev, bucketName), samplesNamed(cur, bucketName), filter);
  const q = histogramQuantile(LATENCY_QUANTILE, inc.buckets);
  return Number.isNaN(q) ? { observations: inc.observations } : { value: q, observations: inc.observations };
}

function checkWindow(windowSeconds: number): void {
  if (!(windowSeconds > 0) || !Number.isFinite(windowSeconds)) {
    throw new RangeError(`window must be a positive number of seconds, got ${windowSeconds}`);
  }
}

const all: LabelFilter = () => true;

/**
 * The API server signals between two scrapes of ONE kube-apiserver instance taken `windowSeconds` apart
 * (the caller makes sure both come from the same process; counter resets are handled anyway).
 *
 * - `apiServerP99Seconds`: p99 of `sum by (le)` of the `apiserver_request_duration_seconds` increases over
 *   {@link isGatedApiRequest} series; sample count = observations.
 * - `apiServerErrorRatio`: increases of `apiserver_request_total` with code 5xx or 429 over all, same
 *   exclusions; sample count = requests.
 * - `apiServerRequestRate` / `apiServerListRate`: those requests (all / verb LIST) per second.
 * - `apfRejectionsPerSecond`: `apiserver_flowcontrol_rejected_requests_total` per second. Its series
 *   only appear at the first rejection, so it is 0 (not undefined) when the page has request metrics but
 *   no rejection series.
 *
 * @throws {RangeError} when `windowSeconds` is not a positive finite number (a caller bug, not data).
 */
export function apiServerSignals(prev: ParsedMetrics, cur: ParsedMetrics, windowSeconds: number): SignalResult {
  checkWindow(windowSeconds);
  const values: SignalValues = {};
  const sampleCounts: SampleCounts = {};

  const latency = latencyQuantile(prev, cur, 'apiserver_request_duration_seconds', isGatedApiRequest);
  sampleCounts.apiServerP99Seconds = latency.observations;
  if (latency.value !== undefined) values.apiServerP99Seconds = latency.value;

  const isList = (l: Labels): boolean => (l['verb'] ?? '').toUpperCase() === 'LIST';
  const requests = counterIncreases(prev, cur, 'apiserver_request_total', isGatedApiRequest, [(l) => isErrorCode(l['code']), isList]);
  const [errors = 0, lists = 0] = requests.subsets;
  if (requests.present) {
    values.apiServerRequestRate = requests.total / windowSeconds;
    values.apiServerListRate = lists / windowSeconds;
    sampleCounts.apiServerRequestRate = requests.total;
    sampleCounts.apiServerListRate = lists;
    sampleCounts.apiServerErrorRatio = requests.total;
    if (requests.total > 0) values.apiServerErrorRatio = errors / requests.total;

    const rejections = counterIncreases(prev, cur, 'apiserver_flowcontrol_rejected_requests_total', all);
    values.apfRejectionsPerSecond = rejections.total / windowSeconds;
    sampleCounts.apfRejectionsPerSecond = rejections.total;
  }
  return { values, sampleCounts };
}

/**
 * The CoreDNS signals between two scrapes of ONE CoreDNS instance taken `windowSeconds` apart.
 *
 * - `coreDNSErrorRatio`: increases of `coredns_dns_responses_total` with rcode SERVFAIL or REFUSED over
 *   all responses; sample count = responses. (NXDOMAIN is a normal answer, not an error.)
 * - `coreDNSP99Seconds`: p99 of `sum by (le)` of `coredns_dns_request_duration_seconds`; sample count =
 *   observations.
 * - `coreDNSRequestRate`: `coredns_dns_requests_total` per second; sample count = requests.
 *
 * Metric names are those of CoreDNS ≥ 1.7; older names (`..._request_count_total`) are not read.
 *
 * @throws {RangeError} when `windowSeconds` is not a positive finite number (a caller bug, not data).
 */
export function coreDNSSignals(prev: ParsedMetrics, cur: ParsedMetrics, windowSeconds: number): SignalResult {
  checkWindow(windowSeconds);
  const values: SignalValues = {};
  const sampleCounts: SampleCounts = {};

  const isFailure = (l: Labels): boolean => l['rcode'] === 'SERVFAIL' || l['rcode'] === 'REFUSED';
  const responses = counterIncreases(prev, cur, 'coredns_dns_responses_total', all, [isFailure]);
  if (responses.present) {
    sampleCounts.coreDNSErrorRatio = responses.total;
    if (responses.total > 0) values.coreDNSErrorRatio = (responses.subsets[0] ?? 0) / responses.total;
  }

  const latency = latencyQuantile(prev, cur, 'coredns_dns_request_duration_seconds');
  sampleCounts.coreDNSP99Seconds = latency.observations;
  if (latency.value !== undefined) values.coreDNSP99Seconds = latency.value;

  const requests = counterIncreases(prev, cur, 'coredns_dns_requests_total', all);
  if (requests.present) {
    values.coreDNSRequestRate = requests.total / windowSeconds;
    sampleCounts.coreDNSRequestRate = requests.total;
  }
  return { values, sampleCounts };
}
