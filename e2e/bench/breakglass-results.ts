/**
 * The break-glass benchmark's results file (e2e/bench/results/breakglass.json): its shape, a reader
 * that refuses anything but measured numbers where figures belong (so a placeholder or a hand-typed
 * "TBD" cannot reach the generated doc), and the writer the benchmark uses.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PhaseFigures } from './breakglass-phase.js';

/** The repository root (this file is e2e/bench/). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where the results live, relative to the repository root. */
export const RESULTS_FILE = 'e2e/bench/results/breakglass.json';

/**
 * The machine and the load at the start of a run (`loadAverageEnd` is filled in at its end); the note
 * from `TRO_BENCH_NOTE` when set (for example: the machine was shared).
 */
export function benchEnvironment(startedAt: Date): BenchEnvironment {
  return {
    date: startedAt.toISOString(),
    cores: availableParallelism(),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    loadAverageStart: loadavg()[0]!,
    loadAverageEnd: 0,
    ...(process.env.TRO_BENCH_NOTE ? { note: process.env.TRO_BENCH_NOTE } : {}),
  };
}

/** The machine and the run. */
export interface BenchEnvironment {
  /** When the run started (ISO 8601). */
  date: string;
  cores: number;
  cpuModel: string;
  /** `process.version`. */
  node: string;
  platform: string;
  /** 1-minute load average when the run started and when it ended. */
  loadAverageStart: number;
  loadAverageEnd: number;
  /** What the person running it said about the machine (for example: shared with other work). */
  note?: string;
}

/** One transport round: the stop file written to N nodes through the transport, then cleared. */
export interface TransportRound {
  transport: string;
  /** `fleet`: at the transport's concurrency; `per-connection`: one node at a time, to price one connection. */
  purpose: 'fleet' | 'per-connection';
  nodes: number;
  concurrency: number;
  /** The per-node time budget of the round. */
  timeoutSeconds: number;
  writeMs: number;
  clearMs: number;
  ok: number;
  failed: number;
  timedOut: number;
  nodeP50Ms: number;
  nodeP95Ms: number;
  nodeP99Ms: number;
  nodeMaxMs: number;
  filesOnDisk: number;
  /** CPU of the transport's child processes per node (ssh clients, exec shells). */
  childCpuMsPerNode?: number;
  /** CPU of sshd and its sessions per node (ssh only). */
  serverCpuMsPerNode?: number;
  sampleFailures: string[];
}

/**
 * One phase round as the results file holds it: breakglass-phase.ts's figures, with the phase and the
 * transport read back as plain strings.
 */
export type PhaseRound = Omit<PhaseFigures, 'phase' | 'transport'> & { phase: string; transport: string };

/** The ssh fleet model (see breakglass-model.ts). */
export interface SshModel {
  /** The per-connection round whose per-node durations the model replays. */
  costFrom: { nodes: number; concurrency: number; p50Ms: number; p95Ms: number };
  nodes: number;
  /** `spec.breakGlass.transport.concurrency`'s default in the CRD. */
  defaultConcurrency: number;
  timeoutMs: number;
  budgetMs: number;
  /** The model's time to stop every node at the default concurrency. */
  wallMsAtDefault: number;
  okAtDefault: number;
  /** The smallest concurrency that stops every node within the budget (absent: none up to 512). */
  concurrencyForBudget?: number;
  /** The model's time at that concurrency. */
  wallMsAtConcurrencyForBudget?: number;
  /**
   * The operator's own CPU for the fleet's ssh clients (nodes × client CPU per connection, from the
   * one-at-a-time round), in CPU-seconds: a floor on the time per core, whatever the concurrency.
   */
  clientCpuSeconds?: number;
}

/** The inventory's size at N nodes. */
export interface InventorySize {
  nodes: number;
  jsonBytes: number;
  storedBytes: number;
}

