/**
 * Measuring a break-glass round (write the stop file to N nodes, then clear it) through any
 * transport, for the break-glass benchmark (breakglass.ts). Measurements are returned as figures, never
 * asserted on: timings depend on the machine.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { encodeStopFile, stopFileName } from '../../operator/src/breakglass/stopfile.js';
import { countOutcomes, type BreakGlassTransport, type NodeOutcome, type NodeTarget } from '../../operator/src/breakglass/transport.js';

/** Options of {@link measureBreakGlass}. */
export interface MeasureOptions {
  transport: BreakGlassTransport;
  nodes: readonly NodeTarget[];
  /** The revision named in the stop file (default `bench000000`). */
  revision?: string;
  /** Also time the clear (default true). */
  clear?: boolean;
  /** Monotonic milliseconds (default performance.now). */
  now?: () => number;
  /**
   * Whether a node's stop file `file` (`auto-<revision>`, in the stop directory) is on disk, checked
   * after the write (not timed): a transport's `ok` is its own word, this is what an agent would find.
   */
  onDisk?: (node: NodeTarget, file: string) => Promise<boolean>;
  /** CPU ms of the server side so far (sshd and its children), for the ssh rounds. */
  serverCpuMs?: () => number | undefined;
}

/** Figures of one round. */
export interface BreakGlassFigures {
  transport: string;
  nodes: number;
  concurrency: number;
  /** Wall time from the start of the write to the last node's outcome. */
  writeMs: number;
  /** Same for the clear (undefined when not measured). */
  clearMs?: number;
  ok: number;
  failed: number;
  timedOut: number;
  /** Per-node durations of the write: median, 95th and 99th percentile, maximum. */
  nodeP50Ms: number;
  nodeP95Ms: number;
  nodeP99Ms: number;
  nodeMaxMs: number;
  /** Nodes written per second. */
  nodesPerSecond: number;
  /**
   * CPU time (user + system) of the child processes the write ran (ssh, exec commands), per node, on
   * Linux; undefined elsewhere or for transports without children. On a shared loopback benchmark the
   * wall times include the server side; this is the client's own cost.
   */
  childCpuMsPerNode?: number;
  /** CPU time of the server side (sshd and the sessions it forked) per node, when `serverCpuMs` is given. */
  serverCpuMsPerNode?: number;
  /** Nodes whose stop file was found on disk after the write, when `onDisk` is given. */
  filesOnDisk?: number;
  /** Every node's write duration in ms, in input order (the model of the ssh fleet replays them). */
  nodeMs: number[];
  /** The first few failure messages, to explain a bad round. */
  sampleFailures: string[];
}

/** The q-quantile (0..1) of sorted values, nearest rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** The CPU fields of /proc/<pid>/stat in ms (utime, stime, cutime, cstime), or undefined off Linux. */
function procCpu(pid: number | 'self'): [number, number, number, number] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start at field 3; utime..cstime are 14-17.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // USER_HZ is 100 on every Linux ABI Node runs on.
    const ms = [10, 11, 12, 13].map((i) => Number(fields[i]) * 10) as [number, number, number, number];
    return ms.every(Number.isFinite) ? ms : undefined;
  } catch {
    return undefined;
  }
}

/** CPU ms of this process's reaped children (cutime + cstime of /proc/self/stat), or undefined off Linux. */
export function childCpuMs(): number | undefined {
  const c = procCpu('self');
  return c && c[2] + c[3];
}

/**
 * CPU ms of process `pid` and its reaped children (utime + stime + cutime + cstime): for sshd, which
 * forks a process per connection and reaps it, the whole server side of the connections that ended.
 */
export function processTreeCpuMs(pid: number): number | undefined {
  const c = procCpu(pid);
  return c && c[0] + c[1] + c[2] + c[3];
}

/** Writes a stop file to every node through the transport (then clears it) and returns the figures. */
export async function measureBreakGlass(opts: MeasureOptions): Promise<BreakGlassFigures> {
  const now = opts.now ?? (() => performance.now());
  const revision = opts.revision ?? 'bench000000';
  const file = stopFileName('auto', revision);
  const content = encodeStopFile({
    rollout: 'bench/measure',
    revision,
    reason: 'benchmark',
    issuedAt: new Date().toISOString(),
  });
  const cpu0 = childCpuMs();
  const server0 = opts.serverCpuMs?.();
  const t0 = now();
  const outcomes: NodeOutcome[] = await opts.transport.write(opts.nodes, file, content);
  const writeMs = now() - t0;
  const cpu1 = childCpuMs();
  let filesOnDisk: number | undefined;
  if (opts.onDisk) {
    const found = await Promise.all(opts.nodes.map((n) => opts.onDisk!(n, file)));
    filesOnDisk = found.filter(Boolean).length;
  }
  // Read after the disk check: sshd reaps a connection's process a moment after the client has exited.
  const server1 = opts.serverCpuMs?.();
  let clearMs: number | undefined;
  if (opts.clear ?? true) {
    const t1 = now();
    await opts.transport.clear(opts.nodes, { file });
    clearMs = now() - t1;
  }
  const c = countOutcomes(outcomes);
  const durations = outcomes.map((o) => o.durationMs).sort((a, b) => a - b);
  const figures: BreakGlassFigures = {
    transport: opts.transport.kind,
    nodes: opts.nodes.length,
    concurrency: opts.transport.concurrency,
    writeMs: Math.round(writeMs),
    ok: c.ok,
    failed: c.failed,
    timedOut: c.timedOut,
    nodeP50Ms: quantile(durations, 0.5),
    nodeP95Ms: quantile(durations, 0.95),
    nodeP99Ms: quantile(durations, 0.99),
    nodeMaxMs: durations.at(-1) ?? 0,
    nodesPerSecond: writeMs > 0 ? Math.round((opts.nodes.length / writeMs) * 1000) : 0,
    sampleFailures: outcomes
      .filter((o) => o.result !== 'ok')
      .slice(0, 3)
      .map((o) => `${o.node}: ${o.result} ${o.message ?? ''}`),
    nodeMs: outcomes.map((o) => o.durationMs),
  };
  if (filesOnDisk !== undefined) figures.filesOnDisk = filesOnDisk;
  if (clearMs !== undefined) figures.clearMs = Math.round(clearMs);
  if (cpu0 !== undefined && cpu1 !== undefined && cpu1 > cpu0 && opts.nodes.length > 0) {
    figures.childCpuMsPerNode = Math.round(((cpu1 - cpu0) / opts.nodes.length) * 10) / 10;
  }
  if (server0 !== undefined && server1 !== undefined && opts.nodes.length > 0) {
    figures.serverCpuMsPerNode = Math.round(((server1 - server0) / opts.nodes.length) * 10) / 10;
  }
  return figures;
}
