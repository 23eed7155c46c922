/**
 * What one request costs a real kube-apiserver, measured three ways at once so they can be compared: the
 * client's latency (one HTTPS request over a kept-alive connection, the body read to its end), the API
 * server's own latency histogram (apiserver_request_duration_seconds sum/count deltas on /metrics), and
 * the CPU seconds of the kube-apiserver and etcd processes (/proc deltas; the harness runs them locally).
 * Shared by `npm run sim:calibrate` (e2e/bench/calibrate.ts), which fits the simulator's model to these
 * points, and the calibration e2e test, which checks the model against a few of them.
 */
import { Agent, request } from 'node:https';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { keepFamilies, samplesNamed } from '../../operator/src/gates/promselect.js';
import { parsePrometheusText, type Sample } from '../../operator/src/gates/promtext.js';
import { histogramIncrease } from '../../operator/src/gates/quantile.js';
import type { ClusterHandle } from '../controlplane/fleet.js';
import { httpGet, waitUntil } from '../controlplane/net.js';
import { PAUSE_IMAGE } from '../controlplane/nodes.js';
import { CLK_TCK, procStat } from './procstat.js';

/** One request as the client saw it. */
export interface Timed {
  /** From sending the request to the last byte of the body, seconds. */
  seconds: number;
  /** The body's size once decompressed: the JSON the API server encoded. */
  bytes: number;
  /** The body's size on the wire (the API server gzips large GET/LIST bodies when the client accepts it). */
  wireBytes: number;
}

/** The clients of one measurement: a kept-alive TLS connection pool to the cluster's API server. */
export class ApiClient {
  private readonly agent: Agent;
  private readonly ca: Buffer;
  /** The cluster the requests go to. */
  readonly c: ClusterHandle;
  constructor(c: ClusterHandle) {
    this.c = c;
    this.ca = readFileSync(c.caFile);
    this.agent = new Agent({ keepAlive: true, ca: this.ca, maxSockets: 64 });
  }

  /**
   * GETs `path` as client-go does (JSON, gzip accepted) and times it. Rejects on any status but 200, so
   * a measurement never counts a refusal as a fast answer.
   */
  get(path: string, timeoutMs = 120_000): Promise<Timed> {
    const t0 = process.hrtime.bigint();
    return new Promise((resolve, reject) => {
      const r = request(
        `${this.c.apiServerURL}${path}`,
        {
          agent: this.agent,
          headers: { Authorization: `Bearer ${this.c.adminToken}`, Accept: 'application/json', 'Accept-Encoding': 'gzip' },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (b: Buffer) => chunks.push(b));
          res.on('error', (err) => reject(new Error(`GET ${path}: reading response`, { cause: err })));
          res.on('end', () => {
            const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
            const wire = Buffer.concat(chunks);
            if (res.statusCode !== 200) return reject(new Error(`GET ${path}: HTTP ${res.statusCode}`));
            const body = res.headers['content-encoding'] === 'gzip' ? gunzipSync(wire) : wire;
            resolve({ seconds, bytes: body.length, wireBytes: wire.length });
          });
        },
      );
      r.on('timeout', () => r.destroy(new Error(`GET ${path}: no answer in ${timeoutMs} ms`)));
      r.on('error', reject);
      r.end();
    });
  }

  /**
   * Opens a WATCH of `path` (which carries watch=1 and a resourceVersion) and resolves once the API
   * server has sent the response headers, with the time that took and a function that ends the watch.
   */
  watch(path: string, timeoutMs = 60_000): Promise<{ seconds: number; close: () => void }> {
    const t0 = process.hrtime.bigint();
    return new Promise((resolve, reject) => {
      const r = request(`${this.c.apiServerURL}${path}`, {
        agent: false,
        ca: this.ca,
        headers: { Authorization: `Bearer ${this.c.adminToken}`, Accept: 'application/json' },
        timeout: timeoutMs,
      });
      r.on('response', (res) => {
        if (res.statusCode !== 200) {
          r.destroy();
          return reject(new Error(`WATCH ${path}: HTTP ${res.statusCode}`));
        }
        res.resume();
        r.setTimeout(0);
        resolve({ seconds: Number(process.hrtime.bigint() - t0) / 1e9, close: () => r.destroy() });
      });
      r.on('timeout', () => r.destroy(new Error(`WATCH ${path}: no answer in ${timeoutMs} ms`)));
      r.on('error', (err) => {
        if (!r.destroyed || (err as { code?: string }).code !== 'ECONNRESET') reject(err);
      });
      r.end();
    });
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }
}

