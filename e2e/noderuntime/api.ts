/**
 * What the node runtime offers its users (the e2e tests, the demo, the benchmarks): its options, the
 * {@link NodeRuntime} handle and the agents it reports. The implementation is runtime.ts.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { WorkerAgentInfo } from './protocol.js';

/** The legacy single stop file, relative to a node's root (deprecated: agents still obey it for one release). */
export const STOP_FILE_IN_NODE = 'var/run/telemetry-rollout/stop';
/** The stop directory, relative to a node's root (where the break-glass transports write their files). */
export const STOP_DIRECTORY_IN_NODE = 'var/run/telemetry-rollout/stop.d';

/** Options of {@link startNodeRuntime}. */
export interface NodeRuntimeOptions {
  /** The target cluster; agents use it (one KubeConfig per agent, loaded from the same string). */
  kubeConfig: KubeConfig;
  /**
   * What the runtime itself uses for its pod watch and ConfigMap reads (the kubelet's credentials in a
   * real cluster); default `kubeConfig`. Lets agents run as a least-privileged user.
   */
  runtimeKubeConfig?: KubeConfig;
  /** `<rootDir>/<node>/` stands for each node's root filesystem. */
  rootDir: string;
  /**
   * Whose credentials the agents use. `runtime` (default): `kubeConfig`'s user for every agent.
   * `pod`: like a kubelet, each agent gets its pod's ServiceAccount token (a TokenRequest, bound to
   * the pod) with `kubeConfig`'s server and CA, and no credentials at all when the pod opts out of the
   * token (`automountServiceAccountToken: false`), so the API server's RBAC decides what agents may do.
   */
  credentials?: 'runtime' | 'pod';
  /** Namespace of the collector pods (default `telemetry-system`). */
  namespace?: string;
  /** Worker processes (default 2); agents are spread over them. */
  workers?: number;
  /** Receives the runtime's and the agents' log lines (agents: JSON, warn and above by default). */
  logger?: (line: string) => void;
}

/** A live agent, as its worker reports it. */
export interface AgentInfo {
  /** The node its pod runs on (for the cluster-mode agent: the node kwok placed its pod on). */
  node: string;
  pod: string;
  revision: string;
  mode: 'node' | 'cluster';
  /** Whether the stop file holds the agent idle. */
  stopped: boolean;
  /** Requests the agent sent to the API server (its collector_api_requests_total, all codes). */
  apiRequests: number;
  /** When it last sent one (epoch ms), stamped by its transport. */
  lastApiRequestAt?: number;
  /** `Kubelet` or `Naive` (node mode), `ClusterWatcher` (cluster mode). */
  metadataMode?: string;
  /** GETs of its kubelet `/pods` (node mode). */
  kubeletRequests?: number;
  /** API responses by `<verb> <resource> <code>` (code `error`/`aborted` when no status came back). */
  apiResponses?: Record<string, number>;
}

/** A running node runtime. */
export interface NodeRuntime {
  /** Starts the pod watch, the kubelet server and the workers (startNodeRuntime already did; idempotent). */
  start(): Promise<void>;
  /** Stops every agent and worker; no process is left. Idempotent. */
  stop(): Promise<void>;
  /** `<rootDir>/<node>`. */
  nodeRoot(node: string): string;
  /** `<rootDir>/<node>/var/run/telemetry-rollout/stop` (the legacy single file). */
  stopFilePath(node: string): string;
  /** `<rootDir>/<node>/var/run/telemetry-rollout/stop.d`, the stop directory. */
  stopDirectory(node: string): string;
  /** Live agents, from the workers. */
  agents(): Promise<AgentInfo[]>;
  /** The kubelet base URL the agent of `node` uses (`/pods` is appended by the agent). */
  kubeletURL(node: string): string;
  /** RSS in bytes of each worker process (for measurements). */
  workerRss(): Promise<number[]>;
}

/** A worker's report of one agent, as the runtime's users see it. */
export function toAgentInfo(a: WorkerAgentInfo): AgentInfo {
  const info: AgentInfo = {
    node: a.node,
    pod: a.pod,
    revision: a.revision,
    mode: a.mode,
    stopped: a.stopped,
    apiRequests: a.apiRequests,
    metadataMode: a.metadataMode,
    kubeletRequests: a.kubeletRequests,
    apiResponses: a.apiResponses,
  };
  if (a.lastApiRequestAt !== undefined) info.lastApiRequestAt = a.lastApiRequestAt;
  return info;
}
