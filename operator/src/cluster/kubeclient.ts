/**
 * The real {@link ClusterClient}: one target cluster through one client-node `KubeConfig` (never merged
 * with another cluster's). Every request has a timeout, is counted in `tro_cluster_api_requests_total`
 * and fails with an error naming the cluster and the operation (never a credential).
 */
import { PatchStrategy, setHeaderOptions, type KubeConfig, type KubernetesObject, type V1DaemonSet, type V1Node, type V1Pod } from '@kubernetes/client-node';
import { rawGet, RawGetError } from '../controller/kube.js';
import {
  FIELD_MANAGER,
  OBJECT_REVISION_LABEL,
  REVISION_LABEL,
  ROLLOUT_LABEL,
  STABLE_LABEL,
  type ClusterClient,
  type CollectorDaemonSet,
  type CollectorPod,
  type KubeObject,
  type NodeInfo,
  type ObjectRef,
  type ProbeResult,
} from '../rollout/interfaces.js';
import { SystemClock, type Clock } from '#core/clock.js';
import { isTlsVerificationCode } from '../util/errors.js';
import { createLogger, type Logger } from '../util/logging.js';
import { ClusterRequestError, DEFAULT_REQUEST_TIMEOUT_MS, KubeApis, describeRequest } from './kubeapi.js';
import { NO_RESPONSE_CODE, unregisteredRequestCounter, type RequestCounter } from './metrics.js';
import { NodeCache } from './nodecache.js';
import { PooledKubeConfig } from './pooledkubeconfig.js';
import { watchPath } from './watch.js';

/** Default timeout of {@link KubeClusterClient.probe}. */
export const DEFAULT_PROBE_TIMEOUT_MS = 3000;
/** Page size of the node cache's LIST (bounded memory per response on large clusters). */
export const NODE_LIST_PAGE_SIZE = 500;

/** Options of {@link KubeClusterClient}. */
export interface KubeClusterClientOptions {
  /** Where requests are counted (pass the manager's `clusterRequestCounter(registry)`); default: nowhere. */
  requests?: RequestCounter;
  /** Timeout of each API request and raw GET (default 10 s). */
  timeoutMs?: number;
  /** Timeout of {@link KubeClusterClient.probe} (default 3 s). */
  probeTimeoutMs?: number;
  /** The node watch restarts when nothing (not even a bookmark) arrived for this long (default 90 s). */
  watchIdleTimeoutMs?: number;
  logger?: Logger;
  clock?: Clock;
}

/** The collector pod a Pod is, or undefined when it carries no revision label. */
export function collectorPodOf(pod: V1Pod): CollectorPod | undefined {
  const labels = pod.metadata?.labels ?? {};
  const revision = labels[OBJECT_REVISION_LABEL];
  if (revision === undefined || revision === '') return undefined;
  return {
    name: pod.metadata?.name ?? '',
    node: pod.spec?.nodeName ?? '',
    revision,
    mode: labels['telemetry.rollout.dev/mode'] === 'cluster' ? 'cluster' : 'node',
  };
}

/** Label every collector pod carries (DaemonSet agents and the watcher alike). */
export const COLLECTOR_POD_SELECTOR = 'app.kubernetes.io/name=telemetry-collector';

/** Maps an owned DaemonSet to what the reconciler needs; undefined when it lacks the revision label (not a collector DaemonSet). */
export function collectorDaemonSetOf(ds: V1DaemonSet): CollectorDaemonSet | undefined {
  const labels = ds.metadata?.labels ?? {};
  const revision = labels[OBJECT_REVISION_LABEL];
  if (revision === undefined || revision === '') return undefined;
  const generation = ds.metadata?.generation;
  const observedGeneration = ds.status?.observedGeneration;
  return {
    name: ds.metadata?.name ?? '',
    revision,
    stable: labels[STABLE_LABEL] === 'true',
    desiredNumberScheduled: ds.status?.desiredNumberScheduled ?? 0,
    numberReady: ds.status?.numberReady ?? 0,
    // Without a generation there is nothing to have observed; without observedGeneration the controller has not looked yet.
    observed: generation === undefined || (observedGeneration !== undefined && observedGeneration >= generation),
  };
}

