/**
 * A steady-state model of the load a collector configuration puts on one cluster's API server, for the
 * operator's preflight ("predict the load at 100% before going there"). It is a
 * model, not a measurement: the constants below say where they come from, and the e2e benchmark
 * (`npm run bench:collector`) is where they get checked against a real API server.
 *
 * Shape of the result:
 * - Naive: every node agent LISTs pods, services and endpoints without resourceVersion every
 *   naiveRelistSeconds and keeps 3 cluster-wide watches: O(nodes × objects) bytes and O(nodes) quorum
 *   LISTs per second.
 * - Kubelet (frugal): node agents read their kubelet (not the API server) and GET their own Node every
 *   300 s: O(nodes) tiny requests; plus one leader-elected watcher: O(1) watches, a relist only after 410.
 */
import type { CollectorConfig, CollectorConfigInput } from './config.js';
import { resolveConfig } from './config.js';

/**
 * Serialized JSON size per object, bytes. Sources and reasoning:
 * - pod 4 KiB: `kubectl get pods -o json` on typical Deployments gives 3–6 KiB per pod with
 *   managedFields; sig-scalability's load test pods are ~2–4 KiB. 4 KiB is a middle figure.
 * - service 1 KiB: metadata + a couple of ports + managedFields.
 * - node 8 KiB: Node objects carry status.images (often 50+ images), conditions and capacity: 5–15 KiB.
 * - endpoints: ~400 B of metadata per object plus ~120 B per address (ip, nodeName, targetRef).
 * - EndpointSlice: ~500 B per slice plus ~200 B per endpoint (conditions, zone, targetRef, nodeName).
 * - lease ~400 B; a watch event adds ~30 B of envelope to the object.
 */
export const OBJECT_BYTES = {
  pod: 4096,
  service: 1024,
  node: 8192,
  endpointsObject: 400,
  endpointsPerAddress: 120,
  endpointSlice: 500,
  endpointSlicePerEndpoint: 200,
  lease: 400,
  watchEventEnvelope: 30,
} as const;

/** Per-object serialized sizes the model uses; {@link OBJECT_BYTES} unless the caller measured its own. */
export type ObjectBytes = { readonly [K in keyof typeof OBJECT_BYTES]: number };

/**
 * Behaviour constants of the agent and of Kubernetes that the model uses:
 * - nodeInfoRefreshSeconds: the frugal node agent's GET of its own Node (node/agent.ts, default 300 s);
 * - watchTimeoutSeconds: mean server-side watch timeout, client-go style random [300, 600) s → 450 s,
 *   after which each watch is re-established (a new WATCH request);
 * - watcherRelistSeconds: how often the cluster watcher is assumed to relist after a 410 (with
 *   bookmarks a 410 is rare; one per resource per hour is a pessimistic figure);
 * - leaseRetrySeconds: client-go's retry period: the leader GETs+PUTs, followers GET, every 2 s;
 * - churnPerPodPerSecond: watch events per pod per second when the caller gives no churn: a pod changes
 *   about every 15 minutes on average (rollouts, status updates, probes flapping): 1/900.
 * - gzipThresholdBytes, gzipRatio: the API server gzips GET and LIST responses above 128 KiB when the
 *   client accepts it (APIResponseCompression, GA; level 1 since 1.26), never watch streams. Measured on
 *   the local control plane (v1.36, 100 kwok nodes, 500 pause pods): a pods LIST is 2,229,134 B of JSON
 *   (4.4 KiB per pod, so OBJECT_BYTES.pod holds) and 142,881 B gzipped (ratio 0.064); a 100-node LIST
 *   391,895 → 18,867 B (0.048). Those objects are unusually alike; real pods differ more, so the model
 *   uses 0.1. This only changes the network figure: the API server still encodes every object, which is
 *   why budgets are checked against the serialized bytes. e2e/collector.e2e.test.ts prints both again.
 */
export const MODEL = {
  nodeInfoRefreshSeconds: 300,
  watchTimeoutSeconds: 450,
  watcherRelistSeconds: 3600,
  leaseRetrySeconds: 2,
  watcherReplicas: 2,
  churnPerPodPerSecond: 1 / 900,
  gzipThresholdBytes: 128 * 1024,
  gzipRatio: 0.1,
} as const;

/** Size of the cluster the estimate is for. */
export interface ClusterSize {
  nodes: number;
  pods: number;
  services: number;
  endpointSlices: number;
  /** Object changes per second cluster-wide (pods); default pods × MODEL.churnPerPodPerSecond. */
  podChurnPerSecond?: number;
}

