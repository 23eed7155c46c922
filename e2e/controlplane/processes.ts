// Process plumbing for the local control plane: spawn a component with its output in a log file, know
// whether a pid still runs, and stop pids for good (SIGCONT, SIGTERM, SIGKILL).
//
// Every component writes to a file descriptor, never to a pipe: a pipe would tie its life to the process
// that spawned it (a jest worker that restarted CoreDNS may exit long before the fleet is torn down) and
// would fill up when nobody reads it.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, openSync, readFileSync, writeSync } from 'node:fs';

/** The kinds of process a fleet runs. */
export type Role = 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'kwok' | 'coredns';

/** How to (re)start one component: everything needed to spawn it again from another process. */
export interface ProcessSpec {
  /** Unique within a fleet: `etcd`, `<cluster>/etcd` or `<cluster>/<role>`. */
  id: string;
  role: Role;
  /** The cluster it serves; absent for the shared etcd. */
  cluster?: string;
  /** Absolute path of the executable (argv[0] is checked against it before a pid is signalled). */
  command: string;
  args: string[];
  /** Absolute path; stdout and stderr are appended to it. */
  logFile: string;
}

/** A spec plus the pid of its current incarnation. */
export interface ProcessRecord extends ProcessSpec {
  pid: number;
}

// Children spawned by this process, so their exit is reaped (no zombies) and reported.
const children = new Map<number, { child: ChildProcess; exit?: string }>();

// util-linux's setpriv sets the parent-death signal and then execs the component (same pid, same
// argv[0]): when the process that spawned it dies, even by SIGKILL, or when exit hooks cannot run (jest
// gives test modules a process object whose 'exit' and signal events never fire), the kernel kills the
// component. Without setpriv, components are spawned directly and rely on the hooks and stop().
const SETPRIV = existsSync('/usr/bin/setpriv') ? '/usr/bin/setpriv' : undefined;

/**
 * Starts `spec` with stdin closed and stdout/stderr appended to `spec.logFile`. Throws when the
 * executable cannot be spawned at all; a process that starts and then exits is reported by
 * {@link exitReason}. The child is not detached: it stays in our process group, so a Ctrl-C in a
 * terminal reaches it too; and it gets SIGKILL when the spawning process dies (see SETPRIV above).
 */
export function spawnLogged(spec: ProcessSpec): ProcessRecord {
  try {
    // Checked here because with setpriv in front a missing binary would only show as setpriv's exit.
    accessSync(spec.command, constants.X_OK);
  } catch (cause) {
    throw new Error(`spawn ${spec.id}: ${spec.command} could not be started (missing or not executable)`, { cause });
  }
  const fd = openSync(spec.logFile, 'a');
  let child: ChildProcess;
  try {
    // Arguments carry file paths, never tokens (those live in files), so the command line may be logged.
    writeSync(fd, `\n==== ${new Date().toISOString()} start ${spec.id}: ${spec.command} ${spec.args.join(' ')}\n`);
    child = SETPRIV
      ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', spec.command, ...spec.args], { stdio: ['ignore', fd, fd], detached: false })
      : spawn(spec.command, spec.args, { stdio: ['ignore', fd, fd], detached: false });
  } finally {
    closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) {
    // Spawn failures (ENOENT, EACCES) are reported through 'error'; keep the listener so it is not unhandled.
    child.on('error', () => undefined);
    throw new Error(`spawn ${spec.id}: ${spec.command} could not be started (missing or not executable?)`);
  }
  const entry: { child: ChildProcess; exit?: string } = { child };
  children.set(pid, entry);
  child.on('error', (err) => {
    entry.exit = `error: ${err.message}`;
  });
  child.on('exit', (code, signal) => {
    entry.exit = signal ? `killed by ${signal}` : `exited with code ${code}`;
  });
  return { ...spec, pid };
}

/** Why a child spawned by this process ended (`exited with code 1`, `killed by SIGKILL`), or undefined while it runs or if it is not ours. */
export function exitReason(pid: number): string | undefined {
  return children.get(pid)?.exit;
}

