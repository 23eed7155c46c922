/**
 * The reconciler's collaborators, made to honour the AbortSignal of the reconcile pass that calls them.
 *
 * The work queue hands every reconcile a signal that aborts when this process must stop acting (it is
 * shutting down, or lost leadership). The rollout reconciler's `reconcile(key)` takes no signal, so
 * {@link PassSignal} carries it in an AsyncLocalStorage from the controller's call into every
 * collaborator call the pass makes, and the wrappers here apply it:
 * - every request to a target or the management cluster gets it (with its own timeout), so an
 *   in-flight request is cancelled at once;
 * - a call made after the abort, or answered after it, throws the abort reason instead of returning,
 *   so an answer shaped by the abort (a probe saying "unreachable", a gate saying NoData) never
 *   reaches the reconciler's decisions;
 * - the status write is the pass's commit point: refused once the signal has aborted, so an
 *   interrupted pass writes nothing, but not cancelled once begun (a single conditional PUT, bounded
 *   by its own timeout), so a pass that got that far commits what it decided.
 * Actions a pass performed before the abort are idempotent convergence steps: the next leader reads
 * the last committed status and converges again.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { TelemetryRollout } from './api/types.generated.js';
import type {
  BreakGlassActuator,
  ClusterClient,
  ClusterClientFactory,
  GateContext,
  GateEvaluator,
  InventoryRecorder,
  ResolvedTarget,
  StatusWriter,
} from './rollout/interfaces.js';
import { abortReason } from '#core/clock.js';

/** Carries the AbortSignal of the reconcile pass running in the current async context. */
export class PassSignal {
  private readonly storage = new AsyncLocalStorage<AbortSignal>();

  /** Runs `fn` with `signal` as the pass signal of every call it makes, however deeply awaited. */
  run<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    return this.storage.run(signal, fn);
  }

  /** The signal of the pass calling now; undefined outside a pass (tools, tests). */
  current(): AbortSignal | undefined {
    return this.storage.getStore();
  }

  /** Throws the abort reason when the calling pass has been told to stop. */
  throwIfAborted(): void {
    const s = this.current();
    if (s?.aborted) throw abortReason(s);
  }

  /** `signal` and the pass signal combined: either one aborting aborts the result. */
  with(signal?: AbortSignal): AbortSignal | undefined {
    const pass = this.current();
    if (pass === undefined) return signal;
    return signal === undefined ? pass : AbortSignal.any([signal, pass]);
  }

  /**
   * Runs one collaborator call under the combined signal. Throws the abort reason instead of its
   * result or error when the pass was aborted before or during the call (see the file comment).
   */
  async guard<T>(call: (signal: AbortSignal | undefined) => Promise<T>, signal?: AbortSignal): Promise<T> {
    this.throwIfAborted();
    let result: T;
    try {
      result = await call(this.with(signal));
    } catch (err) {
      this.throwIfAborted();
      throw err;
    }
    this.throwIfAborted();
    return result;
  }
}

/** A {@link ClusterClient} whose every request carries the pass signal. */
class InterruptibleClusterClient implements ClusterClient {
  readonly name: string;
  private readonly inner: ClusterClient;
  private readonly pass: PassSignal;
  constructor(inner: ClusterClient, pass: PassSignal) {
    this.name = inner.name;
    this.inner = inner;
    this.pass = pass;
  }
  probe(signal?: AbortSignal): ReturnType<ClusterClient['probe']> {
    return this.pass.guard((s) => this.inner.probe(s), signal);
  }
  listNodes(signal?: AbortSignal): ReturnType<ClusterClient['listNodes']> {
    return this.pass.guard((s) => this.inner.listNodes(s), signal);
  }
  setNodeRevision(node: string, revision: string | null, signal?: AbortSignal): Promise<void> {
    return this.pass.guard((s) => this.inner.setNodeRevision(node, revision, s), signal);
  }
  apply(obj: Parameters<ClusterClient['apply']>[0], signal?: AbortSignal): Promise<void> {
    return this.pass.guard((s) => this.inner.apply(obj, s), signal);
  }
  delete(ref: Parameters<ClusterClient['delete']>[0], signal?: AbortSignal): Promise<void> {
    return this.pass.guard((s) => this.inner.delete(ref, s), signal);
  }
  listCollectorDaemonSets(namespace: string, rollout: string, signal?: AbortSignal): ReturnType<ClusterClient['listCollectorDaemonSets']> {
    return this.pass.guard((s) => this.inner.listCollectorDaemonSets(namespace, rollout, s), signal);
  }
  listCollectorPods(namespace: string, signal?: AbortSignal): ReturnType<ClusterClient['listCollectorPods']> {
    return this.pass.guard((s) => this.inner.listCollectorPods(namespace, s), signal);
  }
  getRaw(path: string, signal?: AbortSignal): Promise<string> {
    return this.pass.guard((s) => this.inner.getRaw(path, s), signal);
  }
}

