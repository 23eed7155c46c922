/**
 * The IPC messages between the node runtime (parent) and its worker processes. Plain JSON: the
 * default `child_process` serialisation, so nothing but data crosses (no functions, no class instances).
 */
import type { AgentDescription } from './pods.js';

/** What a worker needs to start one agent (everything the pod and its node provide). */
export interface AgentSpec extends AgentDescription {
  /** The collector config from the pod's ConfigMap, kubeletURL already pointed at the runtime. */
  config: Record<string, unknown>;
  /** The node's root directory (proc/, sys/, statfs'd as /). */
  hostRoot: string;
  /** The legacy single stop file (deprecated, still obeyed). */
  stopFilePath: string;
  /** The stop directory (one file per issuer and scope). */
  stopDirectory: string;
  /** This agent's own kubeconfig (its pod's ServiceAccount); else the worker's `init` one. */
  kubeconfig?: string;
}

/** A live agent as a worker reports it. */
export interface WorkerAgentInfo {
  id: string;
  node: string;
  pod: string;
  revision: string;
  mode: 'node' | 'cluster';
  metadataMode: string;
  stopped: boolean;
  apiRequests: number;
  /** API responses by `<verb> <resource> <code>` (code `error` when no status came back). */
  apiResponses: Record<string, number>;
  lastApiRequestAt?: number;
  kubeletRequests: number;
}

/** Parent → worker. `init` comes first, once. */
export type ToWorker =
  { t: 'init'; kubeconfig: string } | { t: 'start'; spec: AgentSpec } | { t: 'stop'; id: string } | { t: 'list'; req: number } | { t: 'shutdown' };

/** Worker → parent. */
export type FromWorker =
  | { t: 'ready' }
  | { t: 'started'; id: string }
  | { t: 'startFailed'; id: string; error: string }
  | { t: 'stopped'; id: string }
  /** An agent's loops ended on their own (a bug or a fatal error): the parent may start it again. */
  | { t: 'exited'; id: string; error?: string }
  | { t: 'agents'; req: number; agents: WorkerAgentInfo[]; rssBytes: number }
  | { t: 'log'; line: string };