/** Reads /proc/<pid>/stat's state letter; undefined when the pid does not exist. */
function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may contain spaces: the state follows the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

/** True when `pid` exists and is not a zombie (a zombie has exited; it only waits to be reaped). */
export function isAlive(pid: number): boolean {
  const state = procState(pid);
  return state !== undefined && state !== 'Z' && state !== 'X';
}

/**
 * True when `pid` has exited for good: for our own children, once Node has reaped it (its exit is known,
 * no zombie left); for others, once it is no longer alive.
 */
export function isGone(pid: number): boolean {
  const own = children.get(pid);
  return own ? own.exit !== undefined : !isAlive(pid);
}

/** True when `pid` is stopped (SIGSTOP): /proc state `T`. */
export function isStopped(pid: number): boolean {
  return procState(pid) === 'T';
}

/**
 * True when `pid` is alive and still runs `command` (argv[0]). Guards against signalling a recycled pid
 * that now belongs to an unrelated process.
 */
export function runs(pid: number, command: string): boolean {
  if (!isAlive(pid)) return false;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    // Right after spawn, before setpriv has exec'd the component, argv is setpriv's own.
    return argv[0] === command || (SETPRIV !== undefined && argv[0] === SETPRIV && argv.includes(command));
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    // ESRCH: it exited between our check and the signal, which is what we want anyway.
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw new Error(`kill -${sig} ${pid}`, { cause: err });
  }
}

/** Sends `sig` to the process if it still runs `command`. */
export function signalIfOurs(rec: Pick<ProcessRecord, 'pid' | 'command'>, sig: NodeJS.Signals): void {
  if (runs(rec.pid, rec.command)) signal(rec.pid, sig);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Stops every listed process that still runs its command: SIGCONT first (a SIGSTOPped process cannot act
 * on SIGTERM), then SIGTERM, then SIGKILL for those still alive after `graceMs`. Resolves once all are
 * gone (our own children also reaped); throws (naming them) if any survives SIGKILL for 5 s more.
 */
export async function stopProcesses(recs: Array<Pick<ProcessRecord, 'pid' | 'command' | 'id'>>, graceMs = 10_000): Promise<void> {
  const live = recs.filter((r) => runs(r.pid, r.command));
  for (const r of live) {
    signal(r.pid, 'SIGCONT');
    signal(r.pid, 'SIGTERM');
  }
  const waitGone = async (ms: number) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline && live.some((r) => !isGone(r.pid))) await sleep(50);
  };
  await waitGone(graceMs);
  for (const r of live) if (isAlive(r.pid)) signal(r.pid, 'SIGKILL');
  await waitGone(5_000);
  const left = live.filter((r) => !isGone(r.pid));
  if (left.length > 0) throw new Error(`processes survived SIGKILL: ${left.map((r) => `${r.id} (pid ${r.pid})`).join(', ')}`);
}

/**
 * Synchronous last resort for `process.on('exit')`, where nothing asynchronous runs: SIGCONT + SIGKILL
 * to every listed process that still runs its command. Never throws.
 */
export function killNow(recs: Array<Pick<ProcessRecord, 'pid' | 'command'>>): void {
  for (const r of recs) {
    try {
      if (!runs(r.pid, r.command)) continue;
      process.kill(r.pid, 'SIGCONT');
      process.kill(r.pid, 'SIGKILL');
    } catch {
      // Nothing can be reported from an exit handler; the pid is gone or not ours.
    }
  }
}

/** The last `lines` lines of a log file ('' when it does not exist yet). */
export function tail(file: string, lines: number): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return '';
  }
  const all = text.split('\n');
  if (all.length > 0 && all[all.length - 1] === '') all.pop();
  return all.slice(-lines).join('\n');
}

/** Resident memory of a pid in KiB (VmRSS from /proc/<pid>/status), or undefined when it is gone. */
export function rssKiB(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