/** CPU ticks of the API server and etcd, and the API server's RSS, at one instant. */
interface ProcSample {
  at: number;
  apiserverTicks: number;
  etcdTicks: number;
  rss: number;
}

function procSample(c: ClusterHandle): ProcSample {
  const api = procStat(c.pids['kube-apiserver'] ?? 0);
  const etcd = c.pids.etcd !== undefined ? procStat(c.pids.etcd).cpuTicks : 0;
  return { at: Date.now(), apiserverTicks: api.cpuTicks, etcdTicks: etcd, rss: api.rss };
}

/** The API server's latency histogram's sum and count for one verb and resource (all scopes, codes). */
async function serverDuration(c: ClusterHandle, verb: string, resource: string): Promise<{ sum: number; count: number }> {
  const r = await httpGet(`${c.apiServerURL}/metrics`, { ca: readFileSync(c.caFile), token: c.adminToken, timeoutMs: 60_000 });
  if (r.status !== 200) throw new Error(`${c.name}: GET /metrics: HTTP ${r.status}`);
  const parsed = parsePrometheusText(keepFamilies(r.body, new Set(['apiserver_request_duration_seconds'])));
  const pick = (name: string) =>
    samplesNamed(parsed, name)
      .filter((s) => s.labels.verb === verb && s.labels.resource === resource && (s.labels.subresource ?? '') === '')
      .reduce((a, s) => a + s.value, 0);
  return { sum: pick('apiserver_request_duration_seconds_sum'), count: pick('apiserver_request_duration_seconds_count') };
}

/** A background CPU rate to subtract: the cluster's controllers, kwok's heartbeats, the scrapes. */
export interface Background {
  /** kube-apiserver CPU seconds per second with no measured load. */
  apiserverCpu: number;
  /** etcd CPU seconds per second (the shared etcd: every cluster of the fleet). */
  etcdCpu: number;
  /** kube-apiserver requests per second with no measured load. */
  requestsPerSecond: number;
  /** kube-apiserver RSS, bytes, at the end of the window. */
  rss: number;
  /**
   * The window's latency histogram of resource requests (not WATCH, not /metrics or other non-resource
   * paths, not long-running subresources): `[upper bound, cumulative count]`, +Inf last.
   */
  latencyBuckets: Array<[number, number]>;
}

/** The latency histogram of everything but WATCHes and long-running requests, and the request total. */
interface RestScrape {
  requests: number;
  buckets: Sample[];
}

const LONG_RUNNING = new Set(['log', 'exec', 'portforward', 'attach', 'proxy']);

async function restScrape(c: ClusterHandle): Promise<RestScrape> {
  const r = await httpGet(`${c.apiServerURL}/metrics`, { ca: readFileSync(c.caFile), token: c.adminToken, timeoutMs: 60_000 });
  if (r.status !== 200) throw new Error(`${c.name}: GET /metrics: HTTP ${r.status}`);
  const parsed = parsePrometheusText(keepFamilies(r.body, new Set(['apiserver_request_total', 'apiserver_request_duration_seconds'])));
  return {
    requests: samplesNamed(parsed, 'apiserver_request_total').reduce((a, s) => a + s.value, 0),
    buckets: samplesNamed(parsed, 'apiserver_request_duration_seconds_bucket'),
  };
}

