/**
 * Builds the operator from its parts: informers on TelemetryRollouts and on the targets' kubeconfig
 * Secrets, one work queue, the rollout reconciler with its real collaborators (cluster clients from
 * Secrets, status writer, events, gates, break-glass), leader election and the manager's HTTP endpoints.
 * `main.ts` runs it as a process; tests build it with their own options.
 */
import { CustomObjectsApi, type KubeConfig, type KubernetesObject, type V1Secret } from '@kubernetes/client-node';
import type { TelemetryRollout } from './api/types.generated.js';
import { GROUP, PLURAL, VERSION } from './api/crd.js';
import { SecretClusterClientFactory, type SecretReader } from './cluster/factory.js';
import { clusterRequestCounter } from './cluster/metrics.js';
import { ApiEventSink, KubeEventRecorder, KubeStatusWriter } from './cluster/status.js';
import { Informer, splitKey } from './controller/informer.js';
import { customResourceSource, secretSource } from './controller/informersources.js';
import { KubeLeaseClient } from './controller/leaderelection.js';
import { Manager } from './controller/manager.js';
import { ControllerMetrics } from './controller/metrics.js';
import { requestOptions } from './controller/kube.js';
import { WorkQueue } from './controller/workqueue.js';
import { ControlPlaneGateEvaluator } from './gates/evaluator.js';
import type { BreakGlassActuator, GateEvaluator, InventoryRecorder } from './rollout/interfaces.js';
import { TransportBreakGlass, kubeBackends } from './breakglass/actuator.js';
import { collectorLoadPreflight } from './rollout/preflight.js';
import { RolloutReconciler, type RolloutReader } from './rollout/reconciler.js';
import type { Clock } from '#core/clock.js';
import { SystemClock } from '#core/clock.js';
import type { Logger } from './util/logging.js';
import {
  PassSignal,
  interruptibleBreakGlass,
  interruptibleClusters,
  interruptibleGates,
  interruptibleInventory,
  interruptibleStatus,
} from './interruptible.js';

/** A TelemetryRollout as the informer holds it (client-node's KubernetesObject shape). */
type RolloutObject = KubernetesObject & Pick<TelemetryRollout, 'spec' | 'status'>;

/** The Lease operator replicas elect a leader on. */
export const LEADER_LEASE_NAME = 'telemetry-rollout-operator';

/** Options of {@link buildOperator}. */
export interface OperatorOptions {
  /** The management cluster (where TelemetryRollouts and kubeconfig Secrets live). */
  kubeConfig: KubeConfig;
  logger: Logger;
  clock?: Clock;
  /** Reconcile rollouts of this namespace only (WATCH_NAMESPACE); all namespaces when absent. */
  namespace?: string;
  /** Lease-based leader election; absent: this process always leads (development). */
  leaderElection?: { namespace: string; identity: string; leaseDurationSeconds?: number; renewDeadlineSeconds?: number; retryPeriodSeconds?: number };
  healthPort?: number;
  metricsPort?: number;
  host?: string;
  /** Concurrent reconciles of different rollouts (default 4). */
  workers?: number;
  /** Replaces the default ControlPlaneGateEvaluator. */
  gates?: GateEvaluator;
  breakGlass?: BreakGlassActuator;
  inventory?: InventoryRecorder;
  /** Timeout of management-cluster requests (default 10 s). */
  requestTimeoutMs?: number;
  /** Informer resync period (default 600 s). */
  resyncSeconds?: number;
}

/** The assembled operator. */
export interface Operator {
  manager: Manager;
  reconciler: RolloutReconciler;
  metrics: ControllerMetrics;
  queue: WorkQueue;
}

/**
 * Reads rollouts straight from the API server, not the informer cache: a pass must start from the
 * object its previous status write produced, or its own write would conflict every time. One GET per
 * pass on the management cluster is cheap; the informer is there to trigger passes. The GET carries
 * the pass signal too, so a pass interrupted before it has read anything ends at once.
 */
class DirectRolloutReader implements RolloutReader {
  private readonly api: CustomObjectsApi;
  private readonly timeoutMs: number;
  private readonly pass: PassSignal;
  constructor(kc: KubeConfig, timeoutMs: number, pass: PassSignal) {
    this.timeoutMs = timeoutMs;
    this.pass = pass;
    this.api = kc.makeApiClient(CustomObjectsApi);
  }
  async get(namespace: string, name: string): Promise<TelemetryRollout | undefined> {
    try {
      const timeout = AbortSignal.timeout(this.timeoutMs);
      return await this.pass.guard(
        async (signal) =>
          (await this.api.getNamespacedCustomObject(
            { group: GROUP, version: VERSION, namespace, plural: PLURAL, name },
            requestOptions(signal ?? timeout),
          )) as TelemetryRollout,
        timeout,
      );
    } catch (err) {
      if (this.pass.current()?.aborted) throw err;
      if ((err as { code?: number }).code === 404) return undefined;
      throw new Error(`get TelemetryRollout ${namespace}/${name}`, { cause: err });
    }
  }
}

