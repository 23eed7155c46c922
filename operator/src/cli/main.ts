/**
 * `kubectl-tro` with the real world plugged in: process streams, the system clock, Ctrl-C, and the
 * client-node connection, which is imported only when a command needs the cluster (loading it takes
 * most of a second; `validate` and `--help` stay instant).
 */
import { readFileSync } from 'node:fs';
import { SystemClock, systemClock } from '#core/clock.js';
import { run, type CliDeps } from './program.js';

/** Sleeps `ms`, resolving early when `signal` aborts (a watch then ends cleanly). */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  // The clock's sleep rejects only on abort, which here just ends the wait.
  return systemClock.sleep(ms, signal).catch(() => undefined);
}

/**
 * Runs the plugin on `argv` (the arguments after the program name) and returns the exit code. The first
 * Ctrl-C ends a watch cleanly; a second one exits at once with 130.
 */
export async function main(argv: string[]): Promise<number> {
  const interrupt = new AbortController();
  const onSigint = () => {
    if (interrupt.signal.aborted) process.exit(130);
    interrupt.abort();
  };
  process.on('SIGINT', onSigint);
  // `kubectl tro list | head -1` closes our stdout early: that ends the command, it is not a crash.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  const deps: CliDeps = {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    now: () => new Date(),
    random: Math.random,
    sleep: abortableSleep,
    signal: interrupt.signal,
    connect: async (o) => (await import('./client.js')).connect(o),
    readStdin: () => readFileSync(0, 'utf8'),
    clock: new SystemClock(),
    inventories: async (o, namespace) => {
      const [{ loadKubeConfig }, { ConfigMapInventoryStore }, { safeServerUrl }] = await Promise.all([
        import('./client.js'),
        import('../breakglass/configmapstore.js'),
        import('./errors.js'),
      ]);
      const kc = loadKubeConfig(o);
      return { store: new ConfigMapInventoryStore({ api: kc, namespace }), server: safeServerUrl(kc.getCurrentCluster()?.server ?? '') };
    },
  };
  try {
    return await run(argv, deps);
  } finally {
    process.off('SIGINT', onSigint);
  }
}
