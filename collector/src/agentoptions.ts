/**
 * What an agent is and how it is started: identity, mode, the options of startAgent, the status and
 * handle of a running agent, and the names it derives (User-Agent, Lease). Split from main.ts (the
 * entry points), which re-exports all of it.
 */
import { kubeConfigFromFiles, kubeConfigFromString, loadDefaultConfig, type ApiServerConfig } from '#core/kubeconfig.js';
import type { Clock } from '#core/clock.js';
import type { ParentLogger } from '#core/logger.js';
import type { CollectorConfig, CollectorConfigInput } from './config.js';
import type { KillSwitch, StopFileReader } from './killswitch.js';
import type { HttpGetter } from './kubelet.js';
import type { CollectorMetrics } from './metrics.js';
import type { NodeFs, NodePaths } from './node/procfs.js';
import type { KubeTransport } from './transport.js';

/** Version reported in the User-Agent and logs. */
export const COLLECTOR_VERSION = '0.1.0';

/** Who an agent is; comes from the downward API in a real pod. */
export interface AgentIdentity {
  /** Required in node mode. */
  nodeName?: string;
  podName: string;
  podNamespace: string;
  /** Revision hash of the rollout (TRO_REVISION); what the stop file matches. */
  revision: string;
  /** `namespace/name` of the TelemetryRollout (TRO_ROLLOUT). */
  rollout?: string;
}

/** Agent mode: one per node (DaemonSet) or the leader-elected cluster watcher (Deployment). */
export type AgentMode = 'node' | 'cluster';

/**
 * The User-Agent of every API request of an agent, e.g.
 * `telemetry-collector/0.1.0 (mode=node; metadata=Naive; node=node-17; revision=3f2a9c)`. The e2e
 * measurements tell agents and modes apart at the API server (audit log) by it.
 */
export function userAgentFor(mode: AgentMode, config: CollectorConfig, identity: AgentIdentity): string {
  const parts = [`mode=${mode}`];
  if (mode === 'node') parts.push(`metadata=${config.metadata.mode}`, `node=${identity.nodeName ?? ''}`);
  else parts.push(`pod=${identity.podName}`);
  parts.push(`revision=${identity.revision}`);
  return `telemetry-collector/${COLLECTOR_VERSION} (${parts.join('; ')})`;
}

/**
 * The Lease name of a rollout's cluster watcher: shared by every replica and every revision of the
 * rollout in the cluster (so an old and a new revision never watch at the same time).
 */
export function leaseNameFor(rollout: string | undefined): string {
  const base = (rollout ?? '').split('/').pop() ?? '';
  const clean = base
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/^-+|-+$/g, '');
  return clean ? `${clean.slice(0, 40)}-collector-watcher` : 'telemetry-collector-watcher';
}

/**
 * The forms in which API server access can be given to startAgent: a loaded ApiServerConfig, the path
 * of a kubeconfig file, or any object with client-node's `exportConfig()` (a client-node KubeConfig, as
 * callers passed before the collector dropped client-node; it is read through its exported kubeconfig
 * text, so the collector never imports client-node).
 */
export type KubeConfigInput = ApiServerConfig | string | { exportConfig(): string };

/** Resolves a KubeConfigInput; undefined loads the default (KUBECONFIG, ~/.kube/config, in-cluster). */
export async function resolveKubeConfig(input: KubeConfigInput | undefined, env: NodeJS.ProcessEnv = process.env): Promise<ApiServerConfig> {
  if (input === undefined) return loadDefaultConfig(env);
  if (typeof input === 'string') return kubeConfigFromFiles([input]);
  if ('exportConfig' in input) return kubeConfigFromString(input.exportConfig(), { source: 'kubeConfig option' });
  return input;
}

/** Options of startAgent. Only mode, config and identity are required. */
export interface StartAgentOptions {
  mode: AgentMode;
  /**
   * The collector config, partial or resolved; validated here (ConfigError when invalid), so raw JSON
   * from a ConfigMap may be passed with a cast.
   */
  config: CollectorConfigInput;
  identity: AgentIdentity;
  /**
   * API server access, one per agent (never shared, never merged). Default: loadDefaultConfig() (KUBECONFIG,
   * ~/.kube/config, in-cluster). See KubeConfigInput for the accepted forms.
   */
  kubeConfig?: KubeConfigInput;
  /** Replaces the transport built from kubeConfig (tests, or a wrapped transport). */
  transport?: KubeTransport;
  /** Host root holding proc/ and sys/ and statfs'd as `/` (node mode; the e2e fake-node layout). Default `/`. */
  hostRoot?: string;
  /** Explicit node paths (node mode); wins over hostRoot. */
  nodePaths?: NodePaths;
  /** Legacy single stop file as seen by this agent (deprecated, still obeyed). Default: config.stopFilePath. */
  stopFilePath?: string;
  /** Stop directory as seen by this agent. Default: config.stopDirectory. */
  stopDirectory?: string;
  /** HTTP port: default config.metricsPort; 0 = ephemeral; null = no server (metrics via the handle). */
  metricsPort?: number | null;
  /** HTTP bind address; default `0.0.0.0`. */
  metricsHost?: string;
  /** Base logger (a child with node/revision/mode fields is made); default a JSON logger to stdout. */
  logger?: ParentLogger;
  clock?: Clock;
  stopFileReader?: StopFileReader;
  nodeFs?: NodeFs;
  httpGetter?: HttpGetter;
  /** Add process-wide metrics (CPU, memory, GC) to this agent's registry: only for one agent per process. */
  processMetrics?: boolean;
  /** Period of the node agent's GET of its own Node object; 0 disables. Default 300. */
  nodeInfoRefreshSeconds?: number;
  /** Cluster mode: Lease name; default leaseNameFor(identity.rollout). */
  leaseName?: string;
  /** Cluster mode: leader-election timings (client-go defaults 15 s / 10 s / 2 s). */
  leaderElection?: { leaseDurationMs?: number; renewDeadlineMs?: number; retryPeriodMs?: number };
  random?: () => number;
}

/** Status of a running agent (also served on /healthz). */
export interface AgentStatus {
  mode: AgentMode;
  node: string | undefined;
  pod: string;
  revision: string;
  metadataMode: string;
  stopped: boolean;
  stopReason: string;
  details: Record<string, unknown>;
}

/** A running agent. */
export interface AgentHandle {
  readonly mode: AgentMode;
  readonly identity: AgentIdentity;
  readonly config: CollectorConfig;
  readonly metrics: CollectorMetrics;
  readonly killSwitch: KillSwitch;
  readonly userAgent: string;
  /** Bound HTTP port, or undefined without a server. */
  readonly port: number | undefined;
  status(): AgentStatus;
  /**
   * Graceful stop: ends the loops (a leader releases its Lease), then cancels whatever API call is
   * left, stops polling the stop file and closes the HTTP server. Idempotent.
   */
  stop(): Promise<void>;
  /** Settles when the agent has stopped: resolves after stop(), rejects if a loop failed (a bug). */
  readonly done: Promise<void>;
}
