/**
 * A scripted break-glass transport for unit tests: in memory, with the unkind parts a real one has
 * (nodes that fail, nodes that hang until released), and a record of every file written.
 */
import type { BreakGlassTransport, ClearOptions, NodeListing, NodeOutcome, NodeTarget, TransportKind } from '../../../operator/src/breakglass/transport.js';

/** A {@link BreakGlassTransport} over an in-memory stop directory per node. */
export class ScriptedTransport implements BreakGlassTransport {
  readonly kind: TransportKind = 'exec';
  readonly stopDirectory = '/var/run/telemetry-rollout/stop.d';
  readonly stopFilePath = '/var/run/telemetry-rollout/stop';
  readonly concurrency = 50;
  /** Each node's stop directory: file name → content. */
  readonly dirs = new Map<string, Map<string, string>>();
  /** Every write, in order: [node, file, content]. */
  readonly writes: Array<[string, string, string]> = [];
  /** Nodes whose writes fail (permission denied, host unreachable). */
  readonly failing = new Set<string>();
  /** Nodes whose writes hang until {@link release} (a slow ssh handshake, a stuck cloud API). */
  readonly hanging = new Set<string>();
  private releases: Array<() => void> = [];

  /** The nodes holding at least one stop file. */
  get files(): Map<string, string[]> {
    return new Map([...this.dirs].filter(([, d]) => d.size > 0).map(([n, d]) => [n, [...d.keys()].sort()]));
  }

  async write(nodes: readonly NodeTarget[], file: string, content: string, signal?: AbortSignal): Promise<NodeOutcome[]> {
    return Promise.all(
      nodes.map(async (n): Promise<NodeOutcome> => {
        if (signal?.aborted) return { node: n.name, result: 'failed', message: 'aborted', durationMs: 0 };
        if (this.hanging.has(n.name)) {
          await new Promise<void>((resolve) => {
            this.releases.push(resolve);
            signal?.addEventListener('abort', () => resolve(), { once: true });
          });
          if (signal?.aborted) return { node: n.name, result: 'failed', message: 'aborted', durationMs: 0 };
        }
        if (this.failing.has(n.name))
          return { node: n.name, result: 'failed', message: `ssh: connect to host ${n.name} port 22: Permission denied`, durationMs: 1 };
        let dir = this.dirs.get(n.name);
        if (!dir) this.dirs.set(n.name, (dir = new Map<string, string>()));
        dir.set(file, content);
        this.writes.push([n.name, file, content]);
        return { node: n.name, result: 'ok', durationMs: 1 };
      }),
    );
  }

  async clear(nodes: readonly NodeTarget[], options: ClearOptions): Promise<NodeOutcome[]> {
    return nodes.map((n) => {
      if (this.failing.has(n.name)) return { node: n.name, result: 'failed', message: 'unreachable', durationMs: 1 };
      this.dirs.get(n.name)?.delete(options.file);
      return { node: n.name, result: 'ok', durationMs: 1 };
    });
  }

  async list(nodes: readonly NodeTarget[]): Promise<NodeListing[]> {
    return nodes.map((n) => ({
      node: n.name,
      result: 'ok',
      durationMs: 1,
      files: [...(this.dirs.get(n.name) ?? new Map<string, string>())].map(([name, text]) => ({ name, text, size: text.length })),
    }));
  }

  /** Lets every hanging write go on. */
  release(): void {
    this.hanging.clear();
    for (const r of this.releases.splice(0)) r();
  }

  async close(): Promise<void> {}
}
