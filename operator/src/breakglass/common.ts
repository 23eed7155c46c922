/**
 * The settings every break-glass transport takes (the `concurrency`, `timeoutSeconds`, `stopDirectory`
 * and legacy `stopFilePath` of `spec.breakGlass.transport`, plus a clock), defaulted and checked in one place so the local, ssh
 * and exec transports cannot drift apart in what they accept.
 */
import { SystemClock, type Clock } from '#core/clock.js';
import { DEFAULT_STOP_DIRECTORY, DEFAULT_STOP_FILE_PATH, validateStopDirectory, validateStopFilePath } from './stopfile.js';
import { checkLimits, TransportConfigError, type RunPerNodeOptions } from './transport.js';

/** The options every transport accepts; each transport's own options extend these. */
export interface TransportCommonOptions {
  /** Nodes handled at once (default 20). */
  concurrency?: number;
  /**
   * Per-node time budget, connecting included (default 10 s). A node past it is recorded as timed out
   * and its process (ssh, the exec command's process group) is killed.
   */
  timeoutSeconds?: number;
  /**
   * The stop directory on the nodes, holding one file per issuer and scope; for the local transport,
   * inside each node's root directory (default {@link DEFAULT_STOP_DIRECTORY}).
   */
  stopDirectory?: string;
  /**
   * Deprecated: the single stop file of the previous layout (default {@link DEFAULT_STOP_FILE_PATH}).
   * Never written; listed, and removed by a filtered clear when it names the revision cleared.
   */
  stopFilePath?: string;
  /** Time source of the per-node timeouts and durations (default the system clock). */
  clock?: Clock;
}

/** {@link TransportCommonOptions} with the defaults applied, as {@link transportCommon} returns them. */
export interface TransportCommon {
  readonly stopDirectory: string;
  readonly stopFilePath: string;
  readonly concurrency: number;
  readonly timeoutSeconds: number;
  readonly clock: Clock;
}

/**
 * Applies the defaults to `opts` and checks them: the paths with `validateStopDirectory` and
 * `validateStopFilePath`, then the limits with {@link checkLimits}, all throwing `TransportConfigError` (a transport's constructor
 * calls this after its own checks, so a wrong setting fails before anything is run).
 */
export function transportCommon(opts: TransportCommonOptions): TransportCommon {
  const stopDirectory = validateStopDirectory(opts.stopDirectory ?? DEFAULT_STOP_DIRECTORY);
  const stopFilePath = validateStopFilePath(opts.stopFilePath ?? DEFAULT_STOP_FILE_PATH);
  if (stopFilePath === stopDirectory) throw new TransportConfigError(`the stop directory and the legacy stop file are the same path ${stopDirectory}`);
  const concurrency = opts.concurrency ?? 20;
  const timeoutSeconds = opts.timeoutSeconds ?? 10;
  checkLimits(concurrency, timeoutSeconds);
  return { stopDirectory, stopFilePath, concurrency, timeoutSeconds, clock: opts.clock ?? new SystemClock() };
}

/** The `runPerNode` options of one write, clear, list or check with these settings, cancelled by `signal`. */
export function perNodeOptions(common: TransportCommon, signal: AbortSignal | undefined): RunPerNodeOptions {
  return { concurrency: common.concurrency, timeoutMs: common.timeoutSeconds * 1000, clock: common.clock, signal };
}
