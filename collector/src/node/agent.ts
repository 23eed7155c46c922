/**
 * Node mode (one agent per node, a DaemonSet): every `intervalSeconds` it reads the host's /proc, /sys
 * and statfs, and the pods of its node from a PodSource: the local kubelet (frugal, the default) or the
 * Naive cluster-wide LIST/WATCH (the incident pattern, see ../naive/). The only API server request of a
 * frugal node agent is an occasional GET of its own Node object (labels: zone, instance type), never a
 * LIST or WATCH: its API cost is O(1) per node whatever the size of the cluster.
 *
 * While the kill switch is engaged the agent idles: no API call, no kubelet call, no collection; its
 * HTTP server keeps answering /healthz so the kubelet's probes do not restart it.
 */
import type { Clock } from '#core/clock.js';
import { isAbortError } from '#core/clock.js';
import type { ApiClient, KubeObject } from '../apiclient.js';
import { RESOURCES } from '../apiclient.js';
import { Backoff, type BackoffPolicy } from '../backoff.js';
import type { CollectorConfig } from '../config.js';
import type { KillSwitch } from '../killswitch.js';
import type { KubeletClient, PodInfo } from '../kubelet.js';
import type { Logger } from '#core/logger.js';
import { serializeError } from '#core/logger.js';
import { linkSignals } from '../signals.js';
import type { NodeMetrics } from './metrics.js';
import type { NodeCollector } from './procfs.js';

/** Where the pods of this node come from. */
export interface PodSource {
  /** `kubelet` or `naive` (for logs and status). */
  readonly name: string;
  /** The pods bound to this node right now. */
  pods(signal: AbortSignal): Promise<PodInfo[]>;
  /** Background work (the Naive list/watch loop); resolves once `signal` aborts. */
  run?(signal: AbortSignal): Promise<void>;
}

/** PodSource over the local kubelet's read-only `/pods`. */
export class KubeletPodSource implements PodSource {
  readonly name = 'kubelet';
  private readonly kubelet: KubeletClient;
  constructor(kubelet: KubeletClient) {
    this.kubelet = kubelet;
  }
  pods(signal: AbortSignal): Promise<PodInfo[]> {
    return this.kubelet.pods(signal);
  }
}

/** Default period of the GET of the node's own Node object. */
export const NODE_INFO_REFRESH_MS = 300_000;

/** Dependencies of a NodeAgent. */
export interface NodeAgentOptions {
  config: CollectorConfig;
  nodeName: string;
  clock: Clock;
  logger: Logger;
  killSwitch: KillSwitch;
  api: ApiClient;
  podSource: PodSource;
  /** null when `collect.node` is off. */
  nodeCollector: NodeCollector | null;
  nodeMetrics: NodeMetrics;
  /** Period of the Node GET; 0 disables it. Default NODE_INFO_REFRESH_MS. */
  nodeInfoRefreshMs?: number;
  backoff: BackoffPolicy;
  /** Jitter source; the first collection starts at random() × interval to de-synchronise a fleet. */
  random?: () => number;
}

/** Status of a node agent, for /healthz and tests. */
export interface NodeAgentStatus {
  collections: number;
  lastCollectionAt: number | undefined;
  lastErrors: string[];
  pods: number | undefined;
}

/** The node-mode collection loop. */
export class NodeAgent {
  private readonly o: NodeAgentOptions;
  private readonly random: () => number;
  private readonly nodeInfoBackoff: Backoff;
  private nextNodeInfoAt = 0;
  private readonly st: NodeAgentStatus = { collections: 0, lastCollectionAt: undefined, lastErrors: [], pods: undefined };

  constructor(options: NodeAgentOptions) {
    this.o = options;
    this.random = options.random ?? Math.random;
    this.nodeInfoBackoff = new Backoff(options.backoff, options.clock, this.random);
  }

  /** A snapshot of the agent's progress. */
  status(): NodeAgentStatus {
    return { ...this.st, lastErrors: [...this.st.lastErrors] };
  }

