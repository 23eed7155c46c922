/**
 * A scripted break-glass transport for unit tests: in memory, with the unkind parts a real one has
 * (nodes that fail, nodes that hang until released), and a record of every file written.
 */
import type { BreakGlassTransport, ClearOptions, NodeOutcome, NodeTarget, TransportKind } from '../../../operator/src/breakglass/transport.js';

/** A {@link BreakGlassTransport} over an in-memory map of node → stop-file content. */
export class ScriptedTransport implements BreakGlassTransport {
  readonly kind: TransportKind = 'exec';
  readonly stopFilePath = '/var/run/telemetry-rollout/stop';
  readonly concurrency = 50;
  /** What each node holds now. */
  readonly files = new Map<string, string>();
  /** Every write, in order: [node, content]. */
  readonly writes: Array<[string, string]> = [];
  /** Nodes whose writes fail (permission denied, host unreachable). */
  readonly failing = new Set<string>();
  /** Nodes whose writes hang until {@link release} (a slow ssh handshake, a stuck cloud API). */
  readonly hanging = new Set<string>();
  private releases: Array<() => void> = [];

  async write(nodes: readonly NodeTarget[], content: string, signal?: AbortSignal): Promise<NodeOutcome[]> {
    return Promise.all(
      nodes.map(async (n): Promise<NodeOutcome> => {
        if (signal?.aborted) return { node: n.name, result: 'failed', message: 'aborted', durationMs: 0 };
        if (this.hanging.has(n.name) && !signal?.aborted) {
          await new Promise<void>((resolve) => {
            this.releases.push(resolve);
            signal?.addEventListener('abort', () => resolve(), { once: true });
          });
          if (signal?.aborted) return { node: n.name, result: 'failed', message: 'aborted', durationMs: 0 };
        }
        if (this.failing.has(n.name))
          return { node: n.name, result: 'failed', message: `ssh: connect to host ${n.name} port 22: Permission denied`, durationMs: 1 };
        this.files.set(n.name, content);
        this.writes.push([n.name, content]);
        return { node: n.name, result: 'ok', durationMs: 1 };
      }),
    );
  }

  async clear(nodes: readonly NodeTarget[], _options?: ClearOptions): Promise<NodeOutcome[]> {
    return nodes.map((n) => {
      if (this.failing.has(n.name)) return { node: n.name, result: 'failed', message: 'unreachable', durationMs: 1 };
      this.files.delete(n.name);
      return { node: n.name, result: 'ok', durationMs: 1 };
    });
  }

  /** Lets every hanging write go on. */
  release(): void {
    this.hanging.clear();
    for (const r of this.releases.splice(0)) r();
  }

  async close(): Promise<void> {}
}