/** One line of the estimate. */
export interface LoadComponent {
  /** What makes the requests, e.g. `node agents: naive LIST pods (quorum)`. */
  component: string;
  /** How many instances contribute (agents or replicas). */
  instances: number;
  verb: 'list' | 'watch' | 'get' | 'update';
  /** Whole-cluster figures (all instances). */
  requestsPerSecond: number;
  /** Serialized response bytes/s: what the API server encodes. */
  bytesPerSecond: number;
  /** Bytes/s on the network after the API server's gzip of large GET/LIST responses. */
  wireBytesPerSecond: number;
  watchConnections: number;
  /** LISTs without resourceVersion: consistent reads that go to etcd. */
  quorumListsPerSecond: number;
}

/** The estimate for the whole cluster (all node agents plus the cluster watcher). */
export interface LoadEstimate {
  mode: CollectorConfig['metadata']['mode'];
  cluster: Required<ClusterSize>;
  /** API server requests per second (a WATCH counts once, when established). */
  requestsPerSecond: number;
  /**
   * Serialized response bytes per second (LIST bodies, watch events, GETs): the encoding work the API
   * server does, and what the budget checks.
   */
  bytesPerSecond: number;
  /** The same responses on the network, after gzip of GET/LIST bodies above 128 KiB. */
  wireBytesPerSecond: number;
  listRequestsPerSecond: number;
  /** LISTs per second without resourceVersion (etcd range reads over every object). */
  quorumListsPerSecond: number;
  /** Concurrently open watch connections. */
  watchConnections: number;
  /** Node-local kubelet traffic (not on the API server), for completeness. */
  kubelet: { requestsPerSecond: number; bytesPerSecond: number };
  breakdown: LoadComponent[];
  /** A human-readable summary with the numbers, for a status condition message. */
  explanation: string;
}

function fmtRate(n: number): string {
  if (n >= 100) return n.toFixed(0);
  if (n >= 1) return n.toFixed(1);
  return n.toPrecision(2);
}

