/**
 * A break-glass transport over the simulated nodes, behind the product's {@link BreakGlassTransport}
 * contract and on its own per-node engine (runPerNode: bounded concurrency, per-node timeout), so the
 * real TransportBreakGlass drives it as it drives ssh. Each node takes a log-normal time drawn from the
 * calibrated ssh figures; a NotReady node, or an unlucky one, fails.
 */
import { parseStopFile } from '../operator/src/breakglass/stopfile.js';
import {
  runPerNode,
  type BreakGlassTransport,
  type ClearOptions,
  type NodeListing,
  type NodeOutcome,
  type NodeTarget,
} from '../operator/src/breakglass/transport.js';
import type { SimClock, Rng } from './engine.js';
import type { SimCluster } from './cluster.js';
import type { Model } from './model/calibration.js';

/** Finds the simulated cluster and index of a node by name. */
export type NodeLocator = (node: string) => { cluster: SimCluster; index: number } | undefined;

/** The simulated transport (it reports itself as `ssh`: its figures are the ssh benchmark's). */
export class SimTransport implements BreakGlassTransport {
  readonly kind = 'ssh' as const;
  readonly stopDirectory = '/var/run/telemetry-rollout/stop.d';
  readonly stopFilePath = '/var/run/telemetry-rollout/stop';
  readonly concurrency: number;
  private readonly timeoutMs: number;
  private readonly clock: SimClock;
  private readonly rng: Rng;
  private readonly model: Model;
  private readonly locate: NodeLocator;
  private readonly alive: () => boolean;
  /** Node operations attempted (for the report). */
  static operations = 0;

  /**
   * `alive`: whether the operator process that made this transport still runs; a dead one's attempts
   * reach no node (its connections died with it). Default: always.
   */
  constructor(o: { clock: SimClock; rng: Rng; model: Model; locate: NodeLocator; concurrency: number; timeoutSeconds: number; alive?: () => boolean }) {
    this.clock = o.clock;
    this.rng = o.rng;
    this.model = o.model;
    this.locate = o.locate;
    this.alive = o.alive ?? (() => true);
    this.concurrency = o.concurrency;
    this.timeoutMs = o.timeoutSeconds * 1000;
  }

  /** One node's round trip: the sampled time, then its outcome. */
  private async reach(
    node: NodeTarget,
    signal: AbortSignal,
    act: (c: SimCluster, i: number) => string | undefined,
  ): Promise<{ ok: boolean; message?: string }> {
    SimTransport.operations++;
    const b = this.model.breakGlass;
    const sigma = Math.log(b.perNodeP99Seconds / b.perNodeMedianSeconds) / 2.326;
    await this.clock.sleep(this.rng.logNormal(b.perNodeMedianSeconds * 1000, sigma), signal);
    if (!this.alive()) return { ok: false, message: 'ssh: the operator process is gone' };
    const at = this.locate(node.name);
    if (!at) return { ok: false, message: 'ssh: Could not resolve hostname' };
    if (!at.cluster.nodeReady(at.index)) {
      // A NotReady node's sshd does not answer either: the attempt hangs until its budget is spent.
      await this.clock.sleep(this.timeoutMs, signal);
      return { ok: false, message: 'ssh: connect: Connection timed out' };
    }
    if (this.rng.chance(b.failureProbability)) return { ok: false, message: 'ssh: connect: Connection reset by peer' };
    const message = act(at.cluster, at.index);
    return message === undefined ? { ok: true } : { ok: true, message };
  }

  write(nodes: readonly NodeTarget[], file: string, content: string, signal?: AbortSignal): Promise<NodeOutcome[]> {
    const revision = parseStopFile(content).revision;
    return runPerNode(nodes, this.opts(signal), (n, s) =>
      this.reach(n, s, (c, i) => {
        c.writeStop(i, file, revision);
        return undefined;
      }),
    );
  }

  clear(nodes: readonly NodeTarget[], options: ClearOptions): Promise<NodeOutcome[]> {
    return runPerNode(nodes, this.opts(options.signal), (n, s) =>
      this.reach(n, s, (c, i) => {
        const named = c.stopFiles(i).find(([f]) => f === options.file)?.[1];
        if (options.ifRevision !== undefined && named !== undefined && named !== options.ifRevision)
          return `${options.file} names another revision; left in place`;
        c.clearStop(i, options.file);
        return undefined;
      }),
    );
  }

  async list(nodes: readonly NodeTarget[], signal?: AbortSignal): Promise<NodeListing[]> {
    const files = new Map<string, NodeListing['files']>();
    const outcomes = await runPerNode(nodes, this.opts(signal), (n, s) =>
      this.reach(n, s, (c, i) => {
        files.set(
          n.name,
          c.stopFiles(i).map(([name, revision]) => ({ name, text: JSON.stringify({ revision }) })),
        );
        return undefined;
      }),
    );
    return outcomes.map((o) => ({ ...o, ...(o.result === 'ok' ? { files: files.get(o.node) ?? [] } : {}) }));
  }

  async close(): Promise<void> {}

  private opts(signal: AbortSignal | undefined) {
    return { concurrency: this.concurrency, timeoutMs: this.timeoutMs, clock: this.clock, ...(signal ? { signal } : {}) };
  }
}
