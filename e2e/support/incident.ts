/**
 * The incident e2e tests' fixtures: rollouts tuned for compound faults (short gate intervals, a local
 * break-glass transport over the node runtime's node roots), and one target cluster seen as an incident
 * responder sees it: which nodes carry which revision, which agents run or are stopped, which stop
 * files lie on which node, which nodes the transport cannot write to, and where the cluster-mode
 * watcher is allowed to run. Everything that reads nodes' files or agents works without the target's
 * API server, so it can be used while that server is frozen.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterStatus, TelemetryRollout } from '../../operator/src/api/types.generated.js';
import { parseStopFile, parseStopFileName, type StopFile, type StopIssuer } from '../../operator/src/breakglass/stopfile.js';
import { ALLOW_UNSAFE_ANNOTATION } from '../../operator/src/rollout/preflight.js';
import type { ClusterHandle } from '../controlplane/fleet.js';
import { eventually, kubectl, managementCluster } from '../controlplane/testing.js';
import type { AgentInfo, NodeRuntime } from '../noderuntime/api.js';
import { STOP_DIRECTORY_IN_NODE, STOP_FILE_IN_NODE } from '../noderuntime/api.js';
import { RolloutWatcher } from './gatewatch.js';
import { OPERATOR_NAMESPACE } from './operator.js';

/** The node label naming the revision a node runs (operator/src/rollout/interfaces.ts). */
export const REVISION_LABEL = 'telemetry.rollout.dev/revision';
/** The collector's namespace in the targets (the API default). */
export const COLLECTOR_NAMESPACE = 'telemetry-system';
/** The stop directory inside a node root: one file per issuer and revision (`auto-<rev>`, `manual-<rev>`, `manual-all`). */
export const STOP_DIR_IN_NODE = STOP_DIRECTORY_IN_NODE;

/** Options of {@link incidentRollout}. */
export interface IncidentRolloutOptions {
  name: string;
  /** Target cluster names (kubeconfig Secrets `<name>-kubeconfig`, as prepareFleet makes them). */
  targets: string[];
  /** Image tag; a new tag is a new revision. */
  tag: string;
  /** The Naive collector (cluster-wide LISTs from every node: the incident's agent). Default false. */
  naive?: boolean;
  nodeSteps: number[];
  bakeSeconds: number;
  /** Default 50 (the maximum): only scenarios that need a slow rollback slow it down. */
  nodeRelabelQPS?: number;
  /** Clusters progressing at once (one stage holds every target). Default 1. */
  maxConcurrentClusters?: number;
  /** The local transport's root (one directory per node). */
  rootDir: string;
  /** Default 10 (the API minimum). */
  unreachableAfterSeconds?: number;
  /** Default 5: a thawed API server counts as back after a few seconds of answers. */
  reachableAfterSeconds?: number;
}

/**
 * A TelemetryRollout for incident scenarios: one stage over the given targets (as listed), Auto
 * break-glass over the local transport, and gates every 3 s whose only tight bound is the error ratio
 * (5 %): latency bounds are loose because two shared cores make p99 noisy, and the scenarios trip the gate
 * on purpose with an error storm (errorstorm.ts). NoData is ignored for the same reason; the predictive
 * guard is off (the agents are kwok pods that do no work). The unsafe annotation lets the Naive
 * collector through the preflight: it is the agent of the incident.
 */
