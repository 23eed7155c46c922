// A load generator that reproduces the December 2024 incident's API pattern on a real kube-apiserver:
// cluster-wide LISTs of pods (and services, endpoints) WITHOUT resourceVersion, i.e. consistent
// ("quorum") reads. Its cost grows with the number of objects in the cluster, so a handful of concurrent
// clients is enough to push the API server's p99 over its SLO on a cluster with a realistic pod
// population (see ensurePodPopulation in population.ts).
//
// Measured on our v1.36 control plane: such LISTs are served from the watch cache once it has caught up
// with etcd's current revision (ConsistentListFromCache; `apiserver_cache_list_total` counts them), so
// etcd sees one revision read per LIST instead of a full range read. The API server still encodes every
// object of every response, which is where the cost is (1500 pause pods: ~2.3 MB of JSON per LIST).
//
//   const load = startListLoad(cluster.kubeConfig(), { concurrency: 6, durationMs: 60_000 });
//   ...                                   // the gates should fail now
//   const stats = await load.stop();      // stops issuing, waits for in-flight requests
//   console.log(formatLoadStats(stats));
//
// Requests go through Node's https with the kubeconfig's credentials (applyToHTTPSOptions) and the body
// is read and discarded, not parsed: the point is the server's cost, and parsing megabytes of JSON here
// would only take CPU from the control plane this machine also runs.
import { Agent, request, type RequestOptions } from 'node:https';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';

/** What the generator LISTs, cluster-wide. */
export type ListResource = 'pods' | 'services' | 'endpoints';

const PATHS: Record<ListResource, string> = { pods: '/api/v1/pods', services: '/api/v1/services', endpoints: '/api/v1/endpoints' };

/** Options of {@link startListLoad}. */
export interface ListLoadOptions {
  /** Requests in flight at any time (one worker each). Default 4. */
  concurrency?: number;
  /** The resources LISTed, in turn by each worker. Default: pods, services, endpoints. */
  resources?: ListResource[];
  /** Stop after this long. Default 120 s: a forgotten generator must not run for ever. */
  durationMs?: number;
  /** Stop after this many requests were started. Default unbounded (the duration bounds it). */
  maxRequests?: number;
  /** Per-request timeout (an overloaded server may never answer). Default 60 s. */
  requestTimeoutMs?: number;
  /**
   * Page size (`limit`); undefined (default) LISTs everything in one response, like the naive agents of
   * the incident. With a limit the pages are followed (`continue`), each page one request.
   */
  limit?: number;
  /** Sent as User-Agent, so the API server's logs and audit name the generator. */
  userAgent?: string;
}

/** Latency summary of the completed requests, seconds. */
export interface LatencySummary {
  count: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** What a run of the generator did. */
export interface ListLoadStats {
  startedAt: Date;
  /** When the last request finished (or now, while running). */
  endedAt: Date;
  /** Requests started. */
  requests: number;
  /** Requests answered 2xx. */
  ok: number;
  /** Failures by kind: `HTTP 429`, `HTTP 500`, `timeout`, `ECONNREFUSED`, ... */
  errors: Record<string, number>;
  /** Response bytes read (uncompressed JSON). */
  bytes: number;
  /** Latency of answered requests (any status), seconds. */
  latency: LatencySummary | undefined;
  /** Requests per second over the run. */
  ratePerSecond: number;
  /** Objects seen in the last full pod LIST (from the items count), when known. */
  lastPodCount?: number;
  /** Why it stopped: `stopped`, `duration`, `maxRequests`. Undefined while running. */
  stopReason?: string;
}

/** A running generator (either kind). */
export interface ListLoad {
  /** When the first request went out. */
  readonly startedAt: Date;
  /** Stats so far. */
  stats(): ListLoadStats;
  /**
   * Stops issuing requests and resolves with the final stats once none is in flight (the LIST load
   * aborts its in-flight requests; the benign client lets its few finish). Idempotent.
   */
  stop(): Promise<ListLoadStats>;
  /** Resolves when the generator ends by itself (duration or count reached) or is stopped. */
  readonly done: Promise<ListLoadStats>;
}

/** Quantile of sorted values (nearest rank). */
function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

/** Summarises latencies (seconds); undefined for none. */
export function summarizeLatency(values: number[]): LatencySummary | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  return { count: s.length, min: s[0] as number, p50: quantile(s, 0.5), p90: quantile(s, 0.9), p99: quantile(s, 0.99), max: s[s.length - 1] as number };
}

