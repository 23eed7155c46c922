// A load generator that reproduces the December 2024 incident's API pattern on a real kube-apiserver:
// cluster-wide LISTs of pods (and services, endpoints) WITHOUT resourceVersion, i.e. consistent
// ("quorum") reads. Its cost grows with the number of objects in the cluster, so a handful of concurrent
// clients is enough to push the API server's p99 over its SLO on a cluster with a realistic pod
// population (see ensurePodPopulation below).
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
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1Deployment, type V1Service } from '@kubernetes/client-node';
import { waitUntil } from '../controlplane/net.js';
import { PAUSE_IMAGE } from '../controlplane/nodes.js';

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

/** A running generator. */
export interface ListLoad {
  /** When the first request went out. */
  readonly startedAt: Date;
  /** Stats so far. */
  stats(): ListLoadStats;
  /** Stops issuing requests, aborts the ones in flight, and resolves with the final stats. Idempotent. */
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
export function formatLoadStats(s: ListLoadStats): string {
  const secs = (s.endedAt.getTime() - s.startedAt.getTime()) / 1000;
  const errs = Object.entries(s.errors).map(([k, v]) => `${k}=${v}`).join(' ') || 'none';
  const l = s.latency;
  const lat = l ? `latency p50 ${l.p50.toFixed(2)}s p90 ${l.p90.toFixed(2)}s p99 ${l.p99.toFixed(2)}s max ${l.max.toFixed(2)}s` : 'no answers';
  const pods = s.lastPodCount === undefined ? '' : `, ${s.lastPodCount} pods per LIST`;
  return `LIST load: ${s.requests} requests in ${secs.toFixed(1)}s (${s.ratePerSecond.toFixed(1)}/s), ${s.ok} ok, errors: ${errs}; ${(s.bytes / 1e6).toFixed(1)} MB read${pods}; ${lat}${s.stopReason ? ` [${s.stopReason}]` : ''}`;
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
 * Starts the generator against the kubeconfig's current cluster and returns at once. Each of
 * `concurrency` workers LISTs the resources in turn, back to back, until the duration or request count
 * is reached or {@link ListLoad.stop} is called. Request failures are counted, never thrown.
 */
export function startListLoad(kc: KubeConfig, o: ListLoadOptions = {}): ListLoad {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('startListLoad: the kubeconfig has no current cluster');
  const server = cluster.server.replace(/\/+$/, '');
  const concurrency = o.concurrency ?? 4;
  const resources = o.resources?.length ? o.resources : (['pods', 'services', 'endpoints'] as ListResource[]);
  const durationMs = o.durationMs ?? 120_000;
  const maxRequests = o.maxRequests ?? Infinity;
  const timeoutMs = o.requestTimeoutMs ?? 60_000;
  if (!(concurrency >= 1) || !Number.isInteger(concurrency)) throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
  // One connection per worker, kept alive: the load is the LISTs, not TLS handshakes.
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const abort = new AbortController();
  const startedAt = new Date();
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let requests = 0;
  let ok = 0;
  let bytes = 0;
  let lastPodCount: number | undefined;
  let endedAt: Date | undefined;
  let stopReason: string | undefined;
  const deadline = startedAt.getTime() + durationMs;

  const stats = (): ListLoadStats => {
    const end = endedAt ?? new Date();
    const secs = Math.max(0.001, (end.getTime() - startedAt.getTime()) / 1000);
    return {
      startedAt,
      endedAt: end,
      requests,
      ok,
      errors: { ...errors },
      bytes,
      latency: summarizeLatency(latencies),
      ratePerSecond: requests / secs,
      ...(lastPodCount === undefined ? {} : { lastPodCount }),
      ...(stopReason === undefined ? {} : { stopReason }),
    };
  };

  const fail = (kind: string): void => {
    errors[kind] = (errors[kind] ?? 0) + 1;
  };

  // One GET; resolves with the body of a 2xx answer (to follow `continue`), undefined otherwise.
  const get = async (path: string): Promise<string | undefined> => {
    const opts: RequestOptions = { method: 'GET', agent, headers: { Accept: 'application/json', 'User-Agent': o.userAgent ?? 'tro-e2e-list-load' } };
    await kc.applyToHTTPSOptions(opts);
    // applyToHTTPSOptions may set its own agent-related fields; ours must win for the socket bound.
    opts.agent = agent;
    const t0 = performance.now();
    requests++;
    return new Promise<string | undefined>((resolve) => {
      const done = (kind: string | undefined, body?: string): void => {
        clearTimeout(timer);
        abort.signal.removeEventListener('abort', onAbort);
        if (kind === undefined) ok++;
        else fail(kind);
        resolve(body);
      };
      const req = request(`${server}${path}`, opts, (res) => {
        const chunks: Buffer[] = [];
        const keep = path.startsWith(PATHS.pods) || res.statusCode !== 200 || o.limit !== undefined;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          if (keep) chunks.push(c);
        });
        res.on('error', () => done('response error'));
        res.on('end', () => {
          latencies.push((performance.now() - t0) / 1000);
          const code = res.statusCode ?? 0;
          if (code >= 200 && code < 300) {
            const body = keep ? Buffer.concat(chunks).toString('utf8') : '';
            if (path.startsWith(PATHS.pods) && o.limit === undefined) lastPodCount = countItems(body);
            done(undefined, body);
          } else {
            done(`HTTP ${code}`);
          }
        });
      });
      const timer = setTimeout(() => {
        req.destroy();
        done('timeout');
      }, timeoutMs);
      const onAbort = (): void => {
        req.destroy();
        done('aborted');
      };
      abort.signal.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (abort.signal.aborted) return;
        done(err.code ?? err.name);
      });
      req.end();
    });
  };

  const shouldStop = (): boolean => {
    if (abort.signal.aborted) return true;
    if (requests >= maxRequests) {
      stopReason ??= 'maxRequests';
      return true;
    }
    if (Date.now() >= deadline) {
      stopReason ??= 'duration';
      return true;
    }
    return false;
  };

  const worker = async (w: number): Promise<void> => {
    for (let i = w; !shouldStop(); i++) {
      const resource = resources[i % resources.length] as ListResource;
      // No resourceVersion: a quorum read from etcd, the incident's pattern.
      let path = o.limit === undefined ? PATHS[resource] : `${PATHS[resource]}?limit=${o.limit}`;
      for (;;) {
        const body = await get(path);
        if (o.limit === undefined || body === undefined || shouldStop()) break;
        const next = /"continue":"([^"]+)"/.exec(body.slice(0, 2000))?.[1];
        if (!next) break;
        path = `${PATHS[resource]}?limit=${o.limit}&continue=${encodeURIComponent(next)}`;
      }
    }
  };

  const done = Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w))).then(() => {
    endedAt = new Date();
    agent.destroy();
    return stats();
  });

  return {
    startedAt,
    stats,
    done,
    async stop() {
      stopReason ??= 'stopped';
      abort.abort();
      return done;
    },
  };
}

