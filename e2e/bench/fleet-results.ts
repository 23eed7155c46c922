/**
 * The fleet-scale benchmark's results file (e2e/bench/results/fleet.json): its shape, a reader that
 * refuses anything but measured numbers where figures belong (so nothing hand-typed reaches the
 * generated doc), and the writer `npm run bench:fleet` uses.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { REPO_ROOT, type BenchEnvironment } from './breakglass-results.js';

/** Where the results live, relative to the repository root. */
export const FLEET_RESULTS_FILE = 'e2e/bench/results/fleet.json';

/** Reconcile pass durations of a window, from the operator's `tro_reconcile_duration_seconds` histogram. */
export interface PassFigures {
  count: number;
  /** Quantiles interpolated within the histogram's buckets (as Prometheus' histogram_quantile), seconds. */
  p50Seconds: number;
  p99Seconds: number;
  meanSeconds: number;
  /** Passes slower than 1 s (exact: 1 s is a bucket bound). */
  overOneSecond: number;
}

/** API requests the operator made to the targets in a window, counted by the stub API server. */
export interface RequestFigures {
  seconds: number;
  /** All requests to targets / clusters / seconds. */
  perClusterPerSecond: number;
  /** The busiest cluster's requests / seconds. */
  maxClusterPerSecond: number;
  /** verb → requests per second over all targets. */
  byVerbPerSecond: Record<string, number>;
}

/** Process figures of a window, from /proc. */
export interface ProcessFigures {
  seconds: number;
  peakRssMiB: number;
  meanRssMiB: number;
  cpuPercent: number;
}

/** One fleet size: a rollout over every target, then a steady-state window. */
export interface FleetRun {
  clusters: number;
  /** The operator's node flags for this run (the production flags unless TRO_OPERATOR_NODE_FLAGS said otherwise). */
  nodeFlags: string;
  nodesPerCluster: number;
  /** The rollout's final phase, or `OperatorExited` / `Timeout` when it never got there. */
  outcome: string;
  /** Why the run stopped early (the operator's last log lines' error, or the deadline), when it did. */
  error?: string;
  rolloutSeconds: number;
  /** RSS when the operator was ready, before the rollout existed (its caches hold the kubeconfig Secrets). */
  readyRssMiB: number;
  rollout: ProcessFigures;
  steady?: ProcessFigures;
  passesRollout: PassFigures;
  passesSteady?: PassFigures;
  requestsRollout: RequestFigures;
  requestsSteady?: RequestFigures;
  /**
   * Where the memory was when the rollout ended, from the operator's own /metrics (prom-client's
   * process and Node.js gauges), MiB: RSS, V8 heap used and committed, memory outside the heap
   * (`external`: Buffers, TLS and zlib state held by JavaScript objects).
   */
  memoryAtEnd?: { rssMiB: number; heapUsedMiB: number; heapTotalMiB: number; externalMiB: number };
  /** The TelemetryRollout as the API server returns it (JSON), bytes; and its status alone. */
  objectBytes: number;
  statusBytes: number;
  /** Watches the stub had open at the end (one node watch per target expected). */
  openWatches: number;
  /** Requests the stub did not know (404), `METHOD path` → count. */
  unknownPaths: Record<string, number>;
}

/** The whole results file. */
export interface FleetResults {
  environment: BenchEnvironment;
  /** The production node flags (the image's ENTRYPOINT and the manifest's NODE_OPTIONS), to tell the runs' flags apart. */
  productionNodeFlags: string;
  /** The memory limit config/manager/manager.yaml ships, MiB. */
  shippedLimitMiB: number;
  settings: { steadySeconds: number; maxConcurrentClusters: number; readyDelayMs: number; stages: string };
  runs: FleetRun[];
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function checkNumbers(obj: unknown, where: string, optional: string[] = []): void {
  if (typeof obj !== 'object' || obj === null) throw new Error(`${where}: missing`);
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) continue;
    if (typeof v === 'string' || typeof v === 'boolean') continue;
    if (!isNum(v) && !optional.includes(k)) throw new Error(`${where}.${k}: not a measured number`);
  }
}

/** Parses and checks a results file's text: every figure a finite number, every run complete. */
export function parseFleetResults(text: string): FleetResults {
  const r = JSON.parse(text) as FleetResults;
  if (!isNum(r.shippedLimitMiB)) throw new Error('shippedLimitMiB: not a measured number');
  if (typeof r.productionNodeFlags !== 'string') throw new Error('productionNodeFlags: missing');
  if (!Array.isArray(r.runs) || r.runs.length === 0) throw new Error('runs: none');
  r.runs.forEach((run, i) => {
    const w = `runs[${i}]`;
    for (const k of ['clusters', 'nodesPerCluster', 'rolloutSeconds', 'readyRssMiB', 'objectBytes', 'statusBytes', 'openWatches'] as const) {
      if (!isNum(run[k])) throw new Error(`${w}.${k}: not a measured number`);
    }
    if (typeof run.outcome !== 'string') throw new Error(`${w}.outcome: missing`);
    if (typeof run.nodeFlags !== 'string') throw new Error(`${w}.nodeFlags: missing`);
    checkNumbers(run.rollout, `${w}.rollout`);
    checkNumbers(run.passesRollout, `${w}.passesRollout`);
    checkNumbers(run.requestsRollout, `${w}.requestsRollout`);
    if (run.steady) checkNumbers(run.steady, `${w}.steady`);
    if (run.passesSteady) checkNumbers(run.passesSteady, `${w}.passesSteady`);
    if (run.requestsSteady) checkNumbers(run.requestsSteady, `${w}.requestsSteady`);
  });
  return r;
}

/** The committed results. */
export function readFleetResults(): FleetResults {
  return parseFleetResults(readFileSync(join(REPO_ROOT, FLEET_RESULTS_FILE), 'utf8'));
}

/** Writes the results file (pretty JSON, trailing newline). */
export function writeFleetResults(r: FleetResults): void {
  const path = join(REPO_ROOT, FLEET_RESULTS_FILE);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(r, null, 2) + '\n');
}