/** The whole results file. */
export interface BreakGlassResults {
  environment: BenchEnvironment;
  transports: TransportRound[];
  phases: PhaseRound[];
  sshModel?: SshModel;
  inventory: InventorySize[];
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks that the listed fields of `o` are finite numbers / strings / booleans; throws naming the first bad one. */
function need(o: unknown, where: string, fields: { num?: string[]; str?: string[]; bool?: string[]; optNum?: string[] }): Record<string, unknown> {
  if (!isObj(o)) throw new Error(`${where}: not an object`);
  for (const f of fields.num ?? []) if (typeof o[f] !== 'number' || !Number.isFinite(o[f])) throw new Error(`${where}.${f}: not a measured number`);
  for (const f of fields.optNum ?? [])
    if (o[f] !== undefined && (typeof o[f] !== 'number' || !Number.isFinite(o[f]))) throw new Error(`${where}.${f}: not a measured number`);
  for (const f of fields.str ?? []) if (typeof o[f] !== 'string') throw new Error(`${where}.${f}: not a string`);
  for (const f of fields.bool ?? []) if (typeof o[f] !== 'boolean') throw new Error(`${where}.${f}: not a boolean`);
  return o;
}

const list = (v: unknown, where: string): unknown[] => {
  if (!Array.isArray(v)) throw new Error(`${where}: not a list`);
  return v;
};

/** Parses and checks a results file's text; throws for anything that is not a measured figure. */
export function parseResults(text: string): BreakGlassResults {
  const r = need(JSON.parse(text), 'results', {});
  need(r.environment, 'environment', { num: ['cores', 'loadAverageStart', 'loadAverageEnd'], str: ['date', 'cpuModel', 'node', 'platform'] });
  if (Number.isNaN(Date.parse((r.environment as { date: string }).date))) throw new Error('environment.date: not a date');
  list(r.transports, 'transports').forEach((t, i) =>
    need(t, `transports[${i}]`, {
      num: [
        'nodes',
        'concurrency',
        'timeoutSeconds',
        'writeMs',
        'clearMs',
        'ok',
        'failed',
        'timedOut',
        'nodeP50Ms',
        'nodeP95Ms',
        'nodeP99Ms',
        'nodeMaxMs',
        'filesOnDisk',
      ],
      optNum: ['childCpuMsPerNode', 'serverCpuMsPerNode'],
      str: ['transport', 'purpose'],
    }),
  );
  list(r.phases, 'phases').forEach((p, i) =>
    need(p, `phases[${i}]`, {
      num: [
        'nodes',
        'concurrency',
        'nodesInventoried',
        'nodesRunningCandidate',
        'triggerToAllStoppedMs',
        'passMs',
        'attemptEndMs',
        'nodesPendingAfter',
        'filesOnDisk',
        'filesNamingRevision',
      ],
      str: ['phase', 'transport', 'rolloutPhaseAfter', 'clusterPhaseAfter', 'statusMessage'],
      bool: ['allRunningStopped', 'inProgressAfterPass'],
    }),
  );
  if (r.sshModel !== undefined) {
    const m = need(r.sshModel, 'sshModel', {
      num: ['nodes', 'defaultConcurrency', 'timeoutMs', 'budgetMs', 'wallMsAtDefault', 'okAtDefault'],
      optNum: ['concurrencyForBudget', 'wallMsAtConcurrencyForBudget', 'clientCpuSeconds'],
    });
    need(m.costFrom, 'sshModel.costFrom', { num: ['nodes', 'concurrency', 'p50Ms', 'p95Ms'] });
  }
  list(r.inventory, 'inventory').forEach((v, i) => need(v, `inventory[${i}]`, { num: ['nodes', 'jsonBytes', 'storedBytes'] }));
  return r as unknown as BreakGlassResults;
}

/** Reads the committed results file. */
export function readResults(root = REPO_ROOT): BreakGlassResults {
  return parseResults(readFileSync(join(root, RESULTS_FILE), 'utf8'));
}

/** Writes the results file, formatted as the repository's Prettier config wants it (`npm run lint` checks JSON too). */
export async function writeResults(results: BreakGlassResults, root = REPO_ROOT): Promise<string> {
  const path = join(root, RESULTS_FILE);
  // Loaded here, not at the top: the doc's unit test reads results and needs no formatter.
  const { format, resolveConfig } = await import('prettier');
  const config = (await resolveConfig(path)) ?? {};
  const text = await format(JSON.stringify(results), { ...config, filepath: path });
  parseResults(text);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  return path;
}