/** Options of {@link ensurePodPopulation}. */
export interface PodPopulationOptions {
  /** Pods in total (split evenly over the Deployments). */
  pods: number;
  /** Deployments (each with a Service selecting its pods, so endpoints exist too). Default 10. */
  deployments?: number;
  /** How long to wait for every pod to be available. Default 300 s. */
  timeoutMs?: number;
}

/**
 * Creates a pod population in `namespace` (which must exist): `deployments` Deployments of pause pods
 * (kwok marks them Running on its fake nodes) with `pods` replicas in total, and one ClusterIP Service per
 * Deployment (so endpoints and EndpointSlices carry the pods too), then waits until every replica is
 * available. Objects that already exist are kept as they are. Delete the namespace to remove it all.
 */
export async function ensurePodPopulation(kc: KubeConfig, namespace: string, o: PodPopulationOptions): Promise<void> {
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const n = Math.max(1, o.deployments ?? 10);
  for (let d = 0; d < n; d++) {
    const name = `load-${String(d).padStart(2, '0')}`;
    const replicas = Math.floor(o.pods / n) + (d < o.pods % n ? 1 : 0);
    const labels = { app: name, 'telemetry.rollout.dev/e2e': 'population' };
    const deployment: V1Deployment = {
      metadata: { name, namespace, labels },
      spec: {
        replicas,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels },
          spec: {
            containers: [{ name: 'app', image: PAUSE_IMAGE, ports: [{ containerPort: 8080, name: 'http' }], resources: { requests: { cpu: '1m', memory: '4Mi' } } }],
            // kwok nodes carry no taints kwok cares about; tolerate its usual ones anyway.
            tolerations: [{ key: 'kwok.x-k8s.io/node', operator: 'Exists', effect: 'NoSchedule' }],
          },
        },
      },
    };
    const service: V1Service = {
      metadata: { name, namespace, labels },
      spec: { selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
    };
    try {
      await apps.createNamespacedDeployment({ namespace, body: deployment });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw new Error(`create Deployment ${namespace}/${name}`, { cause: err });
    }
    try {
      await core.createNamespacedService({ namespace, body: service });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw new Error(`create Service ${namespace}/${name}`, { cause: err });
    }
  }
  await waitUntil(`${o.pods} pods available in ${namespace}`, async () => {
    const list = await apps.listNamespacedDeployment({ namespace });
    return list.items.reduce((sum, d) => sum + (d.status?.availableReplicas ?? 0), 0) >= o.pods;
  }, { timeoutMs: o.timeoutMs ?? 300_000, intervalMs: 2000 });
}