/** Measures the background over `ms` with nothing else sent but two /metrics scrapes. */
export async function background(c: ClusterHandle, ms: number): Promise<Background> {
  const s0 = await restScrape(c);
  const p0 = procSample(c);
  await new Promise((r) => setTimeout(r, ms));
  const p1 = procSample(c);
  const s1 = await restScrape(c);
  const dt = (p1.at - p0.at) / 1000;
  const inc = histogramIncrease(
    s0.buckets,
    s1.buckets,
    (l) => l.verb !== 'WATCH' && l.verb !== 'CONNECT' && !LONG_RUNNING.has(l.subresource ?? '') && l.resource !== '' && l.resource !== undefined,
  );
  return {
    apiserverCpu: (p1.apiserverTicks - p0.apiserverTicks) / CLK_TCK / dt,
    etcdCpu: (p1.etcdTicks - p0.etcdTicks) / CLK_TCK / dt,
    // The first scrape itself is not the background (the second is counted after it was read).
    requestsPerSecond: Math.max(0, s1.requests - s0.requests - 1) / dt,
    rss: p1.rss,
    latencyBuckets: inc.buckets.map((b) => [b.upperBound, b.count]),
  };
}

/** What WATCHes held open cost while nothing changes. */
export interface WatchCost {
  /** Median time to a WATCH's response headers, seconds. */
  establishP50: number;
  /** kube-apiserver CPU seconds per watch per second, the background rate subtracted (may be ~0). */
  apiserverCpuPerWatchSecond: number;
}

/**
 * Opens `n` WATCHes of `path` (from the current resourceVersion, so no initial LIST), holds them for
 * `ms` and measures the API server's CPU over that time against the background.
 */
export async function holdWatches(api: ApiClient, path: string, n: number, ms: number, bg: Background): Promise<WatchCost> {
  const rv = await currentResourceVersion(api.c);
  const watches = await Promise.all(Array.from({ length: n }, () => api.watch(`${path}?watch=1&allowWatchBookmarks=true&resourceVersion=${rv}`)));
  try {
    const p0 = procSample(api.c);
    await new Promise((res) => setTimeout(res, ms));
    const p1 = procSample(api.c);
    const dt = (p1.at - p0.at) / 1000;
    return {
      establishP50: median(watches.map((w) => w.seconds)),
      apiserverCpuPerWatchSecond: Math.max(0, (p1.apiserverTicks - p0.apiserverTicks) / CLK_TCK / dt - bg.apiserverCpu) / n,
    };
  } finally {
    for (const w of watches) w.close();
  }
}

/** The cluster's current resourceVersion (a one-item LIST of namespaces, from etcd). */
async function currentResourceVersion(c: ClusterHandle): Promise<string> {
  const r = await httpGet(`${c.apiServerURL}/api/v1/namespaces?limit=1`, { ca: readFileSync(c.caFile), token: c.adminToken, timeoutMs: 30_000 });
  if (r.status !== 200) throw new Error(`${c.name}: LIST namespaces: HTTP ${r.status}`);
  const rv = (JSON.parse(r.body) as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion;
  if (!rv) throw new Error(`${c.name}: LIST namespaces: no resourceVersion`);
  return rv;
}

/** What a batch of requests cost, all three ways. */
export interface Batch {
  /** Client latencies, seconds, in the order they ended. */
  latencies: number[];
  /** Median decompressed body size, bytes. */
  bytes: number;
  /** Median body size on the wire, bytes. */
  wireBytes: number;
  /** The API server's own mean latency for the batch's verb and resource (histogram sum/count delta). */
  serverMeanSeconds: number;
  /** kube-apiserver CPU seconds per request, the background rate subtracted. */
  apiserverCpuPerRequest: number;
  /** etcd CPU seconds per request, the background rate subtracted. */
  etcdCpuPerRequest: number;
  /** Wall time of the batch, seconds. */
  wallSeconds: number;
  /** kube-apiserver RSS before the batch and the largest seen during it (sampled every 100 ms), bytes. */
  rssBefore: number;
  rssPeak: number;
}

/**
 * Sends `perClient` GETs of `path` from each of `concurrency` clients, each client waiting for its
 * answer before sending the next (a closed loop, as agents that relist back to back), and measures the
 * batch. `verb`/`resource` name the histogram series the requests land in (e.g. LIST pods).
 */
export async function batch(
  api: ApiClient,
  o: { path: string; verb: string; resource: string; concurrency: number; perClient: number; bg: Background },
): Promise<Batch> {
  const c = api.c;
  const d0 = await serverDuration(c, o.verb, o.resource);
  const p0 = procSample(c);
  let peak = p0.rss;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, procStat(c.pids['kube-apiserver'] ?? 0).rss);
    } catch {
      // The process is gone: the batch's requests fail and say so.
    }
  }, 100);
  const timed: Timed[] = [];
  try {
    await Promise.all(
      Array.from({ length: o.concurrency }, async () => {
        for (let i = 0; i < o.perClient; i++) timed.push(await api.get(o.path));
      }),
    );
  } finally {
    clearInterval(sampler);
  }
  const p1 = procSample(c);
  const d1 = await serverDuration(c, o.verb, o.resource);
  const n = timed.length;
  const dt = (p1.at - p0.at) / 1000;
  const cpu = (ticks: number, rate: number) => Math.max(0, ticks / CLK_TCK - rate * dt) / n;
  return {
    latencies: timed.map((t) => t.seconds),
    bytes: median(timed.map((t) => t.bytes)),
    wireBytes: median(timed.map((t) => t.wireBytes)),
    serverMeanSeconds: d1.count > d0.count ? (d1.sum - d0.sum) / (d1.count - d0.count) : NaN,
    apiserverCpuPerRequest: cpu(p1.apiserverTicks - p0.apiserverTicks, o.bg.apiserverCpu),
    etcdCpuPerRequest: cpu(p1.etcdTicks - p0.etcdTicks, o.bg.etcdCpu),
    wallSeconds: dt,
    rssBefore: p0.rss,
    rssPeak: Math.max(peak, p1.rss),
  };
}

