/**
 * The settings every break-glass transport takes (the `concurrency`, `timeoutSeconds` and `stopFilePath`
 * of `spec.breakGlass.transport`, plus a clock), defaulted and checked in one place so the local, ssh
 * and exec transports cannot drift apart in what they accept.
 */
import { SystemClock, type Clock } from '#core/clock.js';
import { DEFAULT_STOP_FILE_PATH, validateStopFilePath } from './stopfile.js';
import { checkLimits, type RunPerNodeOptions } from './transport.js';

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
   * The stop file's path on the nodes; for the local transport, inside each node's root directory
   * (default {@link DEFAULT_STOP_FILE_PATH}).
   */
  stopFilePath?: string;
  /** Time source of the per-node timeouts and durations (default the system clock). */
  clock?: Clock;
}

/** {@link TransportCommonOptions} with the defaults applied, as {@link transportCommon} returns them. */
export interface TransportCommon {
  readonly stopFilePath: string;
  readonly concurrency: number;
  readonly timeoutSeconds: number;
  readonly clock: Clock;
}

/**
 * Applies the defaults to `opts` and checks them: the stop-file path with `validateStopFilePath`, then
 * the limits with {@link checkLimits}, both throwing `TransportConfigError` (a transport's constructor
 * calls this after its own checks, so a wrong setting fails before anything is run).
 */
export function transportCommon(opts: TransportCommonOptions): TransportCommon {
  const stopFilePath = validateStopFilePath(opts.stopFilePath ?? DEFAULT_STOP_FILE_PATH);
  const concurrency = opts.concurrency ?? 20;
  const timeoutSeconds = opts.timeoutSeconds ?? 10;
  checkLimits(concurrency, timeoutSeconds);
  return { stopFilePath, concurrency, timeoutSeconds, clock: opts.clock ?? new SystemClock() };
}

/** The `runPerNode` options of one write, clear or check with these settings, cancelled by `signal`. */
export function perNodeOptions(common: TransportCommon, signal: AbortSignal | undefined): RunPerNodeOptions {
  return { concurrency: common.concurrency, timeoutMs: common.timeoutSeconds * 1000, clock: common.clock, signal };
}
