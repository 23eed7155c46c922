/**
 * Loads the simulator's model parameters from calibration.json (or a `--model FILE` of the same shape)
 * and flattens them to plain values. Sources stay in the file: the report names them, the code does not.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Entry<T> {
  value: T;
  source: string;
}

type Section = Record<string, Entry<unknown>>;

/** The calibration file as stored: sections of `{ value, source }` entries, plus its date. */
export interface CalibrationFile {
  date: string;
  cluster: Section;
  apiserver: Section;
  agents: Section;
  coredns: Section;
  prometheus: Section;
  churn: Section;
  breakGlass: Section;
  operator: Section;
}

/** The model's parameters as the simulator uses them (see calibration.json for each one's source). */
export interface Model {
  date: string;
  cluster: {
    podsPerNode: number;
    servicesPerPod: number;
    notReadyFraction: number;
    podStartMedianSeconds: number;
    podStartSigma: number;
    podStopSeconds: number;
  };
  apiserver: {
    coresByNodes: Array<[number, number]>;
    memoryLimitGiBByNodes: Array<[number, number]>;
    memoryBaseMiB: number;
    memoryPerObjectKiB: number;
    listMemoryAmplification: number;
    apfSeats: number;
    listSeatWidth: number;
    memoryTimeConstantSeconds: number;
    baselineRequestsPerNodePerSecond: number;
    smallRequestMedianSeconds: number;
    smallRequestSigma: number;
    smallRequestCpuSeconds: number;
    listSecondsPerMiB: number;
    listSigma: number;
    queueingCap: number;
    requestTimeoutSeconds: number;
    restartSeconds: number;
    crashLoopBackoffSeconds: number[];
    crashLoopResetSeconds: number;
    operatorFlowRejectionFactor: number;
    probeTimeoutSeconds: number;
  };
  agents: { defectRelistSeconds: number };
  coredns: { queriesPerPodPerSecond: number; serviceLookupFraction: number; staleServeSeconds: number; requestMedianSeconds: number; requestSigma: number };
  prometheus: { scrapeIntervalSeconds: number; stalenessSeconds: number; queryMedianSeconds: number };
  churn: { replacedFractionPerHour: number };
  breakGlass: { perNodeMedianSeconds: number; perNodeP99Seconds: number; failureProbability: number };
  operator: { clientRequestMedianSeconds: number };
}

/** The default calibration file, beside this module. */
export const DEFAULT_MODEL_PATH = join(dirname(fileURLToPath(import.meta.url)), 'calibration.json');

function values<T>(s: Section, what: string): T {
  const out: Record<string, unknown> = {};
  for (const [k, e] of Object.entries(s)) {
    if (typeof e !== 'object' || e === null || !('value' in e) || typeof e.source !== 'string') throw new Error(`${what}.${k}: need { value, source }`);
    out[k] = e.value;
  }
  return out as T;
}

/** Parses a calibration file; throws with the path of a malformed entry. */
export function parseModel(file: CalibrationFile): Model {
  return {
    date: file.date,
    cluster: values(file.cluster, 'cluster'),
    apiserver: values(file.apiserver, 'apiserver'),
    agents: values(file.agents, 'agents'),
    coredns: values(file.coredns, 'coredns'),
    prometheus: values(file.prometheus, 'prometheus'),
    churn: values(file.churn, 'churn'),
    breakGlass: values(file.breakGlass, 'breakGlass'),
    operator: values(file.operator, 'operator'),
  };
}

/** Reads and parses a calibration file (default: the checked-in one). */
export function loadModel(path = DEFAULT_MODEL_PATH): Model {
  return parseModel(JSON.parse(readFileSync(path, 'utf8')) as CalibrationFile);
}

/** The value of a `[maxNodes, value]` tier table for a cluster of `nodes` (the last tier beyond it). */
export function tier(table: Array<[number, number]>, nodes: number): number {
  for (const [max, v] of table) if (nodes <= max) return v;
  return table[table.length - 1]?.[1] ?? 0;
}
