/**
 * Cluster mode (a Deployment; one active replica chosen by a Lease): the only cluster-wide LIST/WATCH
 * of a frugal installation. The leader lists each configured resource with resourceVersion=0 (served from
 * the API server's watch cache, no etcd read), then watches from the list's resourceVersion, keeps a
 * trimmed in-memory cache, and serves it over HTTP:
 *   GET /metadata/pods?node=X          pods bound to node X (all pods without `node`)
 *   GET /metadata/services | /metadata/endpointslices | /metadata/nodes
 *   GET /readyz                         200 only on the synced leader (so a Service routes to it alone)
 * Followers serve 503 with the current holder. Its API cost is O(1) per cluster: one watch per resource,
 * a relist only after a 410 (with backoff), and one Lease GET+PUT every 2 s per replica.
 */
import type { ApiClient } from '../apiclient.js';
import { RESOURCES } from '../apiclient.js';
import type { BackoffPolicy } from '../backoff.js';
import type { Clock } from '#core/clock.js';
import type { CollectorConfig, WatchedResource } from '../config.js';
import type { RouteHandler } from '#core/httpserver.js';
import { jsonReply } from '#core/httpserver.js';
import type { KillSwitch } from '../killswitch.js';
import type { Logger } from '#core/logger.js';
import { Reflector } from '../reflector.js';
import { MetadataCache } from './cache.js';
import { LeaderElector } from './leader.js';

/** Dependencies of a ClusterAgent. */
export interface ClusterAgentOptions {
  config: CollectorConfig;
  api: ApiClient;
  killSwitch: KillSwitch;
  clock: Clock;
  logger: Logger;
  backoff: BackoffPolicy;
  /** Namespace of the Lease (the pod's namespace). */
  leaseNamespace: string;
  /** Lease name, shared by every replica and revision of this collector in the cluster. */
  leaseName: string;
  /** This replica's identity (pod name). */
  identity: string;
  /** Leader-election timings; client-go defaults when omitted. */
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  random?: () => number;
}

/** See the file comment. */
export class ClusterAgent {
  readonly cache = new MetadataCache();
  readonly elector: LeaderElector;
  private readonly o: ClusterAgentOptions;
  private reflectors: Reflector[] = [];

  constructor(options: ClusterAgentOptions) {
    this.o = options;
    this.elector = new LeaderElector({
      api: options.api,
      killSwitch: options.killSwitch,
      clock: options.clock,
      logger: options.logger,
      namespace: options.leaseNamespace,
      name: options.leaseName,
      identity: options.identity,
      ...(options.leaseDurationMs !== undefined ? { leaseDurationMs: options.leaseDurationMs } : {}),
      ...(options.renewDeadlineMs !== undefined ? { renewDeadlineMs: options.renewDeadlineMs } : {}),
      ...(options.retryPeriodMs !== undefined ? { retryPeriodMs: options.retryPeriodMs } : {}),
      ...(options.random ? { random: options.random } : {}),
      onStartedLeading: (signal) => this.lead(signal),
      onNewLeader: (holder) => options.logger.info('observed leader', { holder }),
    });
  }

  /** Resources this agent watches. */
  get resources(): WatchedResource[] {
    return this.o.config.clusterWatcher.resources;
  }

  /** True when leader and every resource is synced. */
  ready(): boolean {
    return this.elector.isLeader() && this.resources.every((r) => this.cache.isSynced(r));
  }

  /**
   * Campaigns for the lease and, while leader, runs one reflector per resource. Resolves after shutdown.
   * With `clusterWatcher.enabled: false` it makes no API call at all and just waits for shutdown.
   */
  async run(signal: AbortSignal): Promise<void> {
    if (!this.o.config.clusterWatcher.enabled) {
      this.o.logger.warn('clusterWatcher.enabled is false: cluster mode idle');
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      return;
    }
    await this.elector.run(signal);
  }

  private async lead(signal: AbortSignal): Promise<void> {
    const { api, killSwitch, clock, logger, backoff, random } = this.o;
    this.reflectors = this.resources.map(
      (resource) =>
        new Reflector({
          api,
          killSwitch,
          clock,
          logger,
          backoff,
          ref: RESOURCES[resource],
          listResourceVersion: '0',
          ...(random ? { random } : {}),
          onList: (items, rv) => this.cache.replace(resource, items, rv),
          onEvent: (ev) => this.cache.apply(resource, ev),
        }),
    );
    try {
      await Promise.all(this.reflectors.map((r) => r.run(signal)));
    } finally {
      // A follower must not serve what it saw as leader: it is no longer kept up to date.
      this.cache.clear();
    }
  }

  /** Reflector statistics per resource (while leading). */
  stats(): Record<string, unknown> {
    return Object.fromEntries(this.reflectors.map((r, i) => [this.resources[i] ?? String(i), { ...r.stats }]));
  }

  /** HTTP routes of the metadata service. */
  routes(): Record<string, RouteHandler> {
    const notLeader = () => jsonReply(503, { leader: false, holder: this.elector.holder() ?? null });
    const serve =
      (resource: WatchedResource, items: () => unknown[]): RouteHandler =>
      () => {
        if (!this.elector.isLeader()) return notLeader();
        if (!this.resources.includes(resource)) return jsonReply(404, { error: `${resource} are not watched (clusterWatcher.resources)` });
        if (!this.cache.isSynced(resource)) return jsonReply(503, { leader: true, synced: false });
        return jsonReply(200, { resourceVersion: this.cache.resourceVersion(resource) ?? null, items: items() });
      };
    return {
      '/metadata/pods': (url) => {
        const node = url.searchParams.get('node') ?? undefined;
        return serve('pods', () => this.cache.pods(node))(url);
      },
      '/metadata/services': serve('services', () => this.cache.list('services')),
      '/metadata/endpointslices': serve('endpointslices', () => this.cache.list('endpointslices')),
      '/metadata/nodes': serve('nodes', () => this.cache.list('nodes')),
      '/readyz': () =>
        this.ready()
          ? jsonReply(200, { leader: true, synced: true, objects: this.cache.counts() })
          : jsonReply(503, { leader: this.elector.isLeader(), holder: this.elector.holder() ?? null, objects: this.cache.counts() }),
    };
  }
}