/** The `q` quantile (0..1) of `xs` by nearest rank; NaN for none. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
}

/** The median of `xs`. */
export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

/** The standard deviation of ln(x) over `xs` (the sigma of a log-normal fit); NaN for fewer than two. */
export function logSigma(xs: readonly number[]): number {
  if (xs.length < 2) return NaN;
  const l = xs.map(Math.log);
  const m = l.reduce((a, b) => a + b, 0) / l.length;
  return Math.sqrt(l.reduce((a, b) => a + (b - m) ** 2, 0) / (l.length - 1));
}

/**
 * A bare pause pod bound to `node` (no scheduler, no controller: the cheapest way to give a LIST
 * `count` objects of a realistic shape; kwok marks it Running, which fills its status as a kubelet would).
 */
export function barePod(name: string, node: string): V1Pod {
  return {
    metadata: { name, labels: { app: 'tro-calibrate', 'telemetry.rollout.dev/e2e': 'calibrate' } },
    spec: {
      nodeName: node,
      containers: [{ name: 'app', image: PAUSE_IMAGE, resources: { requests: { cpu: '10m', memory: '16Mi' } } }],
      tolerations: [{ key: 'kwok.x-k8s.io/node', operator: 'Exists', effect: 'NoSchedule' }],
    },
  };
}

/**
 * Creates bare pods `first`..`count-1` in `namespace`, spread round-robin over `nodes`, `parallel` at a
 * time, then waits (up to `timeoutMs`) until kwok reports `count` of them Running; resolves with how
 * many were Running (a busy machine may leave some Pending; the caller reports it).
 */
export async function createPods(
  kc: KubeConfig,
  namespace: string,
  nodes: readonly string[],
  first: number,
  count: number,
  o: { parallel?: number; timeoutMs?: number } = {},
): Promise<number> {
  const core = kc.makeApiClient(CoreV1Api);
  let next = first;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      try {
        await core.createNamespacedPod({ namespace, body: barePod(`p-${String(i).padStart(5, '0')}`, nodes[i % nodes.length] ?? '') });
      } catch (err) {
        if ((err as { code?: number }).code !== 409) throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: o.parallel ?? 8 }, worker));
  let running = 0;
  await waitUntil(
    `${count} pods Running in ${namespace}`,
    async () => {
      const list = await core.listNamespacedPod({ namespace, fieldSelector: 'status.phase=Running', resourceVersion: '0' });
      running = list.items.length;
      return running >= count;
    },
    { timeoutMs: o.timeoutMs ?? 120_000, intervalMs: 2000 },
  ).catch(() => undefined);
  return running;
}