/** Wires the operator. Nothing runs until `manager.start()`. */
export function buildOperator(o: OperatorOptions): Operator {
  const clock = o.clock ?? new SystemClock();
  const logger = o.logger;
  const metrics = new ControllerMetrics({ defaultMetrics: true });
  const requests = clusterRequestCounter(metrics.registry);
  const timeoutMs = o.requestTimeoutMs ?? 10_000;
  const scope = o.namespace ? { namespace: o.namespace } : {};

  const rollouts = new Informer<RolloutObject>({
    name: 'telemetryrollouts',
    newSource: customResourceSource(o.kubeConfig, { group: GROUP, version: VERSION, plural: PLURAL, ...scope }),
    clock,
    logger,
    resyncSeconds: o.resyncSeconds ?? 600,
  });
  const secrets = new Informer<V1Secret>({
    name: 'secrets',
    newSource: secretSource(o.kubeConfig, scope),
    clock,
    logger,
    resyncSeconds: o.resyncSeconds ?? 600,
  });
  const queue = new WorkQueue({ clock, name: 'telemetryrollouts' });
  metrics.trackQueue(queue);

  // Handlers only enqueue (a throwing handler would be an unhandled rejection inside client-node).
  rollouts.addHandler((e) => {
    const { namespace, name } = splitKey(e.key);
    if (e.type === 'delete') metrics.deleteRollout(namespace ?? 'default', name);
    else queue.add(e.key);
  });
  // A changed kubeconfig Secret (rotation, a new cluster for a selector) re-reconciles the rollouts of its namespace.
  secrets.addHandler((e) => {
    const ns = e.obj.metadata?.namespace;
    for (const r of rollouts.list(ns)) queue.add(`${r.metadata?.namespace ?? 'default'}/${r.metadata?.name ?? ''}`);
  });

  const reader: SecretReader = {
    get: async (namespace, name) => secrets.get(`${namespace}/${name}`),
    list: async (namespace) => secrets.list(namespace),
  };
  // Break-glass and the node inventories it works from, unless the caller brings its own.
  const bg = new TransportBreakGlass(kubeBackends(o.kubeConfig), clock, logger);
  const factory = new SecretClusterClientFactory({ reader, clientOptions: { requests, logger, clock, timeoutMs } });
  // The reconciler's reconcile(key) takes no signal: the collaborators get the work queue's signal of
  // each pass through `pass` instead (interruptible.ts says how each one honours it).
  const pass = new PassSignal();
  const reconciler = new RolloutReconciler({
    rollouts: new DirectRolloutReader(o.kubeConfig, timeoutMs, pass),
    clusters: interruptibleClusters(factory, pass),
    gates: interruptibleGates(o.gates ?? new ControlPlaneGateEvaluator({ clock, registry: metrics.registry }), pass),
    status: interruptibleStatus(new KubeStatusWriter(o.kubeConfig, { requests, timeoutMs }), pass),
    // Events follow the status write (the commit point) and are best effort: not interrupted.
    events: new KubeEventRecorder(new ApiEventSink(o.kubeConfig, { requests, timeoutMs }), { clock, logger }),
    clock,
    logger,
    breakGlass: interruptibleBreakGlass(o.breakGlass ?? bg, pass),
    inventory: interruptibleInventory(o.inventory ?? bg, pass),
    options: { preflight: [collectorLoadPreflight()] },
  });

  const manager = new Manager({
    logger,
    clock,
    metrics,
    ...(o.leaderElection ? { leaderElection: { name: LEADER_LEASE_NAME, leaseClient: new KubeLeaseClient(o.kubeConfig), ...o.leaderElection } } : {}),
    ...(o.healthPort !== undefined ? { healthPort: o.healthPort } : {}),
    ...(o.metricsPort !== undefined ? { metricsPort: o.metricsPort } : {}),
    ...(o.host ? { host: o.host } : {}),
  });
  manager.addInformer(rollouts);
  manager.addInformer(secrets);
  manager.addController({
    name: 'telemetryrollout',
    queue,
    workers: o.workers ?? 4,
    reconcile: async (key, signal) => {
      const result = await pass.run(signal, () => reconciler.reconcile(key));
      const { namespace, name } = splitKey(key);
      const status = rollouts.get(key)?.status;
      if (status?.phase) metrics.setRolloutPhase(namespace ?? 'default', name, status.phase);
      if (status)
        metrics.setBreakGlassNeeded(
          namespace ?? 'default',
          name,
          status.conditions?.some((c) => c.type === 'BreakGlassNeeded' && c.status === 'True') ?? false,
        );
      return result;
    },
  });
  // The target clients' node watches (and a node LIST still in flight) end with the process's work.
  manager.addShutdownHook('close target cluster clients', () => factory.close());
  // Break-glass attempts run outside the passes: cancel them (their nodes count as not done, and the
  // next leader sends again from the status) rather than leave ssh children behind.
  manager.addShutdownHook('cancel break-glass attempts', () => bg.close());
  return { manager, reconciler, metrics, queue };
}
