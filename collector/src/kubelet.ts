/**
 * Pod and container metadata from the node's own kubelet (`GET <kubeletURL>/pods`, a PodList of the pods
 * bound to this node). This is what makes the node mode frugal: the kubelet already has the data, so
 * the API server sees no request at all, whatever the size of the cluster.
 */
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import { abortReason } from '#core/clock.js';
import { NetworkError, StoppedError } from './errors.js';
import type { KillSwitch } from './killswitch.js';
import type { CollectorMetrics } from './metrics.js';
import { linkSignals } from './signals.js';
import { http } from '#core/nodehttp.js';

/** The HTTP GET the kubelet client needs; the default is httpGetter (node:http). */
export interface HttpGetter {
  /** Rejects with NetworkError when no status was obtained, with the signal's reason when aborted. */
  get(url: string, options: { signal: AbortSignal; headers?: Record<string, string> }): Promise<{ status: number; body: string }>;
}

/**
 * HttpGetter over node:http(s) and its default keep-alive agent: the agent's default. Node's global
 * fetch would do the same, but its first call loads the bundled undici, ~17 MiB of RSS in an agent whose
 * whole budget is 64 MiB.
 */
export const httpGetter: HttpGetter = {
  get(url, { signal, headers }) {
    return new Promise((resolve, reject) => {
      const fail = (err: Error, stage: string): void => {
        if (signal.aborted) reject(abortReason(signal));
        else reject(new NetworkError(`GET ${url}: ${stage}${err.message}`, { cause: err }));
      };
      const get = url.startsWith('https:') ? https.get : http.get;
      const req = get(url, { signal, ...(headers ? { headers } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => fail(err, 'reading body: '));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      });
      // Before the response; later failures arrive on the response (or both: a promise settles once).
      req.on('error', (err) => fail(err, ''));
    });
  },
};

/** The container fields the collector exports. */
export interface ContainerInfo {
  name: string;
  image: string | undefined;
  ready: boolean;
  restartCount: number;
  state: 'running' | 'waiting' | 'terminated' | 'unknown';
}

/** The pod fields the collector exports (from the kubelet or from the API server in Naive mode). */
export interface PodInfo {
  namespace: string;
  name: string;
  uid: string | undefined;
  nodeName: string | undefined;
  phase: string;
  containers: ContainerInfo[];
}

interface RawPod {
  metadata?: { namespace?: string; name?: string; uid?: string };
  spec?: { nodeName?: string; containers?: { name?: string; image?: string }[] };
  status?: {
    phase?: string;
    containerStatuses?: { name?: string; image?: string; ready?: boolean; restartCount?: number; state?: Record<string, unknown> }[];
  };
}

/**
 * Extracts PodInfo from a Pod object (kubelet or API server JSON). Containers without a status yet are
 * reported with state "unknown".
 */
export function podInfoFrom(raw: unknown): PodInfo {
  const p = (raw ?? {}) as RawPod;
  const statuses = new Map((p.status?.containerStatuses ?? []).map((c) => [c.name, c]));
  const containers: ContainerInfo[] = (p.spec?.containers ?? []).map((c) => {
    const st = statuses.get(c.name);
    const stateKey = st?.state ? Object.keys(st.state)[0] : undefined;
    const state = stateKey === 'running' || stateKey === 'waiting' || stateKey === 'terminated' ? stateKey : 'unknown';
    return {
      name: c.name ?? '',
      image: st?.image ?? c.image,
      ready: st?.ready ?? false,
      restartCount: st?.restartCount ?? 0,
      state,
    };
  });
  return {
    namespace: p.metadata?.namespace ?? '',
    name: p.metadata?.name ?? '',
    uid: p.metadata?.uid,
    nodeName: p.spec?.nodeName,
    phase: p.status?.phase ?? 'Unknown',
    containers,
  };
}

/** Dependencies of a KubeletClient. */
export interface KubeletClientOptions {
  /** Base URL, e.g. `http://127.0.0.1:10255`; `/pods` is appended. */
  baseURL: string;
  getter: HttpGetter;
  metrics: CollectorMetrics;
  killSwitch: KillSwitch;
  /** Per-request timeout; default 10 s. */
  timeoutMs?: number;
  /**
   * For an https kubelet (authenticated port 10250): path of a bearer token file, re-read on every
   * request because projected service-account tokens rotate. Never logged.
   */
  tokenFile?: string;
}

/** Reads `/pods` from the local kubelet, counted in `collector_kubelet_requests_total{code}`. */
export class KubeletClient {
  private readonly url: string;
  private readonly o: KubeletClientOptions;
  constructor(o: KubeletClientOptions) {
    this.o = o;
    this.url = `${o.baseURL.replace(/\/+$/, '')}/pods`;
  }

  /**
   * The pods bound to this node. Refused with StoppedError while the kill switch is engaged (an idle
   * agent makes no request at all), aborted by it mid-flight. Rejects on non-200 with the status code in
   * the message, and on a body that is not a PodList.
   */
  async pods(signal?: AbortSignal): Promise<PodInfo[]> {
    if (this.o.killSwitch.isStopped()) throw new StoppedError(`kubelet /pods refused: ${this.o.killSwitch.state.detail}`);
    const link = linkSignals([this.o.killSwitch.signal, signal, AbortSignal.timeout(this.o.timeoutMs ?? 10_000)]);
    try {
      const headers: Record<string, string> = { Accept: 'application/json' };
      if (this.o.tokenFile && this.url.startsWith('https:')) {
        headers.Authorization = `Bearer ${(await readFile(this.o.tokenFile, 'utf8')).trim()}`;
      }
      let res: { status: number; body: string };
      try {
        res = await this.o.getter.get(this.url, { signal: link.signal, headers });
      } catch (err) {
        this.o.metrics.kubeletRequests.inc({ code: link.signal.aborted ? 'aborted' : 'error' });
        throw err;
      }
      this.o.metrics.kubeletRequests.inc({ code: String(res.status) });
      this.o.metrics.kubeletResponseBytes.inc(Buffer.byteLength(res.body));
      if (res.status !== 200) throw new Error(`kubelet GET ${this.url}: HTTP ${res.status}`);
      let list: { items?: unknown };
      try {
        list = JSON.parse(res.body) as { items?: unknown };
      } catch (err) {
        throw new Error(`kubelet GET ${this.url}: response is not JSON`, { cause: err });
      }
      if (!Array.isArray(list.items)) throw new Error(`kubelet GET ${this.url}: response is not a PodList`);
      return list.items.map(podInfoFrom);
    } finally {
      link.dispose();
    }
  }
}