/** One line describing a run, for the test log and the benchmark. */
export function formatLoadStats(s: ListLoadStats, what = 'LIST load'): string {
  const secs = (s.endedAt.getTime() - s.startedAt.getTime()) / 1000;
  const errs =
    Object.entries(s.errors)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ') || 'none';
  const l = s.latency;
  const lat = l ? `latency p50 ${l.p50.toFixed(3)}s p90 ${l.p90.toFixed(3)}s p99 ${l.p99.toFixed(3)}s max ${l.max.toFixed(3)}s` : 'no answers';
  const pods = s.lastPodCount === undefined ? '' : `, ${s.lastPodCount} pods per LIST`;
  return `${what}: ${s.requests} requests in ${secs.toFixed(1)}s (${s.ratePerSecond.toFixed(1)}/s), ${s.ok} ok, errors: ${errs}; ${(s.bytes / 1e6).toFixed(1)} MB read${pods}; ${lat}${s.stopReason ? ` [${s.stopReason}]` : ''}`;
}

/** Counts the items of a JSON list without parsing it (parsing megabytes per LIST would cost our CPU). */
function countItems(body: string): number {
  // The API server writes each item's metadata first and the name first in it; nothing else in a pod
  // starts with this sequence (owner references carry apiVersion first).
  let n = 0;
  let i = body.indexOf('{"metadata":{"name":');
  while (i >= 0) {
    n++;
    i = body.indexOf('{"metadata":{"name":', i + 20);
  }
  return n;
}

/**
 * The plumbing both generators share: requests with the kubeconfig's credentials over a bounded
 * keep-alive agent, a per-request timeout, an abort for stop(), and the counters behind the stats.
 */
class Requester {
  readonly startedAt = new Date();
  readonly abort = new AbortController();
  readonly #kc: KubeConfig;
  readonly #server: string;
  readonly #agent: Agent;
  readonly #timeoutMs: number;
  readonly #userAgent: string;
  readonly #latencies: number[] = [];
  readonly #errors: Record<string, number> = {};
  requests = 0;
  #ok = 0;
  #bytes = 0;
  lastPodCount: number | undefined;
  endedAt: Date | undefined;
  stopReason: string | undefined;