/** Formats bytes/s with binary units. */
export function formatBytesPerSecond(b: number): string {
  const units = ['B/s', 'KiB/s', 'MiB/s', 'GiB/s'];
  let v = b;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

function collectionBytes(size: Required<ClusterSize>, b: ObjectBytes) {
  // Each pod backs about one service, so addresses ≈ pods in both Endpoints and EndpointSlices.
  return {
    pods: size.pods * b.pod,
    services: size.services * b.service,
    endpoints: size.services * b.endpointsObject + size.pods * b.endpointsPerAddress,
    endpointslices: size.endpointSlices * b.endpointSlice + size.pods * b.endpointSlicePerEndpoint,
    nodes: size.nodes * b.node,
  };
}

/** Bytes on the wire for `count` responses of `size` bytes each (gzip above the threshold). */
export function wireBytes(size: number, count = 1): number {
  return count * (size > MODEL.gzipThresholdBytes ? size * MODEL.gzipRatio : size);
}

/**
 * Watch bytes/s for one watcher of a resource: changes × (object + envelope). Pod churn drives pods and
 * the endpoint objects that list them; services and nodes change rarely (a status heartbeat goes to
 * Leases, not Nodes, since 1.17) and are modelled at 1/100 of the pod churn.
 */
function watchBytesPerSecond(resource: keyof ReturnType<typeof collectionBytes>, size: Required<ClusterSize>, b: ObjectBytes): number {
  const churn = size.podChurnPerSecond;
  const ev = b.watchEventEnvelope;
  const perEndpoints = size.services > 0 ? b.endpointsObject + (size.pods / size.services) * b.endpointsPerAddress : 0;
  const perSlice = size.endpointSlices > 0 ? b.endpointSlice + (size.pods / size.endpointSlices) * b.endpointSlicePerEndpoint : 0;
  switch (resource) {
    case 'pods':
      return churn * (b.pod + ev);
    case 'endpoints':
      return churn * (perEndpoints + ev);
    case 'endpointslices':
      return churn * (perSlice + ev);
    case 'services':
      return (churn / 100) * (b.service + ev);
    case 'nodes':
      return (churn / 100) * (b.node + ev);
  }
}

/**
 * Estimates the steady-state API server load of `config` on a cluster of the given size: every node
 * agent (× nodes) plus the cluster watcher (when enabled). `objectBytes` replaces the typical object
 * sizes when the caller knows the cluster's own (a cluster of tiny test pods is far below 4 KiB a pod).
 * Pure; never throws for non-negative sizes.
 */
export function estimateApiLoad(config: CollectorConfig | CollectorConfigInput, size: ClusterSize, objectBytes: ObjectBytes = OBJECT_BYTES): LoadEstimate {
  const c = resolveConfig(config);
  const s: Required<ClusterSize> = {
    ...size,
    podChurnPerSecond: size.podChurnPerSecond ?? size.pods * MODEL.churnPerPodPerSecond,
  };
  const ob = objectBytes;
  const bytes = collectionBytes(s, ob);
  const breakdown: LoadComponent[] = [];
  const add = (x: Omit<LoadComponent, 'quorumListsPerSecond' | 'wireBytesPerSecond'> & { quorumListsPerSecond?: number }) => {
    // GET and LIST bodies over the threshold are gzipped; watch streams never are.
    const each = x.requestsPerSecond > 0 ? x.bytesPerSecond / x.requestsPerSecond : 0;
    const wireBytesPerSecond = x.verb === 'watch' ? x.bytesPerSecond : wireBytes(each, x.requestsPerSecond);
    breakdown.push({ quorumListsPerSecond: 0, wireBytesPerSecond, ...x });
  };

  // Every node agent reads its own Node every 300 s (a GET with resourceVersion=0, from the watch cache).
  add({
    component: 'node agents: GET own Node (rv=0)',
    instances: s.nodes,
    verb: 'get',
    requestsPerSecond: s.nodes / MODEL.nodeInfoRefreshSeconds,
    bytesPerSecond: (s.nodes * ob.node) / MODEL.nodeInfoRefreshSeconds,
    watchConnections: 0,
  });

  if (c.metadata.mode === 'Naive') {
    const relist = c.metadata.naiveRelistSeconds;
    for (const resource of ['pods', 'services', 'endpoints'] as const) {
      add({
        component: `node agents: naive LIST ${resource} cluster-wide, no resourceVersion (quorum)`,
        instances: s.nodes,
        verb: 'list',
        requestsPerSecond: s.nodes / relist,
        bytesPerSecond: (s.nodes * bytes[resource]) / relist,
        watchConnections: 0,
        quorumListsPerSecond: s.nodes / relist,
      });
      add({
        component: `node agents: naive WATCH ${resource} cluster-wide (re-established every relist)`,
        instances: s.nodes,
        verb: 'watch',
        requestsPerSecond: s.nodes / relist,
        bytesPerSecond: s.nodes * watchBytesPerSecond(resource, s, ob),
        watchConnections: s.nodes,
      });
    }
  }

  if (c.clusterWatcher.enabled) {
    const replicas = MODEL.watcherReplicas;
    // Leader: GET + PUT every retry period; each follower: GET every retry period.
    const leaseRps = (2 + (replicas - 1)) / MODEL.leaseRetrySeconds;
    add({
      component: `cluster watcher: Lease election (${replicas} replicas)`,
      instances: replicas,
      verb: 'update',
      requestsPerSecond: leaseRps,
      bytesPerSecond: leaseRps * ob.lease,
      watchConnections: 0,
    });
    for (const resource of c.clusterWatcher.resources) {
      add({
        component: `cluster watcher: LIST ${resource} (rv=0, watch cache) after 410`,
        instances: 1,
        verb: 'list',
        requestsPerSecond: 1 / MODEL.watcherRelistSeconds,
        bytesPerSecond: bytes[resource] / MODEL.watcherRelistSeconds,
        watchConnections: 0,
      });
      add({
        component: `cluster watcher: WATCH ${resource}`,
        instances: 1,
        verb: 'watch',
        requestsPerSecond: 1 / MODEL.watchTimeoutSeconds,
        bytesPerSecond: watchBytesPerSecond(resource, s, ob),
        watchConnections: 1,
      });
    }
  }

  const sum = (f: (x: LoadComponent) => number) => breakdown.reduce((a, x) => a + f(x), 0);
  const requestsPerSecond = sum((x) => x.requestsPerSecond);
  const bytesPerSecond = sum((x) => x.bytesPerSecond);
  const wireBytesPerSecond = sum((x) => x.wireBytesPerSecond);
  const listRequestsPerSecond = sum((x) => (x.verb === 'list' ? x.requestsPerSecond : 0));
  const quorumListsPerSecond = sum((x) => x.quorumListsPerSecond);
  const watchConnections = sum((x) => x.watchConnections);
  const kubelet =
    c.metadata.mode === 'Kubelet' && c.collect.containers
      ? { requestsPerSecond: s.nodes / c.intervalSeconds, bytesPerSecond: (s.pods * ob.pod) / c.intervalSeconds }
      : { requestsPerSecond: 0, bytesPerSecond: 0 };

  const sizeText = `${s.nodes} nodes, ${s.pods} pods, ${s.services} services, ${s.endpointSlices} EndpointSlices`;
  const totals = `${fmtRate(requestsPerSecond)} req/s, ${formatBytesPerSecond(bytesPerSecond)} serialized (${formatBytesPerSecond(wireBytesPerSecond)} on the wire), ${fmtRate(listRequestsPerSecond)} LIST/s (${fmtRate(quorumListsPerSecond)} quorum reads from etcd), ${watchConnections} open watches`;
  const explanation =
    c.metadata.mode === 'Naive'
      ? `Naive metadata mode on ${sizeText}: each of the ${s.nodes} node agents LISTs pods, services and endpoints ` +
        `cluster-wide without resourceVersion (quorum reads from etcd) every ${c.metadata.naiveRelistSeconds} s and keeps 3 ` +
        `cluster-wide watches, so the load grows with nodes × objects: ${totals}.`
      : `Kubelet metadata mode on ${sizeText}: node agents read pods from their local kubelet ` +
        `(${fmtRate(kubelet.requestsPerSecond)} req/s to kubelets, none to the API server) and GET their own Node every ` +
        `${MODEL.nodeInfoRefreshSeconds} s; ${c.clusterWatcher.enabled ? `one leader-elected watcher keeps ${c.clusterWatcher.resources.length} watches` : 'no cluster watcher'}: ${totals}.`;

  return {
    mode: c.metadata.mode,
    cluster: s,
    requestsPerSecond,
    bytesPerSecond,
    wireBytesPerSecond,
    listRequestsPerSecond,
    quorumListsPerSecond,
    watchConnections,
    kubelet,
    breakdown,
    explanation,
  };
}

/** What the collector may cost one cluster's API server. Unset limits are not checked. */
export interface ApiLoadBudget {
  maxRequestsPerSecond?: number;
  maxBytesPerSecond?: number;
  /** LISTs without resourceVersion (etcd range reads) per second. */
  maxQuorumListsPerSecond?: number;
  maxWatchConnections?: number;
}

/**
 * A default budget for a telemetry agent's share of one API server: 50 req/s (an eighth of the default
 * --max-requests-inflight=400 if each took 1 s; in practice far less), 8 MiB/s of response bodies, one
 * quorum LIST per second (each one is an etcd range read over all objects of the type, and ~5× its size
 * in API server memory), and 1000 watches (the default watch cache handles many thousands, but each
 * watcher receives every event). The frugal mode stays far inside it at any cluster size; the Naive mode
 * leaves it at a few dozen nodes with a few thousand pods.
 */
export const DEFAULT_API_BUDGET: Required<ApiLoadBudget> = {
  maxRequestsPerSecond: 50,
  maxBytesPerSecond: 8 * 1024 * 1024,
  maxQuorumListsPerSecond: 1,
  maxWatchConnections: 1000,
};

/** Every budget line the estimate exceeds, as sentences with the numbers (empty when within budget). */
export function budgetViolations(estimate: LoadEstimate, budget: ApiLoadBudget = DEFAULT_API_BUDGET): string[] {
  const out: string[] = [];
  if (budget.maxRequestsPerSecond !== undefined && estimate.requestsPerSecond > budget.maxRequestsPerSecond) {
    out.push(`${fmtRate(estimate.requestsPerSecond)} req/s exceeds the budget of ${budget.maxRequestsPerSecond} req/s`);
  }
  if (budget.maxBytesPerSecond !== undefined && estimate.bytesPerSecond > budget.maxBytesPerSecond) {
    out.push(
      `${formatBytesPerSecond(estimate.bytesPerSecond)} of serialized responses exceeds the budget of ${formatBytesPerSecond(budget.maxBytesPerSecond)}`,
    );
  }
  if (budget.maxQuorumListsPerSecond !== undefined && estimate.quorumListsPerSecond > budget.maxQuorumListsPerSecond) {
    out.push(`${fmtRate(estimate.quorumListsPerSecond)} quorum LIST/s exceeds the budget of ${budget.maxQuorumListsPerSecond}/s`);
  }
  if (budget.maxWatchConnections !== undefined && estimate.watchConnections > budget.maxWatchConnections) {
    out.push(`${estimate.watchConnections} watch connections exceed the budget of ${budget.maxWatchConnections}`);
  }
  return out;
}

/**
 * The operator's preflight check: true when the estimate is for the Naive mode and exceeds `budget` on
 * any line. (A frugal configuration is never "naive-unsafe"; use budgetViolations for a general check.)
 * Put `estimate.explanation` and budgetViolations() in the condition message.
 */
export function isNaiveUnsafe(estimate: LoadEstimate, budget: ApiLoadBudget = DEFAULT_API_BUDGET): boolean {
  return estimate.mode === 'Naive' && budgetViolations(estimate, budget).length > 0;
}
