/**
 * Runs one child process (ssh, or an exec transport's command) with its input on stdin, no shell, and
 * a hard stop: when the signal aborts (per-node timeout or the caller's cancellation) the child's whole
 * process group is killed with SIGKILL, so a stuck ssh or a command that spawned helpers cannot outlive
 * its node's time budget or hold a concurrency slot.
 */
import { spawn } from 'node:child_process';

/** Output kept per stream: enough for an error message, bounded so a chatty command cannot eat memory. */
const MAX_OUTPUT_BYTES = 16 * 1024;
/** How long pipes may stay open after the child exited (a real-time hygiene bound, not a timeout). */
const PIPE_GRACE_MS = 2000;

/** Options of {@link runChild}. */
export interface RunChildOptions {
  /** Written to stdin, which is then closed (empty: stdin is closed at once). */
  input?: string;
  /** Aborting kills the process group and makes the result `killed: true`. */
  signal?: AbortSignal;
  /** The child's environment (default: the parent's). */
  env?: NodeJS.ProcessEnv;
  /** Output kept per stream (default 16 KiB): a listing needs more than an error message. */
  maxOutputBytes?: number;
}

/** How a child ended. */
export interface ChildResult {
  /** Exit code, or null when it died of a signal or never started. */
  exitCode: number | null;
  /** The signal that ended it, if any. */
  exitSignal: NodeJS.Signals | null;
  /** The tail of stdout (at most 16 KiB, or `maxOutputBytes`). */
  stdout: string;
  /** The tail of stderr (at most 16 KiB). */
  stderr: string;
  /** Whether it was killed because the signal aborted. */
  killed: boolean;
  /** Why it could not be started (e.g. ENOENT for a missing binary). */
  spawnError?: Error;
  /** Why its stdin could not be written (e.g. EPIPE: it exited without reading). */
  stdinError?: Error;
}

/** Appends to a bounded buffer that keeps the tail. */
class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.max && this.chunks.length > 1) this.size -= this.chunks.shift()!.length;
  }
  toString(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.max)).toString('utf8');
  }
}

/**
 * Starts `file` with `args` (no shell: every argument reaches the program verbatim), feeds `input`
 * and resolves when the child has exited and its output is drained. Never rejects: spawn failures come
 * back as `spawnError`. The child runs in its own process group (detached) so that a kill reaches its
 * descendants too; it is not unref'd, so the caller always learns how it ended.
 */
export function runChild(file: string, args: readonly string[], opts: RunChildOptions = {}): Promise<ChildResult> {
  return new Promise<ChildResult>((resolve) => {
    const stdout = new Tail(opts.maxOutputBytes ?? MAX_OUTPUT_BYTES);
    const stderr = new Tail(MAX_OUTPUT_BYTES);
    let killed = false;
    let stdinError: Error | undefined;
    let spawnError: Error | undefined;
    let settled = false;

    if (opts.signal?.aborted) {
      resolve({ exitCode: null, exitSignal: null, stdout: '', stderr: '', killed: true });
      return;
    }
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true, env: opts.env ?? process.env, shell: false });

    const kill = (): void => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      killed = true;
      try {
        // Negative pid: the whole process group the detached child leads.
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // ESRCH: the group is already gone; fall back to the child itself in case it never made a group.
        child.kill('SIGKILL');
      }
    };
    const onAbort = (): void => kill();
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const finish = (exitCode: number | null, exitSignal: NodeJS.Signals | null): void => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      const result: ChildResult = { exitCode, exitSignal, stdout: stdout.toString(), stderr: stderr.toString(), killed };
      if (spawnError) result.spawnError = spawnError;
      if (stdinError) result.stdinError = stdinError;
      resolve(result);
    };

    child.stdout.on('data', (c: Buffer) => stdout.push(c));
    child.stderr.on('data', (c: Buffer) => stderr.push(c));
    child.on('error', (err) => {
      // 'error' without a pid: the binary could not be started; 'close' may never follow.
      spawnError = err;
      if (child.pid === undefined) finish(null, null);
    });
    child.on('exit', () => {
      // A descendant (one that escaped the group kill, or a daemon a command left behind) could hold
      // stdout open forever; once the child itself has exited, stop waiting for its pipes: at once after
      // a kill, after a short grace otherwise so normal trailing output is still read.
      const drop = (): void => {
        child.stdout.destroy();
        child.stderr.destroy();
      };
      if (killed) drop();
      else setTimeout(drop, PIPE_GRACE_MS).unref();
    });
    child.on('close', (code, sig) => finish(code, sig));

    child.stdin.on('error', (err) => {
      // EPIPE when the child exits without reading its input; reported in the result, not thrown, because
      // the exit code decides success and the caller words the message.
      stdinError = err;
    });
    child.stdin.end(opts.input ?? '');
  });
}