  /**
   * Runs until `signal` aborts: the pod source's background work (if any) and the collection loop,
   * idling while the kill switch is engaged. Never rejects for a collection failure (those are logged
   * and counted); resolves after shutdown.
   */
  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.o.podSource.run?.(signal), this.loop(signal)]);
  }

  private async loop(signal: AbortSignal): Promise<void> {
    const intervalMs = this.o.config.intervalSeconds * 1000;
    const { clock, killSwitch } = this.o;
    try {
      // De-synchronise agents that start together (a DaemonSet rollout step) so their kubelet and API
      // requests do not arrive in lockstep.
      await clock.sleep(this.random() * intervalMs, signal);
      while (!signal.aborted) {
        await killSwitch.waitUntilRunning(signal);
        const cycle = linkSignals([signal, killSwitch.signal]);
        const started = clock.nowMs();
        try {
          await this.collectOnce(cycle.signal);
          await clock.sleep(intervalMs - (clock.nowMs() - started), cycle.signal);
        } catch (err) {
          // Only a cancellation reaches here (collectOnce never throws otherwise): shutdown ends the loop,
          // a kill-switch stop goes back to waitUntilRunning.
          if (!isAbortError(err)) throw err;
        } finally {
          cycle.dispose();
        }
      }
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  }

  /**
   * One collection: node telemetry, pods, and (when due) the Node object, concurrently. Failures are
   * logged and counted per source; a cancellation rejects with the abort reason.
   */
  async collectOnce(signal: AbortSignal): Promise<void> {
    const { config, nodeMetrics, logger, clock } = this.o;
    const errors: string[] = [];
    const fail = (source: string, err: unknown): void => {
      if (signal.aborted || isAbortError(err)) return;
      errors.push(`${source}: ${(err as Error).message}`);
      nodeMetrics.collectErrors.inc({ source });
      logger.warn('collection failed', { source, err: serializeError(err) });
    };
    const tasks: Promise<void>[] = [];
    if (this.o.nodeCollector && config.collect.node) {
      const collector = this.o.nodeCollector;
      tasks.push(
        collector.collect().then((sample) => {
          nodeMetrics.updateNode(sample);
          for (const e of sample.errors) {
            errors.push(`${e.source}: ${e.error.message}`);
            logger.warn('collection failed', { source: e.source, err: serializeError(e.error) });
          }
        }),
      );
    }
    if (config.collect.containers) {
      tasks.push(
        this.o.podSource.pods(signal).then(
          (pods) => {
            nodeMetrics.updatePods(pods);
            this.st.pods = pods.length;
          },
          (err: unknown) => fail('pods', err),
        ),
      );
    }
    const refresh = this.o.nodeInfoRefreshMs ?? NODE_INFO_REFRESH_MS;
    if (refresh > 0 && clock.nowMs() >= this.nextNodeInfoAt) {
      tasks.push(
        this.refreshNodeInfo(signal).then(
          () => {
            this.nodeInfoBackoff.reset();
            this.nextNodeInfoAt = clock.nowMs() + refresh;
          },
          (err: unknown) => {
            // Back off across cycles too, so an API server outage does not meet a GET from every node
            // every interval.
            if (!(signal.aborted || isAbortError(err))) this.nextNodeInfoAt = clock.nowMs() + this.nodeInfoBackoff.next(err);
            fail('node-info', err);
          },
        ),
      );
    }
    await Promise.all(tasks);
    signal.throwIfAborted();
    this.st.collections++;
    this.st.lastCollectionAt = clock.nowMs();
    this.st.lastErrors = errors;
    nodeMetrics.collections.inc();
    nodeMetrics.lastCollect.set(clock.nowMs() / 1000);
  }

  private async refreshNodeInfo(signal: AbortSignal): Promise<void> {
    // A single named GET (not a LIST) with resourceVersion=0, answered from the API server's watch cache:
    // O(1) per node and no etcd read.
    // No in-call retries: a failure is retried at a later cycle after the cross-cycle backoff, so a
    // failing API server costs at most one request per agent per backoff period.
    const node = await this.o.api.get<KubeObject>(RESOURCES.nodes, { name: this.o.nodeName }, { signal, retries: 0, resourceVersion: '0' });
    const labels = node.metadata?.labels ?? {};
    const info = (node.status as { nodeInfo?: { kubeletVersion?: string; osImage?: string } } | undefined)?.nodeInfo;
    this.o.nodeMetrics.updateNodeInfo({
      node: this.o.nodeName,
      kubeletVersion: info?.kubeletVersion ?? '',
      osImage: info?.osImage ?? '',
      zone: labels['topology.kubernetes.io/zone'] ?? '',
      instanceType: labels['node.kubernetes.io/instance-type'] ?? '',
    });
  }
}
