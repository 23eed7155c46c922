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
  /** Per-node durations of the write: median, 99th percentile, maximum. */
  nodeP50Ms: number;
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
  /** The first few failure messages, to explain a bad round. */
  sampleFailures: string[];
}

/** The q-quantile (0..1) of sorted values, nearest rank. */
function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** CPU ms of this process's reaped children (cutime + cstime of /proc/self/stat), or undefined off Linux. */
export function childCpuMs(): number | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    // Fields after the command name (which may contain spaces) start at field 3; cutime, cstime are 16, 17.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[13]) + Number(fields[14]);
    // USER_HZ is 100 on every Linux ABI Node runs on.
    return Number.isFinite(ticks) ? ticks * 10 : undefined;
  } catch {
    return undefined;
  }
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
  const t0 = now();
  const outcomes: NodeOutcome[] = await opts.transport.write(opts.nodes, file, content);
  const writeMs = now() - t0;
  const cpu1 = childCpuMs();
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
    nodeP99Ms: quantile(durations, 0.99),
    nodeMaxMs: durations.at(-1) ?? 0,
    nodesPerSecond: writeMs > 0 ? Math.round((opts.nodes.length / writeMs) * 1000) : 0,
    sampleFailures: outcomes
      .filter((o) => o.result !== 'ok')
      .slice(0, 3)
      .map((o) => `${o.node}: ${o.result} ${o.message ?? ''}`),
  };
  if (clearMs !== undefined) figures.clearMs = Math.round(clearMs);
  if (cpu0 !== undefined && cpu1 !== undefined && cpu1 > cpu0 && opts.nodes.length > 0) {
    figures.childCpuMsPerNode = Math.round((cpu1 - cpu0) / opts.nodes.length);
  }
  return figures;
}
