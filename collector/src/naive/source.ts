/**
 * DANGEROUS: the Naive metadata mode reproduces the pattern of the December 2024 incident, for pressure
 * tests and for proving that the rollout's health gates catch it. Never enable it on a production
 * cluster; the operator's preflight refuses it where estimateApiLoad() says it would not fit.
 *
 * Every node agent, on its own:
 *   - LISTs pods, services and endpoints cluster-wide WITHOUT resourceVersion: consistent (quorum) reads
 *     that go to etcd and whose cost grows with the number of objects in the cluster;
 *   - WATCHes them cluster-wide from the list's resourceVersion;
 *   - relists everything every `metadata.naiveRelistSeconds`.
 * So the API server's load is O(nodes × objects): invisible on a small staging cluster, overwhelming on
 * a large one, which is exactly what the incident's testing missed.
 *
 * What it still does right, on purpose:
 *   - it obeys the kill switch (every in-flight LIST/WATCH is aborted when the stop file appears): the
 *     break-glass path must work for the worst agent above all;
 *   - it keeps the backoff on errors, so the test harness cannot melt the machine it runs on.
 * What it deliberately does NOT do: use the token bucket. A limit would cap the very load the pressure
 * test exists to produce, and the incident's agent had none. (The ApiClient it is given is built with
 * `rateLimiter: null` by startAgent for this mode only.)
 *
 * Client-side memory is not what is under test: of the lists it keeps only the pods of its own node
 * (and object counts), so the e2e node runtime can host many naive agents in one process while the API
 * server still serialises and sends every object to every agent.
 */
import type { ApiClient, KubeObject } from '../apiclient.js';
import { RESOURCES } from '../apiclient.js';
import type { BackoffPolicy } from '../backoff.js';
import type { Clock } from '#core/clock.js';
import type { KillSwitch } from '../killswitch.js';
import type { PodInfo } from '../kubelet.js';
import { podInfoFrom } from '../kubelet.js';
import type { Logger } from '#core/logger.js';
import type { PodSource } from '../node/agent.js';
import { Reflector } from '../reflector.js';

/** The resources the incident's agent listed and watched. */
export const NAIVE_RESOURCES = ['pods', 'services', 'endpoints'] as const;

/** Dependencies of a NaivePodSource. */
export interface NaivePodSourceOptions {
  /** Must be an unthrottled client (rateLimiter: null); see the file comment. */
  api: ApiClient;
  killSwitch: KillSwitch;
  clock: Clock;
  logger: Logger;
  backoff: BackoffPolicy;
  nodeName: string;
  relistSeconds: number;
  random?: () => number;
}

/** See the file comment. */
export class NaivePodSource implements PodSource {
  readonly name = 'naive';
  readonly reflectors: Reflector[];
  private readonly ownPods = new Map<string, KubeObject>();
  private readonly counts = new Map<string, Set<string>>();
  private synced = false;

  private readonly o: NaivePodSourceOptions;
  constructor(o: NaivePodSourceOptions) {
    this.o = o;
    const key = (obj: KubeObject) => `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
    this.reflectors = NAIVE_RESOURCES.map((resource) => {
      const keys = new Set<string>();
      this.counts.set(resource, keys);
      return new Reflector({
        api: o.api,
        killSwitch: o.killSwitch,
        clock: o.clock,
        logger: o.logger,
        backoff: o.backoff,
        ref: RESOURCES[resource],
        // The incident pattern: no resourceVersion → quorum read from etcd, every time.
        listResourceVersion: undefined,
        relistEveryMs: o.relistSeconds * 1000,
        ...(o.random ? { random: o.random } : {}),
        onList: (items) => {
          keys.clear();
          for (const it of items) keys.add(key(it));
          if (resource === 'pods') {
            this.ownPods.clear();
            for (const p of items) if (this.isOurs(p)) this.ownPods.set(key(p), p);
            this.synced = true;
          }
        },
        onEvent: (ev) => {
          const k = key(ev.object);
          if (ev.type === 'DELETED') keys.delete(k);
          else keys.add(k);
          if (resource !== 'pods') return;
          if (ev.type === 'DELETED' || !this.isOurs(ev.object)) this.ownPods.delete(k);
          else this.ownPods.set(k, ev.object);
        },
      });
    });
  }

  private isOurs(p: KubeObject): boolean {
    return (p.spec as { nodeName?: string } | undefined)?.nodeName === this.o.nodeName;
  }

  /** Object counts seen cluster-wide, per resource. */
  objectCounts(): Record<string, number> {
    return Object.fromEntries([...this.counts].map(([r, s]) => [r, s.size]));
  }

  /** Runs the three list/watch/relist loops until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    this.o.logger.warn('metadata mode Naive: cluster-wide LIST/WATCH from every node (DANGEROUS, pressure tests only)', {
      relistSeconds: this.o.relistSeconds,
    });
    await Promise.all(this.reflectors.map((r) => r.run(signal)));
  }

  /** Pods of this node from the cluster-wide list; rejects until the first LIST of pods has completed. */
  async pods(): Promise<PodInfo[]> {
    if (!this.synced) throw new Error('naive metadata: pods not listed yet');
    return [...this.ownPods.values()].map(podInfoFrom);
  }
}