export function incidentRollout(o: IncidentRolloutOptions): Record<string, unknown> {
  return {
    apiVersion: 'telemetry.rollout.dev/v1alpha1',
    kind: 'TelemetryRollout',
    metadata: { name: o.name, namespace: OPERATOR_NAMESPACE, annotations: { [ALLOW_UNSAFE_ANNOTATION]: 'true' } },
    spec: {
      collector: {
        image: `registry.example/collector:${o.tag}`,
        ...(o.naive ? { config: { metadata: { mode: 'Naive', naiveRelistSeconds: 30 } } } : {}),
      },
      targets: { clusters: o.targets.map((t) => ({ name: t, kubeconfigSecretRef: { name: `${t}-kubeconfig` } })) },
      strategy: {
        order: 'AsListed',
        nodeRelabelQPS: o.nodeRelabelQPS ?? 50,
        stages: [
          {
            name: 'incident',
            clusters: o.targets.length,
            maxConcurrentClusters: o.maxConcurrentClusters ?? 1,
            nodeSteps: o.nodeSteps,
            bakeSeconds: o.bakeSeconds,
          },
        ],
      },
      gates: {
        intervalSeconds: 3,
        windowSeconds: 5,
        scrapeIntervalSeconds: 1,
        failureLimit: 2,
        onFailure: 'Rollback',
        onNoData: 'Ignore',
        apiServer: { maxP99LatencySeconds: 30, maxLatencyIncreaseRatio: 100, maxErrorRatio: 0.05 },
        coreDNS: { cacheTTLSeconds: 0 },
        prediction: { enabled: false },
      },
      breakGlass: {
        unreachableAfterSeconds: o.unreachableAfterSeconds ?? 10,
        reachableAfterSeconds: o.reachableAfterSeconds ?? 5,
        action: 'Auto',
        transport: { type: 'local', local: { rootDir: o.rootDir } },
      },
    },
  };
}

/** Applies a rollout to the management cluster and starts watching it. */
export async function applyRollout(manifest: Record<string, unknown>): Promise<RolloutWatcher> {
  const name = (manifest.metadata as { name: string }).name;
  await kubectl(managementCluster(), ['apply', '-f', '-'], { input: JSON.stringify(manifest) });
  return new RolloutWatcher(managementCluster().kubeConfig(), OPERATOR_NAMESPACE, name).start();
}

/** A JSON merge patch of a rollout's spec (a new collector makes a new revision; strategy edits apply live). */
export async function patchRolloutSpec(name: string, spec: Record<string, unknown>): Promise<void> {
  await kubectl(managementCluster(), ['patch', 'tro', name, '-n', OPERATOR_NAMESPACE, '--type', 'merge', '-p', JSON.stringify({ spec })]);
}

/** Deletes a rollout (no finalizer: whatever it left in a target is the caller's to reset). */
export async function deleteRollout(name: string): Promise<void> {
  await kubectl(managementCluster(), ['delete', 'tro', name, '-n', OPERATOR_NAMESPACE, '--ignore-not-found', '--wait=true']);
}

/** A cluster's entry in a rollout's status. */
export function clusterOf(r: TelemetryRollout | undefined, cluster: string): ClusterStatus | undefined {
  return r?.status?.clusters?.find((c) => c.name === cluster);
}

/** A stop file as found on a node: its file name in the stop directory and its parsed content (or why not). */
export interface StopFileOnDisk {
  file: string;
  /** Who issued it, from its name (`auto`: the operator; `manual`: a person); undefined for a name no issuer makes. */
  issuer?: StopIssuer;
  content?: StopFile;
  error?: string;
}

/** One target cluster during an incident (see the file comment). */
export class IncidentTarget {
  readonly cluster: ClusterHandle;
  readonly rootDir: string;
  readonly runtime: NodeRuntime | undefined;

  constructor(cluster: ClusterHandle, rootDir: string, runtime?: NodeRuntime) {
    this.cluster = cluster;
    this.rootDir = rootDir;
    this.runtime = runtime;
  }

  get name(): string {
    return this.cluster.name;
  }

  /** The cluster's node names, sorted (the order the operator labels them in). Needs the API server. */
  async nodeNames(): Promise<string[]> {
    const out = await kubectl(this.cluster, ['get', 'nodes', '-o', 'jsonpath={.items[*].metadata.name}']);
    return out.trim().split(/\s+/).filter(Boolean).sort();
  }

  /** Nodes whose revision label is `revision`. Needs the API server. */
  async labelled(revision: string): Promise<string[]> {
    const out = await kubectl(this.cluster, ['get', 'nodes', '-l', `${REVISION_LABEL}=${revision}`, '-o', 'jsonpath={.items[*].metadata.name}']);
    return out.trim().split(/\s+/).filter(Boolean).sort();
  }

