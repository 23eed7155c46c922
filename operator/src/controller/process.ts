/**
 * The operator process's main loop around a {@link Manager}: signals in, exit code out.
 */
import { SystemClock, type Clock } from '#core/clock.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/logging.js';
import type { Manager, ManagerExit } from './manager.js';

/** The process bits {@link runUntilStopped} uses (injectable for tests). */
export interface ProcessLike {
  on(signal: 'SIGTERM' | 'SIGINT', handler: () => void): unknown;
  off(signal: 'SIGTERM' | 'SIGINT', handler: () => void): unknown;
}

/** Options of {@link runUntilStopped}. */
export interface RunOptions {
  /**
   * The whole graceful shutdown after a signal may take this long; then the process exits 1 anyway,
   * logged (default 25 s: the manager's 20 s drain deadline plus the Lease release, inside the
   * Deployment's 30 s termination grace period, so the kubelet's SIGKILL never has to come).
   */
  graceMs?: number;
  /** Times the grace period (default the system clock). */
  clock?: Clock;
}

/** Default of {@link RunOptions.graceMs}. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 25_000;

/**
 * Runs a manager as the process's main loop: starts it, stops it gracefully on the first SIGTERM or
 * SIGINT, exits at once (code 1) on a second one or when the graceful stop overruns the grace period,
 * and calls `exit` with the manager's exit code when it has stopped for any reason (including lost
 * leadership). A failing start stops what was started and exits 1.
 */
export async function runUntilStopped(
  manager: Manager,
  logger: Logger,
  proc: ProcessLike = process,
  exit: (code: number) => void = (code) => process.exit(code),
  opts: RunOptions = {},
): Promise<ManagerExit> {
  const clock = opts.clock ?? new SystemClock();
  const graceMs = opts.graceMs ?? DEFAULT_SHUTDOWN_GRACE_MS;
  let signals = 0;
  let cancelGrace = (): void => undefined;
  const onSignal = (name: 'SIGTERM' | 'SIGINT') => (): void => {
    signals++;
    if (signals === 1) {
      logger.info('signal received; shutting down gracefully', { signal: name, graceMs });
      cancelGrace = clock.setTimer(graceMs, () => {
        // Something in the shutdown hangs (a request ignoring its signal, a stuck close): the
        // process must still go, and the Lease then expires by itself.
        logger.error('graceful shutdown did not finish within the grace period; exiting now', { graceMs });
        exit(1);
      });
      void manager.stop(`received ${name}`, 0);
    } else {
      logger.warn('second signal received; exiting now', { signal: name });
      exit(1);
    }
  };
  const onTerm = onSignal('SIGTERM');
  const onInt = onSignal('SIGINT');
  proc.on('SIGTERM', onTerm);
  proc.on('SIGINT', onInt);
  try {
    await manager.start();
  } catch (err) {
    logger.error('manager failed to start', { error: err });
    void manager.stop(`start failed: ${errorMessage(err)}`, 1);
  }
  const result = await manager.done();
  cancelGrace();
  proc.off('SIGTERM', onTerm);
  proc.off('SIGINT', onInt);
  exit(result.code);
  return result;
}