/** The failing checks of a /readyz answer (`[-]etcd failed: ...` lines), shortened for a message. */
export function failingChecks(body: string): string {
  const lines = body
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('[-]'))
    .map((l) => l.slice(3));
  const text = lines.join('; ');
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/** See the file comment. Call {@link KubeClusterClient.close} when done: it stops the node watch. */
export class KubeClusterClient implements ClusterClient {
  readonly name: string;
  private readonly kc: KubeConfig;
  private readonly apis: KubeApis;
  private readonly timeoutMs: number;
  private readonly probeTimeoutMs: number;
  private readonly watchIdleTimeoutMs: number;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private nodeCache: NodeCache | undefined;
  private closed = false;

  constructor(name: string, kc: KubeConfig, opts: KubeClusterClientOptions = {}) {
    this.name = name;
    this.kc = kc;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.probeTimeoutMs = opts.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
    this.watchIdleTimeoutMs = opts.watchIdleTimeoutMs ?? 90_000;
    this.logger = (opts.logger ?? createLogger()).child({ cluster: name });
    this.clock = opts.clock ?? new SystemClock();
    this.apis = new KubeApis(kc, { cluster: name, requests: opts.requests ?? unregisteredRequestCounter(), timeoutMs: this.timeoutMs });
  }

  /** Whether the node cache has been filled by its first LIST (it then serves reads from the watch). */
  get nodeCacheSynced(): boolean {
    return this.nodeCache?.synced ?? false;
  }

  async probe(signal?: AbortSignal): Promise<ProbeResult> {
    const kind = { verb: 'get', resource: '/readyz' };
    try {
      const res = await rawGet(this.kc, '/readyz', { timeoutMs: this.probeTimeoutMs, ...(signal ? { signal } : {}) });
      this.apis.count(kind, String(res.statusCode));
      if (res.statusCode === 200) return { reachable: true, message: 'readyz ok' };
      if (res.statusCode === 401 || res.statusCode === 403) {
        // It answered: the server is up, the Secret is not (expired, rotated or stripped of its rights).
        return {
          reachable: true,
          credentialsRejected: true,
          message: `GET /readyz answered HTTP ${res.statusCode} (the kubeconfig's credentials were rejected)`,
        };
      }
      const checks = failingChecks(res.body);
      return { reachable: false, message: `GET /readyz answered HTTP ${res.statusCode}${checks ? `: ${checks}` : ''}` };
    } catch (err) {
      this.apis.count(kind, NO_RESPONSE_CODE);
      // RawGetError messages name the server URL and the failure (timed out, ECONNREFUSED), never credentials.
      const message = err instanceof RawGetError ? err.message : `GET /readyz failed: ${err instanceof Error ? err.name : 'error'}`;
      // A certificate that fails verification is the kubeconfig's CA (or the server's certificate), not an outage.
      if (err instanceof RawGetError && isTlsVerificationCode(err.code)) return { reachable: true, credentialsRejected: true, message };
      return { reachable: false, message };
    }
  }

  async listNodes(signal?: AbortSignal): Promise<NodeInfo[]> {
    if (this.closed) throw new Error(`cluster ${this.name}: list Nodes: client is closed`);
    this.nodeCache ??= this.makeNodeCache();
    return this.nodeCache.nodes(signal);
  }

