/**
 * The operator process's main loop around a {@link Manager}: signals in, exit code out.
 */
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/logging.js';
import type { Manager, ManagerExit } from './manager.js';

/** The process bits {@link runUntilStopped} uses (injectable for tests). */
export interface ProcessLike {
  on(signal: 'SIGTERM' | 'SIGINT', handler: () => void): unknown;
  off(signal: 'SIGTERM' | 'SIGINT', handler: () => void): unknown;
}

/**
 * Runs a manager as the process's main loop: starts it, stops it gracefully on the first SIGTERM or
 * SIGINT, exits at once (code 1) on a second one, and calls `exit` with the manager's exit code when
 * it has stopped for any reason (including lost leadership). A failing start stops what was started
 * and exits 1.
 */
export async function runUntilStopped(
  manager: Manager,
  logger: Logger,
  proc: ProcessLike = process,
  exit: (code: number) => void = (code) => process.exit(code),
): Promise<ManagerExit> {
  let signals = 0;
  const onSignal = (name: 'SIGTERM' | 'SIGINT') => (): void => {
    signals++;
    if (signals === 1) {
      logger.info('signal received; shutting down gracefully', { signal: name });
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
  proc.off('SIGTERM', onTerm);
  proc.off('SIGINT', onInt);
  exit(result.code);
  return result;
}
