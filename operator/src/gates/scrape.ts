/**
 * The gate sources that scrape a Prometheus text page and compare two scrapes of the same process:
 * {@link ApiServerMetricsSource} (the kube-apiserver's own `/metrics`) and {@link TextEndpointSource}
 * (any text endpoint by URL, e.g. CoreDNS). See sources.ts for the {@link Measurement} contract.
 */
import { describeError, fetchText, redactUrl, splitCredentials } from './fetchtext.js';
import type { ParsedMetrics } from './promtext.js';
import { keepFamilies, selectFamilies } from './promselect.js';
import { PromTextParseError, parsePrometheusText } from './promtext.js';
import type { SignalResult } from './signals.js';
import { API_SERVER_FAMILIES, CORE_DNS_FAMILIES, apiServerSignals, coreDNSSignals } from './signals.js';
import { systemNow, type Measurement, type MetricSource, type NowClock, type SignalComputer } from './sources.js';

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
      return {
        kind: 'nodata',
        at,
        message: `only ${windowSeconds} s since the previous scrape of ${this.#target} (minimum ${this.#minWindowSeconds} s); keeping the baseline`,
      };
    }
    this.#remember(key, cur);
    if (windowSeconds > this.#maxWindowSeconds) {
      return {
        kind: 'nodata',
        at,
        message: `the previous scrape of ${this.#target} is ${windowSeconds} s old (maximum ${this.#maxWindowSeconds} s); new baseline`,
      };
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
  'ETIMEDOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
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