  async setNodeRevision(node: string, revision: string | null, signal?: AbortSignal): Promise<void> {
    // A JSON merge patch of one label: null removes it; setting the value it has changes nothing.
    const body = { metadata: { labels: { [REVISION_LABEL]: revision } } };
    const what = revision === null ? `remove label ${REVISION_LABEL} of Node ${node}` : `set label ${REVISION_LABEL}=${revision} on Node ${node}`;
    const updated = await this.apis.call(
      what,
      () => this.apis.core.patchNode({ name: node, body }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
      signal,
    );
    this.nodeCache?.observe(updated);
  }

  async apply(obj: KubeObject, signal?: AbortSignal): Promise<void> {
    const what = `apply ${obj.kind} ${obj.metadata.namespace ? `${obj.metadata.namespace}/` : ''}${obj.metadata.name}`;
    await this.apis.call(
      what,
      // force: the operator owns every field it sets; another manager's conflicting edit is overwritten.
      () => this.apis.objects.patch(obj as KubernetesObject, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply),
      signal,
    );
  }

  async delete(ref: ObjectRef, signal?: AbortSignal): Promise<void> {
    const what = `delete ${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`;
    const spec: KubernetesObject = {
      apiVersion: ref.apiVersion,
      kind: ref.kind,
      metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) },
    };
    try {
      // Background: the object goes at once and the garbage collector removes its pods afterwards.
      await this.apis.call(what, () => this.apis.objects.delete(spec, undefined, undefined, undefined, undefined, 'Background'), signal);
    } catch (err) {
      if (err instanceof ClusterRequestError && err.code === 404) return;
      throw err;
    }
  }

  /** `rollout` is the value of the rollout label (`rolloutLabelValue(namespace, name)`). Sorted by name. */
  async listCollectorDaemonSets(namespace: string, rollout: string, signal?: AbortSignal): Promise<CollectorDaemonSet[]> {
    const list = await this.apis.call(
      `list DaemonSets in ${namespace}`,
      () => this.apis.apps.listNamespacedDaemonSet({ namespace, labelSelector: `${ROLLOUT_LABEL}=${rollout}` }),
      signal,
    );
    return list.items
      .map(collectorDaemonSetOf)
      .filter((d): d is CollectorDaemonSet => d !== undefined)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async listCollectorPods(namespace: string, signal?: AbortSignal): Promise<CollectorPod[]> {
    const list = await this.apis.call(
      `list Pods in ${namespace}`,
      // resourceVersion 0: served from the API server's watch cache, not a quorum read of etcd.
      () => this.apis.core.listNamespacedPod({ namespace, labelSelector: `${COLLECTOR_POD_SELECTOR},${OBJECT_REVISION_LABEL}`, resourceVersion: '0' }),
      signal,
    );
    return (
      list.items
        // A pod that has exited (Succeeded/Failed) runs nothing; a terminating one still may.
        .filter((p) => p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed')
        .map(collectorPodOf)
        .filter((p): p is CollectorPod => p !== undefined)
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    );
  }

  async getRaw(path: string, signal?: AbortSignal): Promise<string> {
    const kind = describeRequest('GET', path);
    const what = `GET ${path.split('?')[0]}`;
    let res;
    try {
      res = await rawGet(this.kc, path, { timeoutMs: this.timeoutMs, ...(signal ? { signal } : {}) });
    } catch (err) {
      this.apis.count(kind, NO_RESPONSE_CODE);
      throw new ClusterRequestError(this.name, what, err instanceof RawGetError ? err.message : 'failed', undefined, err);
    }
    this.apis.count(kind, String(res.statusCode));
    if (res.statusCode < 200 || res.statusCode > 299) {
      throw new ClusterRequestError(this.name, what, `HTTP ${res.statusCode}`, res.statusCode, undefined);
    }
    return res.body;
  }

  /** Stops the node watch and closes the pooled connections. Other calls still work afterwards; listNodes does not. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.nodeCache?.stop();
    if (this.kc instanceof PooledKubeConfig) await this.kc.closeConnections();
  }

  private makeNodeCache(): NodeCache {
    const watchKind = { verb: 'watch', resource: 'nodes' };
    return new NodeCache(
      {
        list: async (signal) => {
          const items: V1Node[] = [];
          let resourceVersion = '';
          let cont: string | undefined;
          do {
            const page = await this.apis.call(
              'list Nodes',
              () => this.apis.core.listNode({ limit: NODE_LIST_PAGE_SIZE, ...(cont ? { _continue: cont } : {}) }),
              signal,
            );
            items.push(...page.items);
            if (resourceVersion === '') resourceVersion = page.metadata?.resourceVersion ?? '';
            cont = page.metadata?._continue || undefined;
          } while (cont !== undefined);
          return { items, resourceVersion };
        },
        watch: async (resourceVersion, signal, onEvent) => {
          let answered = false;
          // Like client-go: the server ends each watch after 5-10 min, spreading reconnects of many clients.
          const timeoutSeconds = String(300 + Math.floor(Math.random() * 300));
          try {
            await watchPath(
              this.kc,
              '/api/v1/nodes',
              { resourceVersion, allowWatchBookmarks: 'true', timeoutSeconds },
              {
                signal,
                idleTimeoutMs: this.watchIdleTimeoutMs,
                onEvent,
                onResponse: (status) => {
                  answered = true;
                  this.apis.count(watchKind, String(status));
                },
              },
            );
          } catch (err) {
            if (!answered) this.apis.count(watchKind, NO_RESPONSE_CODE);
            throw err;
          }
        },
      },
      { clock: this.clock, logger: this.logger },
    );
  }
}
