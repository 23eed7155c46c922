// The mutable state behind a fleet's handles (FleetState: the info file and its process records) and the
// exit and signal hooks that stop the fleets this process started.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { FleetInfo } from './fleet-types.js';
import { killNow, spawnLogged, stopProcesses, type ProcessRecord, type ProcessSpec } from './processes.js';

/** Where fleet progress goes unless `StartFleetOptions.log` says otherwise: timestamped lines on stderr. */
export function defaultLog(line: string): void {
  process.stderr.write(`[fleet ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

function writeJSONAtomic(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 2), { mode: 0o600 });
  renameSync(tmp, file);
}

/** Reads and checks an info file. */
export function readInfo(file: string): FleetInfo {
  let info: FleetInfo;
  try {
    info = JSON.parse(readFileSync(file, 'utf8')) as FleetInfo;
  } catch (cause) {
    throw new Error(`read fleet info ${file}`, { cause });
  }
  if (info.version !== 1) throw new Error(`fleet info ${file}: unsupported version ${String(info.version)}`);
  return info;
}

/** Fleets owned (started) by this process: the exit hook kills them even when stop() was never called. */
export const owned = new Set<FleetState>();
let exitHookInstalled = false;
let signalHooksInstalled = false;

/**
 * Installs, once per process, the exit hook that kills the owned fleets' processes and, when
 * `handleSignals`, SIGINT/SIGTERM/SIGHUP handlers that stop them and exit with the signal's code.
 */
export function installHooks(handleSignals: boolean): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const st of owned) {
        killNow(st.info.processes);
        if (!st.info.keepWorkDir) rmSync(st.info.workDir, { recursive: true, force: true });
      }
    });
  }
  if (handleSignals && !signalHooksInstalled) {
    signalHooksInstalled = true;
    const codes: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(sig, () => {
        defaultLog(`${sig}: stopping ${owned.size} fleet(s)`);
        void Promise.allSettled([...owned].map((st) => st.stop())).then(() => process.exit(codes[sig]));
      });
    }
  }
}

/** The mutable state behind a fleet's handles: the info file and its process records. */
export class FleetState {
  info: FleetInfo;
  readonly infoFile: string;
  private stopping: Promise<void> | undefined;

  constructor(info: FleetInfo, infoFile: string) {
    this.info = info;
    this.infoFile = infoFile;
  }

  /** Writes the info file (atomically, mode 0600). */
  save(): void {
    writeJSONAtomic(this.infoFile, this.info);
  }

  /**
   * Re-reads pids another process may have changed (a restart in a jest worker). When the file is gone
   * (the fleet was stopped through another handle) it keeps what it knows.
   */
  reload(): void {
    if (!existsSync(this.infoFile)) return;
    this.info = readInfo(this.infoFile);
  }

  /** The record of process `id`; throws when the fleet has none. */
  record(id: string): ProcessRecord {
    const rec = this.info.processes.find((p) => p.id === id);
    if (!rec) throw new Error(`fleet has no process ${id}`);
    return rec;
  }

  /**
   * Spawns a spec and records it (replacing an earlier incarnation with the same id). Refuses once the
   * fleet is stopping, so a start still in progress when a signal stopped the fleet leaves nothing behind.
   */
  start(spec: ProcessSpec): ProcessRecord {
    if (this.stopping) throw new Error(`fleet ${this.info.workDir} is stopping: not starting ${spec.id}`);
    const rec = spawnLogged(spec);
    this.info.processes = [...this.info.processes.filter((p) => p.id !== spec.id), rec];
    this.save();
    return rec;
  }

  /** Stop and start one process again with the same command line. */
  async restart(id: string): Promise<ProcessRecord> {
    this.reload();
    const old = this.record(id);
    try {
      await stopProcesses([old]);
    } catch (cause) {
      throw new Error(`restart ${id}: stop pid ${old.pid}`, { cause });
    }
    const { pid: _pid, ...spec } = old;
    return this.start(spec);
  }

  /** Stops every process (etcd last) and removes the work dir unless kept. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    // Let stop() record the promise first, so start() sees the fleet as stopping from here on.
    await Promise.resolve();
    this.reload();
    const errors: unknown[] = [];
    const procs = this.info.processes;
    // Everything that talks to etcd goes first so etcd is not killed under live API servers.
    try {
      await stopProcesses(procs.filter((p) => p.role !== 'etcd'));
    } catch (err) {
      errors.push(err);
    }
    try {
      await stopProcesses(procs.filter((p) => p.role === 'etcd'));
    } catch (err) {
      errors.push(err);
    }
    owned.delete(this);
    if (!this.info.keepWorkDir) {
      try {
        rmSync(this.info.workDir, { recursive: true, force: true });
      } catch (err) {
        errors.push(new Error(`remove ${this.info.workDir}`, { cause: err }));
      }
    }
    if (errors.length > 0) throw new Error(`stop fleet ${this.info.workDir}: ${errors.length} error(s)`, { cause: errors[0] });
  }
}