  constructor(kc: KubeConfig, o: { sockets: number; timeoutMs: number; userAgent: string }) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('load generator: the kubeconfig has no current cluster');
    this.#kc = kc;
    this.#server = cluster.server.replace(/\/+$/, '');
    // Connections kept alive: the load is the requests, not TLS handshakes.
    this.#agent = new Agent({ keepAlive: true, maxSockets: o.sockets });
    this.#timeoutMs = o.timeoutMs;
    this.#userAgent = o.userAgent;
  }

  stats(): ListLoadStats {
    const end = this.endedAt ?? new Date();
    const secs = Math.max(0.001, (end.getTime() - this.startedAt.getTime()) / 1000);
    return {
      startedAt: this.startedAt,
      endedAt: end,
      requests: this.requests,
      ok: this.#ok,
      errors: { ...this.#errors },
      bytes: this.#bytes,
      latency: summarizeLatency(this.#latencies),
      ratePerSecond: this.requests / secs,
      ...(this.lastPodCount === undefined ? {} : { lastPodCount: this.lastPodCount }),
      ...(this.stopReason === undefined ? {} : { stopReason: this.stopReason }),
    };
  }

  /**
   * One request; resolves with the body of a 2xx answer when `keepBody` (undefined otherwise, and on any
   * failure, which is counted by kind: `HTTP 429`, `timeout`, `ECONNREFUSED`, `aborted`, ...). Never rejects.
   */
  async send(method: string, path: string, o: { keepBody?: boolean; body?: string; contentType?: string } = {}): Promise<string | undefined> {
    const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': this.#userAgent };
    if (o.body !== undefined) headers['Content-Type'] = o.contentType ?? 'application/json';
    const opts: RequestOptions = { method, agent: this.#agent, headers };
    try {
      await this.#kc.applyToHTTPSOptions(opts);
    } catch {
      this.#fail('credentials');
      return undefined;
    }
    // applyToHTTPSOptions may set agent-related fields; ours must win for the socket bound.
    opts.agent = this.#agent;
    const t0 = performance.now();
    this.requests++;
    return new Promise<string | undefined>((resolve) => {
      let settled = false;
      const done = (failure: string | undefined, body?: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.abort.signal.removeEventListener('abort', onAbort);
        if (failure === undefined) this.#ok++;
        else this.#fail(failure);
        resolve(body);
      };
      const req = request(`${this.#server}${path}`, opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => {
          this.#bytes += c.length;
          if (o.keepBody) chunks.push(c);
        });
        res.on('error', () => done('response error'));
        res.on('end', () => {
          this.#latencies.push((performance.now() - t0) / 1000);
          const code = res.statusCode ?? 0;
          if (code >= 200 && code < 300) done(undefined, o.keepBody ? Buffer.concat(chunks).toString('utf8') : undefined);
          else done(`HTTP ${code}`);
        });
      });
      const timer = setTimeout(() => {
        done('timeout');
        req.destroy();
      }, this.#timeoutMs);
      const onAbort = (): void => {
        done('aborted');
        req.destroy();
      };
      this.abort.signal.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.name));
      req.end(o.body);
    });
  }

  #fail(kind: string): void {
    this.#errors[kind] = (this.#errors[kind] ?? 0) + 1;
  }

  finish(): ListLoadStats {
    this.endedAt ??= new Date();
    this.#agent.destroy();
    return this.stats();
  }
}

/**
 * Starts the generator against the kubeconfig's current cluster and returns at once. Each of
 * `concurrency` workers LISTs the resources in turn, back to back, until the duration or request count
 * is reached or {@link ListLoad.stop} is called. Request failures are counted, never thrown.
 */
export function startListLoad(kc: KubeConfig, o: ListLoadOptions = {}): ListLoad {
  const concurrency = o.concurrency ?? 4;
  const resources = o.resources?.length ? o.resources : (['pods', 'services', 'endpoints'] as ListResource[]);
  const durationMs = o.durationMs ?? 120_000;
  const maxRequests = o.maxRequests ?? Infinity;
  if (!(concurrency >= 1) || !Number.isInteger(concurrency)) throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
  const r = new Requester(kc, { sockets: concurrency, timeoutMs: o.requestTimeoutMs ?? 60_000, userAgent: o.userAgent ?? 'tro-e2e-list-load' });
  const deadline = r.startedAt.getTime() + durationMs;

  const shouldStop = (): boolean => {
    if (r.abort.signal.aborted) return true;
    if (r.requests >= maxRequests) {
      r.stopReason ??= 'maxRequests';
      return true;
    }
    if (Date.now() >= deadline) {
      r.stopReason ??= 'duration';
      return true;
    }
    return false;
  };

  const worker = async (w: number): Promise<void> => {
    for (let i = w; !shouldStop(); i++) {
      const resource = resources[i % resources.length] as ListResource;
      // No resourceVersion: a consistent read (see the file comment), the incident's pattern.
      let path = o.limit === undefined ? PATHS[resource] : `${PATHS[resource]}?limit=${o.limit}`;
      for (;;) {
        // Pod LISTs are kept to count the pods (and pages to follow `continue`); the rest is discarded.
        const keepBody = resource === 'pods' || o.limit !== undefined;
        const body = await r.send('GET', path, { keepBody });
        if (body !== undefined && resource === 'pods' && o.limit === undefined) r.lastPodCount = countItems(body);
        if (o.limit === undefined || body === undefined || shouldStop()) break;
        const next = /"continue":"([^"]+)"/.exec(body.slice(0, 2000))?.[1];
        if (!next) break;
        path = `${PATHS[resource]}?limit=${o.limit}&continue=${encodeURIComponent(next)}`;
      }
    }
  };

  const done = Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w))).then(() => r.finish());
  return {
    startedAt: r.startedAt,
    stats: () => r.stats(),
    done,
    async stop() {
      r.stopReason ??= 'stopped';
      r.abort.abort();
      return done;
    },
  };
}

