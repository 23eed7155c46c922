/**
 * The `local` transport: each node is a directory standing for its root filesystem
 * (`<rootDir>/<node>/`), and stop files are written in `<rootDir>/<node>/<stopDirectory>/`. The e2e node
 * runtime mounts that directory into the node's collector agent, so the operator (or the CLI) stops
 * real agents through real files, exactly as ssh would on a real node, minus the network.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { perNodeOptions, transportCommon, type TransportCommon, type TransportCommonOptions } from './common.js';
import { listLocalStopFiles, runPerNodeListing } from './listing.js';
import { checkStopFileName, parseStopFile, removeFile, writeFileAtomic } from './stopfile.js';
import {
  raceAbort,
  runPerNode,
  type BreakGlassTransport,
  type ClearOptions,
  type NodeListing,
  type NodeOpResult,
  type NodeOutcome,
  type NodeTarget,
  TransportConfigError,
} from './transport.js';

/** Options of {@link LocalTransport}; `stopDirectory` and `stopFilePath` are inside each node root. */
export interface LocalTransportOptions extends TransportCommonOptions {
  /** The directory holding one root directory per node, named after the node. */
  rootDir: string;
}

// Kubernetes node names are DNS subdomains; checking that keeps `<rootDir>/<node>` inside rootDir.
const NODE_NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Writes stop files into per-node directories (see the module comment). */
export class LocalTransport implements BreakGlassTransport {
  readonly kind = 'local' as const;
  readonly stopDirectory: string;
  readonly stopFilePath: string;
  readonly concurrency: number;
  private readonly rootDir: string;
  private readonly common: TransportCommon;

  constructor(opts: LocalTransportOptions) {
    if (!opts.rootDir) throw new TransportConfigError('local transport: rootDir is required');
    this.rootDir = opts.rootDir;
    this.common = transportCommon(opts);
    this.stopDirectory = this.common.stopDirectory;
    this.stopFilePath = this.common.stopFilePath;
    this.concurrency = this.common.concurrency;
  }

  /** `node`'s root on this machine; throws for a name that is not a node name. */
  private nodeRoot(node: string): string {
    if (node.length > 253 || !NODE_NAME_RE.test(node)) throw new Error(`invalid node name ${JSON.stringify(node)}`);
    return join(this.rootDir, node);
  }

  /** The stop directory of `node` on this machine; throws for a name that is not a node name. */
  directoryFor(node: string): string {
    return join(this.nodeRoot(node), this.stopDirectory);
  }

  /** The path of stop file `file` of `node` on this machine. */
  pathFor(node: string, file: string): string {
    return join(this.directoryFor(node), checkStopFileName(file));
  }

  /** The legacy single stop file of `node` on this machine. */
  legacyPathFor(node: string): string {
    return join(this.nodeRoot(node), this.stopFilePath);
  }

  write(nodes: readonly NodeTarget[], file: string, content: string, signal?: AbortSignal): Promise<NodeOutcome[]> {
    checkStopFileName(file);
    return this.run(nodes, signal, async (node) => {
      await writeFileAtomic(this.pathFor(node, file), content);
      return { ok: true };
    });
  }

  clear(nodes: readonly NodeTarget[], options: ClearOptions): Promise<NodeOutcome[]> {
    checkStopFileName(options.file);
    return this.run(nodes, options.signal, async (node): Promise<NodeOpResult> => {
      const path = this.pathFor(node, options.file);
      const notes: string[] = [];
      let existed = false;
      const kept = options.ifRevision === undefined ? undefined : await namesAnotherRevision(path, options.ifRevision);
      if (kept !== undefined) notes.push(kept);
      else existed = await removeFile(path);
      if (options.ifRevision !== undefined) {
        // The previous layout's single file, removed only when it names the revision being cleared.
        const legacy = this.legacyPathFor(node);
        if ((await namesAnotherRevision(legacy, options.ifRevision)) === undefined && (await removeFile(legacy)))
          notes.push('removed the legacy stop file too');
      }
      if (!existed && kept === undefined) notes.unshift('no stop file');
      return notes.length === 0 ? { ok: true } : { ok: true, message: notes.join('; ') };
    });
  }

  list(nodes: readonly NodeTarget[], signal?: AbortSignal): Promise<NodeListing[]> {
    return runPerNodeListing(nodes, perNodeOptions(this.common, signal), (node, nodeSignal) =>
      raceAbort(
        (async () => ({ ok: true as const, listing: await listLocalStopFiles(this.directoryFor(node.name), this.legacyPathFor(node.name)) }))(),
        nodeSignal,
      ),
    );
  }

  async close(): Promise<void> {}

  private run(nodes: readonly NodeTarget[], signal: AbortSignal | undefined, op: (node: string) => Promise<NodeOpResult>): Promise<NodeOutcome[]> {
    return runPerNode(nodes, perNodeOptions(this.common, signal), (node, nodeSignal) =>
      // Filesystem calls cannot be cancelled; on timeout the node is reported at once and the call ends
      // in the background.
      raceAbort((async () => op(node.name))(), nodeSignal),
    );
  }
}

/**
 * A message when the file at `path` exists and does not name `revision` (so it must stay), else
 * undefined (absent, or naming `revision`).
 */
async function namesAnotherRevision(path: string, revision: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
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