/** The factory's clients, wrapped so their requests carry the pass signal (one wrapper per client). */
export function interruptibleClusters(inner: ClusterClientFactory, pass: PassSignal): ClusterClientFactory {
  // The factory caches clients per Secret; keeping one wrapper per client keeps that identity.
  const wrapped = new WeakMap<ClusterClient, ClusterClient>();
  return {
    resolveTargets: (rollout: TelemetryRollout) => pass.guard(() => inner.resolveTargets(rollout)),
    client: async (rollout: TelemetryRollout, target: ResolvedTarget) => {
      const client = await pass.guard(() => inner.client(rollout, target));
      let w = wrapped.get(client);
      if (w === undefined) {
        w = new InterruptibleClusterClient(client, pass);
        wrapped.set(client, w);
      }
      return w;
    },
  };
}

/** The gate evaluator, measuring under the pass signal (a scrape in flight is cancelled). */
export function interruptibleGates(inner: GateEvaluator, pass: PassSignal): GateEvaluator {
  const under = (ctx: GateContext, s: AbortSignal | undefined): GateContext => ({ ...ctx, ...(s ? { signal: s } : {}) });
  return {
    measures: inner.measures,
    captureBaseline: (ctx) => pass.guard((s) => inner.captureBaseline(under(ctx, s)), ctx.signal),
    evaluate: (ctx) => pass.guard((s) => inner.evaluate(under(ctx, s)), ctx.signal),
    // Optional in the interface: offered only when the evaluator has it (the reconciler checks).
    ...(inner.project ? { project: (ctx: GateContext) => pass.guard(async (s) => inner.project?.(under(ctx, s)), ctx.signal) } : {}),
  };
}

/** The status writer with the pass's commit point: refused after the abort, never cancelled once begun. */
export function interruptibleStatus(inner: StatusWriter, pass: PassSignal): StatusWriter {
  return {
    writeStatus: async (rollout, status) => {
      pass.throwIfAborted();
      await inner.writeStatus(rollout, status);
    },
  };
}

/**
 * Break-glass, not started after the abort: `issue`/`clear` then throw the abort reason (the one
 * exception to their never-throw contract; the pass ends there without a status write). The fan-out
 * itself runs outside the pass (an attempt is not cancelled with the pass; the actuator's `close`
 * cancels it at shutdown), and issuing or clearing stop files again is idempotent.
 */
export function interruptibleBreakGlass(inner: BreakGlassActuator, pass: PassSignal): BreakGlassActuator {
  return {
    available: (rollout) => inner.available(rollout),
    issue: async (rollout, cluster, revision, reason, options) => {
      pass.throwIfAborted();
      return inner.issue(rollout, cluster, revision, reason, options);
    },
    clear: async (rollout, cluster, revision, options) => {
      pass.throwIfAborted();
      return inner.clear(rollout, cluster, revision, options);
    },
  };
}

/** The node inventory recorder, not started after the abort (then it throws the abort reason, like break-glass). */
export function interruptibleInventory(inner: InventoryRecorder, pass: PassSignal): InventoryRecorder {
  return {
    record: async (rollout, cluster, nodes) => {
      pass.throwIfAborted();
      return inner.record(rollout, cluster, nodes);
    },
  };
}