/** Options of {@link startBenignLoad}. */
export interface BenignLoadOptions {
  /** A namespace of the caller's (a ConfigMap `benign-load` is created there). */
  namespace: string;
  /** Requests per second, spread evenly. Default 5. */
  ratePerSecond?: number;
  /** Stop after this long. Default 120 s. */
  durationMs?: number;
}

/**
 * A light, well-behaved client, the "normal noise" of a healthy cluster: single-object GETs, a small
 * PATCH, and small namespaced LISTs served from the watch cache (`resourceVersion=0`). Note that such a
 * LIST ignores `limit` (measured: `pods?limit=20&resourceVersion=0` returned the namespace's 1500 pods),
 * so only collections that are small by nature are listed. Requests go out at a fixed rate (open loop:
 * a slow server does not slow the client down), at most 8 in flight. Failures are counted, never thrown.
 */
export async function startBenignLoad(kc: KubeConfig, o: BenignLoadOptions): Promise<ListLoad> {
  const core = kc.makeApiClient(CoreV1Api);
  const name = 'benign-load';
  try {
    await core.createNamespacedConfigMap({ namespace: o.namespace, body: { metadata: { name, namespace: o.namespace }, data: { tick: '0' } } });
  } catch (err) {
    if ((err as { code?: number }).code !== 409) throw new Error(`create ConfigMap ${o.namespace}/${name}`, { cause: err });
  }
  const r = new Requester(kc, { sockets: 8, timeoutMs: 30_000, userAgent: 'tro-e2e-benign-load' });
  const ns = encodeURIComponent(o.namespace);
  const requests: Array<(i: number) => Promise<unknown>> = [
    () => r.send('GET', `/api/v1/namespaces/${ns}`),
    () => r.send('GET', `/api/v1/namespaces/${ns}/configmaps/${name}`),
    () => r.send('GET', `/api/v1/namespaces/${ns}/configmaps?resourceVersion=0`),
    () => r.send('GET', `/api/v1/namespaces/${ns}/services?resourceVersion=0`),
    () => r.send('GET', '/api/v1/namespaces/default/services/kubernetes'),
    (i) =>
      r.send('PATCH', `/api/v1/namespaces/${ns}/configmaps/${name}`, {
        body: JSON.stringify({ data: { tick: String(i) } }),
        contentType: 'application/merge-patch+json',
      }),
  ];
  const rate = o.ratePerSecond ?? 5;
  const inFlight = new Set<Promise<unknown>>();
  let i = 0;
  let finished: ((s: ListLoadStats) => void) | undefined;
  const done = new Promise<ListLoadStats>((resolve) => (finished = resolve));
  const stopAll = async (reason: string): Promise<void> => {
    clearInterval(timer);
    clearTimeout(deadline);
    r.stopReason ??= reason;
    await Promise.allSettled([...inFlight]);
    finished?.(r.finish());
  };
  const timer = setInterval(() => {
    if (inFlight.size >= 8) return; // a stalled server does not get an ever-growing queue from us
    const p = (requests[i % requests.length] as (i: number) => Promise<unknown>)(i);
    i++;
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  }, 1000 / rate);
  const deadline = setTimeout(() => void stopAll('duration'), o.durationMs ?? 120_000);
  return {
    startedAt: r.startedAt,
    stats: () => r.stats(),
    done,
    async stop() {
      await stopAll('stopped');
      return done;
    },
  };
}
