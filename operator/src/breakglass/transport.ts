/**
 * The break-glass transport contract: how a stop file reaches (and leaves) the stop directory of the
 * nodes of a cluster whose API server cannot be used, and how the stop files present are listed. Implementations: {@link LocalTransport} (local.ts),
 * {@link SshTransport} (ssh.ts), {@link ExecTransport} (exec.ts).
 *
 * Contract shared by all of them: every node gets an outcome, in input order (ok, failed or timed out,
 * with a message and the time it took); a partial failure is data, never an exception for the whole
 * call; at most `concurrency` nodes are in flight; a node that exceeds its time budget is recorded as
 * timed out and its process is killed. Messages never carry key material (they are redacted as well).
 */
import { abortReason, type Clock } from '#core/clock.js';
import { errorMessage } from '../util/errors.js';
import { redactString } from '../util/logging.js';
import type { NodeInfo } from '../rollout/interfaces.js';
import { mapLimit } from './maplimit.js';

/** A node to reach: its name and addresses (a {@link NodeInfo} fits). */
export type NodeTarget = Pick<NodeInfo, 'name' | 'addresses'>;

/** How one node's write or clear ended. */
export type NodeResult = 'ok' | 'failed' | 'timedOut';

/** One node's outcome. */
export interface NodeOutcome {
  /** The node's name. */
  node: string;
  result: NodeResult;
  /** What happened, for status and logs (never credentials; at most a few hundred characters). */
  message?: string;
  /** Time spent on this node, from start to outcome. */
  durationMs: number;
}

/** Options of {@link BreakGlassTransport.clear}. */
export interface ClearOptions {
  /**
   * The name of the file to remove in the stop directory (see `stopFileName`: `auto-<rev>`,
   * `manual-all`...). Only that file is touched: another issuer's stop stays in place.
   */
  file: string;
  /** Cancels the remaining work; nodes not done are recorded as failed ("aborted"). */
  signal?: AbortSignal;
  /**
   * Only remove the file when it names this revision; one naming another revision (not written by
   * this issuer for this revision: a hand-made file under our name) is left in place and the outcome is
   * `ok` with a message saying so. Without it, the file is removed whatever it says. With it, the
   * legacy single stop file (previous layout) is removed too when it names this revision, so a stop
   * issued before an upgrade is not stranded; without it the legacy file is never touched.
   */
  ifRevision?: string;
}

/** One file found in a node's stop directory (or the legacy stop file) by {@link BreakGlassTransport.list}. */
export interface ListedStopFile {
  /** Its name in the stop directory; for the legacy file, its base name. */
  name: string;
  /** The single stop file of the previous layout (still obeyed by agents for one release). */
  legacy?: boolean;
  /** Its size in bytes, when it could be read. */
  size?: number;
  /** Its text, when it was readable and at most {@link MAX_LISTED_FILE_BYTES}. */
  text?: string;
  /** Why there is no text: too large to show, unreadable. */
  error?: string;
}

/** One node's listing: the outcome, and on success the stop files present (sorted by name, legacy last). */
export interface NodeListing extends NodeOutcome {
  files?: ListedStopFile[];
  /** More than {@link MAX_LISTED_FILES} files: the rest were not listed. */
  truncated?: boolean;
}

/** Files listed per node at most (a stop directory holds a handful; a flood is reported, not read). */
export const MAX_LISTED_FILES = 100;

/** Content shown per listed file at most (a stop file is a few hundred bytes; larger ones are shown by size). */
export const MAX_LISTED_FILE_BYTES = 16 * 1024;

/** The kinds of transport, as in `spec.breakGlass.transport.type`. */
export type TransportKind = 'local' | 'ssh' | 'exec';

/**
 * Puts named stop files into (and removes them from) the stop directory of a set of nodes without the
 * Kubernetes API, and lists what is there. `write`, `clear` and `list` never reject for a node's
 * failure: they resolve with one outcome per input node, in input order. They reject only on a
 * programming error (invalid arguments, such as a file name outside the fixed alphabet).
 */
export interface BreakGlassTransport {
  /** Which transport this is. */
  readonly kind: TransportKind;
  /** The stop directory's path on each node's host filesystem. */
  readonly stopDirectory: string;
  /** The legacy single stop file's path (deprecated: listed, and removed by a filtered clear; never written). */
  readonly stopFilePath: string;
  /** Nodes handled at once. */
  readonly concurrency: number;
  /** Writes `content` atomically as `<stopDirectory>/<file>` on every node (`file`: see `stopFileName`). */
  write(nodes: readonly NodeTarget[], file: string, content: string, signal?: AbortSignal): Promise<NodeOutcome[]>;
  /** Removes `<stopDirectory>/<options.file>` from every node; an absent file is `ok`. */
  clear(nodes: readonly NodeTarget[], options: ClearOptions): Promise<NodeOutcome[]>;
  /** Lists the stop files present on every node (read-only): the directory's files and the legacy file. */
  list(nodes: readonly NodeTarget[], signal?: AbortSignal): Promise<NodeListing[]>;
  /** Releases what the transport holds (temporary credential files); idempotent. */
  close(): Promise<void>;
}

