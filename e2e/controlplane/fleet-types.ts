// The fleet's public types: what to start (ClusterSpec, StartFleetOptions), the info file other processes
// attach through (FleetInfo, ClusterInfo, UserInfo) and the handles (Fleet, ClusterHandle). fleet.ts,
// which starts and attaches fleets, re-exports them.
import type { KubeConfig } from '@kubernetes/client-node';
import type { ProcessRecord, Role } from './processes.js';

/** One cluster of a fleet to start. */
export interface ClusterSpec {
  /** DNS-1123 label, unique in the fleet (e.g. `east`). */
  name: string;
  /** Number of kwok nodes to register (0 is allowed: a control plane without nodes). */
  nodes: number;
  /** Pause pods per node from Deployments in namespace `tro-population`; 0 (default) for none. */
  podsPerNode?: number;
}

/**
 * A user added to every cluster's static token file, for running code under real RBAC instead of
 * cluster-admin. `name` may be a service account's user name (`system:serviceaccount:<ns>:<sa>`): RBAC
 * bindings to that ServiceAccount then apply, and its groups default to that of a service account.
 */
export interface ExtraUser {
  name: string;
  /** Groups besides `system:authenticated` (which the API server adds itself). */
  groups?: string[];
}

/** Options of {@link startFleet}. */
export interface StartFleetOptions {
  clusters: ClusterSpec[];
  /** Parent directory of the fleet's fresh work dir (default: the OS temp dir). */
  workDir?: string;
  /** One etcd for all clusters (default) or one etcd per cluster. */
  sharedEtcd?: boolean;
  extraUsers?: ExtraUser[];
  /** Directory with the binaries; default: env TRO_CONTROLPLANE_BIN, else the output of build.sh. */
  binDir?: string;
  /** Progress lines (default: stderr with a timestamp). */
  log?: (line: string) => void;
  /** Keep the work dir (logs, kubeconfigs) after stop() for debugging; default env TRO_E2E_KEEP_WORKDIR=1. */
  keepWorkDir?: boolean;
  /**
   * Stop the fleet on SIGINT/SIGTERM/SIGHUP and then exit the process (default true). Whatever the value, a
   * process that exits kills the fleet's processes synchronously.
   */
  handleSignals?: boolean;
}

/** Credentials of an extra user in one cluster. */
export interface UserInfo {
  name: string;
  groups: string[];
  token: string;
  context: string;
  kubeconfigPath: string;
}

/** The serialisable description of one cluster (part of the info file). */
export interface ClusterInfo {
  name: string;
  /** Position in the fleet; decides the nodes' InternalIP range 10.<100+index>.0.0/16. */
  index: number;
  nodes: number;
  podsPerNode: number;
  context: string;
  kubeconfigPath: string;
  apiServerURL: string;
  adminToken: string;
  caFile: string;
  etcdPrefix: string;
  dns: { host: string; port: number };
  coreDNSMetricsURL: string;
  coreDNSReadyURL: string;
  coreDNSHealthURL: string;
  users: UserInfo[];
}

/** The info file's content. Contains tokens: the file is mode 0600 inside the fleet's private work dir. */
export interface FleetInfo {
  version: 1;
  /** The process that started the fleet. */
  ownerPid: number;
  workDir: string;
  binDir: string;
  keepWorkDir: boolean;
  createdAt: string;
  /** Seconds from startFleet() to a fleet with every node Ready (binaries already built). */
  startupSeconds?: number;
  processes: ProcessRecord[];
  clusters: ClusterInfo[];
}

/**
 * Handle of one running cluster. Fault controls act on the real processes. A process that a restart
 * starts belongs to the calling process: it is killed when that process dies (run e2e tests in band).
 */
export interface ClusterHandle {
  readonly name: string;
  readonly kubeconfigPath: string;
  /** The admin kubeconfig (CA data and token embedded). */
  readonly kubeconfig: string;
  readonly context: string;
  readonly apiServerURL: string;
  /** Bearer token of a `system:masters` user. Never log it. */
  readonly adminToken: string;
  /** PEM of the CA that signed the API server's serving certificate. */
  readonly caFile: string;
  readonly nodes: number;
  /** Where this cluster's CoreDNS answers (UDP and TCP). */
  readonly dns: { host: string; port: number };
  /** CoreDNS's Prometheus endpoint. */
  readonly coreDNSMetricsURL: string;
  /** Current pid per role (the shared etcd under `etcd` too). Updated by restarts. */
  readonly pids: Partial<Record<Role, number>>;
  /** Extra users' credentials, in the order given to startFleet. */
  readonly users: UserInfo[];
  /** An extra user's credentials by name; throws when unknown. */
  user(name: string): UserInfo;
  /** A client-node KubeConfig for the admin (or the named extra user). */
  kubeConfig(user?: string): KubeConfig;
  /** SIGSTOP the kube-apiserver: connections hang, nothing answers (like an overloaded server). */
  pauseApiServer(): void;
  /** SIGCONT the kube-apiserver. */
  resumeApiServer(): void;
  /** Stop (SIGTERM) and start the kube-apiserver again on the same port; resolves once /readyz is ok. */
  restartApiServer(): Promise<void>;
  /**
   * Stop and start CoreDNS on the same ports; resolves once it serves (/health ok), not when it has
   * synced with the API server, so it can be used while the API server is paused.
   */
  restartCoreDNS(): Promise<void>;
  /** Resolves once CoreDNS reports ready (its kubernetes plugin has synced). */
  waitCoreDNSReady(timeoutMs?: number): Promise<void>;
}

/** A running fleet. */
export interface Fleet {
  readonly workDir: string;
  /** Directory of the binaries the fleet runs (also holds a kubectl of the same version). */
  readonly binDir: string;
  /** Path of the JSON info file; give it to {@link attachFleet} in another process. */
  readonly infoFile: string;
  readonly clusters: ClusterHandle[];
  /** The cluster by name; throws when unknown. */
  cluster(name: string): ClusterHandle;
  /** Every process of the fleet with its current pid. */
  processes(): ProcessRecord[];
  /** Seconds the start took (undefined while starting). */
  readonly startupSeconds: number | undefined;
  /** RSS in KiB of every running process. */
  rss(): Array<{ id: string; role: Role; pid: number; rssKiB: number | undefined }>;
  /** The last `lines` lines of every process's log, with a header per process. */
  logs(lines?: number): string;
  /** Prints {@link logs} to stderr. */
  dumpLogs(lines?: number): void;
  /**
   * Kills every process (SIGCONT, SIGTERM, SIGKILL after 10 s) and removes the work dir. Idempotent;
   * throws if a process survives, after removing what it could.
   */
  stop(): Promise<void>;
}