  /** The node's stop directory on this machine. */
  stopDir(node: string): string {
    return join(this.rootDir, node, STOP_DIR_IN_NODE);
  }

  /**
   * The stop files on a node: every file in its stop directory but the transports' temp files (dot-files,
   * which agents skip too), or only those `issuer` wrote (by name: the operator's are `auto-<rev>`).
   * The legacy single file is not read: nothing writes it any more, and {@link reset} removes it.
   */
  stopFiles(node: string, issuer?: StopIssuer): StopFileOnDisk[] {
    const dir = this.stopDir(node);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
    return readdirSync(dir)
      .filter((f) => !f.startsWith('.'))
      .sort()
      .map((file): StopFileOnDisk => {
        const by = parseStopFileName(file)?.issuer;
        const named = by === undefined ? { file } : { file, issuer: by };
        try {
          return { ...named, content: parseStopFile(readFileSync(join(dir, file), 'utf8')) };
        } catch (err) {
          return { ...named, error: err instanceof Error ? err.message : String(err) };
        }
      })
      .filter((f) => issuer === undefined || f.issuer === issuer);
  }

  /** Node → its stop files (or only `issuer`'s), for the nodes that have any. */
  stopFilesOn(nodes: readonly string[], issuer?: StopIssuer): Map<string, StopFileOnDisk[]> {
    const out = new Map<string, StopFileOnDisk[]>();
    for (const n of nodes) {
      const files = this.stopFiles(n, issuer);
      if (files.length > 0) out.set(n, files);
    }
    return out;
  }

  /** Node → the issuedAt of the operator's stop files naming `revision` (joined when several), for the nodes that have one. */
  issuedAt(nodes: readonly string[], revision: string): Map<string, string> {
    const out = new Map<string, string>();
    for (const n of nodes) {
      const times = this.stopFiles(n, 'auto')
        .filter((f) => f.content?.revision === revision)
        .map((f) => f.content?.issuedAt ?? '');
      if (times.length > 0) out.set(n, times.join(','));
    }
    return out;
  }

  /**
   * Makes a node's stop directory unwritable for the transport, for root too (the operator runs as root
   * here, and root ignores permission bits): the directory is moved aside and a regular file takes its
   * place, so every write or removal under it fails with ENOTDIR. {@link fixNode} undoes it.
   */
  breakNode(node: string): void {
    const dir = this.stopDir(node);
    mkdirSync(dir, { recursive: true });
    renameSync(dir, `${dir}.moved-aside`);
    writeFileSync(dir, 'not a directory: the e2e test broke this node for the break-glass transport\n');
  }

  /** Undoes {@link breakNode} (a no-op for a node that is not broken). */
  fixNode(node: string): void {
    const dir = this.stopDir(node);
    if (existsSync(dir) && !statSync(dir).isDirectory()) rmSync(dir);
    if (existsSync(`${dir}.moved-aside`)) renameSync(`${dir}.moved-aside`, dir);
  }