/** Node address types, in the order used when the preferred one is missing (exec transport). */
export const ADDRESS_TYPES = ['InternalIP', 'ExternalIP', 'Hostname'] as const;

/** One of {@link ADDRESS_TYPES}. */
export type AddressType = (typeof ADDRESS_TYPES)[number];

/** The node's first address of `type`, or undefined. */
export function addressOf(node: NodeTarget, type: string): string | undefined {
  return node.addresses.find((a) => a.type === type && a.address !== '')?.address;
}

/** Longest message kept in an outcome: status holds counts, logs hold messages, neither needs a novel. */
const MAX_MESSAGE = 500;

/** Redacts and shortens a message for an outcome (child output could echo anything). */
export function outcomeMessage(text: string): string {
  const oneLine = redactString(text).replace(/\s+/g, ' ').trim();
  return oneLine.length > MAX_MESSAGE ? `${oneLine.slice(0, MAX_MESSAGE - 1)}…` : oneLine;
}

/** What a per-node operation reports. */
export interface NodeOpResult {
  ok: boolean;
  message?: string;
}

/** Options of {@link runPerNode}. */
export interface RunPerNodeOptions {
  concurrency: number;
  /** Per-node time budget in milliseconds. */
  timeoutMs: number;
  clock: Clock;
  signal?: AbortSignal;
}

/** Raised into a node's signal when its time budget is spent. */
export class NodeTimeoutError extends Error {
  constructor(ms: number) {
    super(`no result within ${ms / 1000}s`);
    this.name = 'NodeTimeoutError';
  }
}

/**
 * The engine under every transport: runs `op` for each node with bounded concurrency and a per-node
 * timeout, and turns everything into {@link NodeOutcome}s. `op` receives a signal that aborts on the
 * node's timeout or the caller's cancellation; it must then end promptly (kill its process), which is
 * what keeps the number of live processes within `concurrency`. A thrown `op` is a failed node.
 */
export async function runPerNode(
  nodes: readonly NodeTarget[],
  opts: RunPerNodeOptions,
  op: (node: NodeTarget, signal: AbortSignal) => Promise<NodeOpResult>,
): Promise<NodeOutcome[]> {
  const { clock, signal, timeoutMs } = opts;
  return mapLimit(nodes, opts.concurrency, async (node): Promise<NodeOutcome> => {
    const start = clock.now().getTime();
    const outcome = (result: NodeResult, message?: string): NodeOutcome => {
      const o: NodeOutcome = { node: node.name, result, durationMs: Math.max(0, clock.now().getTime() - start) };
      if (message !== undefined && message !== '') o.message = outcomeMessage(message);
      return o;
    };
    if (signal?.aborted) return outcome('failed', `not attempted: ${abortReason(signal).message}`);

    const ac = new AbortController();
    let timedOut = false;
    const cancelTimer = clock.setTimer(timeoutMs, () => {
      timedOut = true;
      ac.abort(new NodeTimeoutError(timeoutMs));
    });
    const onAbort = (): void => ac.abort(abortReason(signal));
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const r = await op(node, ac.signal);
      // A success that raced the timer still happened: the file is there.
      if (r.ok) return outcome('ok', r.message);
      if (timedOut) return outcome('timedOut', `no result within ${timeoutMs / 1000}s; killed${r.message ? ` (${r.message})` : ''}`);
      if (ac.signal.aborted) return outcome('failed', `aborted: ${abortReason(ac.signal).message}`);
      return outcome('failed', r.message ?? 'failed');
    } catch (err) {
      if (timedOut) return outcome('timedOut', `no result within ${timeoutMs / 1000}s`);
      return outcome('failed', errorMessage(err));
    } finally {
      cancelTimer();
      signal?.removeEventListener('abort', onAbort);
    }
  });
}

/**
 * Resolves with `work`, or rejects with the signal's reason as soon as it aborts, for operations that
 * cannot be cancelled themselves (filesystem calls): the caller gets its answer on time, the operation
 * finishes in the background.
 */
export function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortReason(signal));
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = (): void => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([work, aborted]).finally(() => signal.removeEventListener('abort', onAbort!));
}

/** A transport's settings are wrong (thrown by constructors; a configuration error, not worth retrying). */
export class TransportConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TransportConfigError';
  }
}

/** Checks a transport's numeric settings; throws {@link TransportConfigError}. */
export function checkLimits(concurrency: number, timeoutSeconds: number): void {
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new TransportConfigError(`concurrency must be a positive integer, got ${concurrency}`);
  if (!(timeoutSeconds > 0) || !Number.isFinite(timeoutSeconds)) throw new TransportConfigError(`timeoutSeconds must be positive, got ${timeoutSeconds}`);
}

/** Summary counts of a set of outcomes. */
export interface OutcomeCounts {
  ok: number;
  failed: number;
  timedOut: number;
}

/** Counts outcomes by result. */
export function countOutcomes(outcomes: readonly NodeOutcome[]): OutcomeCounts {
  const c: OutcomeCounts = { ok: 0, failed: 0, timedOut: 0 };
  for (const o of outcomes) c[o.result]++;
  return c;
}
