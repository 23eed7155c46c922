/**
 * The `local` transport: each node is a directory standing for its root filesystem
 * (`<rootDir>/<node>/`), and the stop file is written at `<rootDir>/<node>/<stopFilePath>`. The e2e node
 * runtime mounts that path into the node's collector agent, so the operator (or the CLI) stops real
 * agents through real files, exactly as ssh would on a real node, minus the network.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { perNodeOptions, transportCommon, type TransportCommon, type TransportCommonOptions } from './common.js';
import { parseStopFile, removeFile, writeFileAtomic } from './stopfile.js';
import {
  raceAbort,
  runPerNode,
  type BreakGlassTransport,
  type ClearOptions,
  type NodeOpResult,
  type NodeOutcome,
  type NodeTarget,
  TransportConfigError,
} from './transport.js';

/** Options of {@link LocalTransport}; `stopFilePath` is inside each node root. */
export interface LocalTransportOptions extends TransportCommonOptions {
  /** The directory holding one root directory per node, named after the node. */
  rootDir: string;
}

// Kubernetes node names are DNS subdomains; checking that keeps `<rootDir>/<node>` inside rootDir.
const NODE_NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Writes stop files into per-node directories (see the module comment). */
export class LocalTransport implements BreakGlassTransport {
  readonly kind = 'local' as const;
  readonly stopFilePath: string;
  readonly concurrency: number;
  private readonly rootDir: string;
  private readonly common: TransportCommon;

  constructor(opts: LocalTransportOptions) {
    if (!opts.rootDir) throw new TransportConfigError('local transport: rootDir is required');
    this.rootDir = opts.rootDir;
    this.common = transportCommon(opts);
    this.stopFilePath = this.common.stopFilePath;
    this.concurrency = this.common.concurrency;
  }

  /** The stop file's path for `node` on this machine; throws for a name that is not a node name. */
  pathFor(node: string): string {
    if (node.length > 253 || !NODE_NAME_RE.test(node)) throw new Error(`invalid node name ${JSON.stringify(node)}`);
    return join(this.rootDir, node, this.stopFilePath);
  }

  write(nodes: readonly NodeTarget[], content: string, signal?: AbortSignal): Promise<NodeOutcome[]> {
    return this.run(nodes, signal, async (path) => {
      await writeFileAtomic(path, content);
      return { ok: true };
    });
  }

  clear(nodes: readonly NodeTarget[], options: ClearOptions = {}): Promise<NodeOutcome[]> {
    return this.run(nodes, options.signal, async (path): Promise<NodeOpResult> => {
      if (options.ifRevision !== undefined) {
        const kept = await this.namesAnotherRevision(path, options.ifRevision);
        if (kept !== undefined) return { ok: true, message: kept };
      }
      const existed = await removeFile(path);
      return existed ? { ok: true } : { ok: true, message: 'no stop file' };
    });
  }

  async close(): Promise<void> {}

  /** A message when the file exists and does not name `revision` (so it must stay), else undefined. */
  private async namesAnotherRevision(path: string, revision: string): Promise<string | undefined> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new Error(`read ${path}`, { cause: err });
    }
    try {
      const f = parseStopFile(text);
      return f.revision === revision ? undefined : `left in place: the stop file names revision ${f.revision}`;
    } catch {
      // Not a file we wrote (a person's hand-made one, or a corrupt one): not ours to remove.
      return 'left in place: the stop file is not one this revision wrote';
    }
  }

  private run(nodes: readonly NodeTarget[], signal: AbortSignal | undefined, op: (path: string) => Promise<NodeOpResult>): Promise<NodeOutcome[]> {
    return runPerNode(nodes, perNodeOptions(this.common, signal), (node, nodeSignal) =>
      // Filesystem calls cannot be cancelled; on timeout the node is reported at once and the call ends
      // in the background.
      raceAbort((async () => op(this.pathFor(node.name)))(), nodeSignal),
    );
  }
}