  /**
   * Deletes a Node object, as a VM that is scaled away leaves its cluster, and returns what registers it
   * again: the same name, labels (but our revision label), annotations, addresses, capacity and node
   * info, created with its status the way the fleet registers its kwok nodes (kwok then makes it Ready;
   * the not-ready taint is lifted by the node-lifecycle controller). The restore waits until it is Ready
   * and untainted, so later scenarios see the fleet as it was. Needs the API server.
   */
  async deleteNode(node: string): Promise<() => Promise<void>> {
    const saved = JSON.parse(await kubectl(this.cluster, ['get', 'node', node, '-o', 'json'])) as SavedNode;
    await kubectl(this.cluster, ['delete', 'node', node, '--wait=true']);
    return async () => {
      const there = (await kubectl(this.cluster, ['get', 'node', node, '--ignore-not-found', '-o', 'name'])).trim();
      if (there === '') {
        const labels = { ...saved.metadata.labels };
        delete labels[REVISION_LABEL];
        const { addresses, capacity, allocatable, nodeInfo } = saved.status;
        const body = {
          apiVersion: 'v1',
          kind: 'Node',
          metadata: { name: node, labels, annotations: saved.metadata.annotations ?? {} },
          spec: {},
          status: { addresses, capacity, allocatable, nodeInfo },
        };
        await kubectl(this.cluster, ['create', '-f', '-'], { input: JSON.stringify(body) });
      }
      await eventually(
        `${this.name}: node ${node} registered again, Ready and untainted`,
        async () => {
          const n = JSON.parse(await kubectl(this.cluster, ['get', 'node', node, '-o', 'json'])) as SavedNode;
          const ready = n.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
          return ready && (n.spec.taints ?? []).length === 0;
        },
        120_000,
        1000,
      );
    };
  }

  /**
   * Lets pods without tolerations (the cluster-mode watcher) schedule only on `node`: every other node
   * is cordoned. DaemonSet pods tolerate cordons, so the node agents are not affected. Only pods
   * scheduled from now on are placed this way. Needs the API server.
   */
  async pinUntoleratedPodsTo(node: string): Promise<void> {
    await kubectl(this.cluster, ['cordon', '-l', `kubernetes.io/hostname!=${node}`]);
    await kubectl(this.cluster, ['uncordon', node]);
  }

  /** Live agents of a revision (node agents and the cluster-mode watcher), from the node runtime. */
  async agentsOf(revision: string): Promise<AgentInfo[]> {
    if (!this.runtime) throw new Error(`${this.name}: no node runtime`);
    return (await this.runtime.agents()).filter((a) => a.revision === revision);
  }

  /**
   * Puts the cluster back as the fleet started it, whatever a scenario left: no collector objects of any
   * rollout (and no agent left in the node runtime), no revision label, no cordon, no broken node, no
   * stop file (any issuer's, nor the legacy single file). Needs the API server.
   */
  async reset(): Promise<void> {
    const nodes = await this.nodeNames();
    for (const n of nodes) {
      this.fixNode(n);
      rmSync(this.stopDir(n), { recursive: true, force: true });
      rmSync(join(this.rootDir, n, STOP_FILE_IN_NODE), { force: true });
    }
    await kubectl(this.cluster, ['uncordon', ...nodes]);
    await kubectl(this.cluster, ['label', 'nodes', '--all', `${REVISION_LABEL}-`]);
    const managed = 'app.kubernetes.io/managed-by=telemetry-rollout';
    await kubectl(this.cluster, ['delete', 'daemonsets,deployments,configmaps', '-n', COLLECTOR_NAMESPACE, '-l', managed, '--ignore-not-found', '--wait=true']);
    await kubectl(this.cluster, ['delete', 'clusterrolebindings', '-l', `${managed},telemetry.rollout.dev/collector-revision`, '--ignore-not-found']);
    await kubectl(this.cluster, [
      'wait',
      '--for=delete',
      'pods',
      '-n',
      COLLECTOR_NAMESPACE,
      '-l',
      'app.kubernetes.io/name=telemetry-collector',
      '--timeout=120s',
    ]).catch(() => undefined);
    if (this.runtime) {
      const deadline = Date.now() + 60_000;
      while ((await this.runtime.agents()).length > 0 && Date.now() < deadline) await sleep(500);
    }
  }
}

/** What {@link IncidentTarget.deleteNode} keeps of a Node to register it again. */
interface SavedNode {
  metadata: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { taints?: unknown[] };
  status: { addresses?: unknown; capacity?: unknown; allocatable?: unknown; nodeInfo?: unknown; conditions?: Array<{ type: string; status: string }> };
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A progress line of the incident suite on stderr; `[report]` lines are figures (never asserted). */
export function report(line: string): void {
  process.stderr.write(`[report] incident: ${line}\n`);
}
