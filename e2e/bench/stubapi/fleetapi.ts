/**
 * A lightweight stand-in for the API servers of many target clusters, served by one Node HTTPS server:
 * virtual cluster `c0001` lives under `https://127.0.0.1:PORT/clusters/c0001`, and each kubeconfig names
 * that URL as its server (the operator's client keeps the path prefix for every request).
 *
 * It serves exactly what the operator's real ClusterClient asks of a target, no more:
 * - `/readyz`, `/version`, `/metrics` (kube-apiserver histograms and counters that stay healthy, so the
 *   gates pass; counters advance with the requests served plus a steady background);
 * - discovery (`/api`, `/api/v1`, `/apis/<group>/<version>`) for client-node's object API;
 * - Nodes: LIST (paged by `limit`), WATCH with bookmarks, held open until its `timeoutSeconds`, merge-PATCH
 *   of labels (each change is a MODIFIED event to the open watches);
 * - any namespaced or cluster object the operator applies (server-side apply PATCH, GET, LIST by label
 *   selector, DELETE, POST, PUT): Namespaces, ServiceAccounts, RBAC, ConfigMaps, DaemonSets, Deployments;
 * - DaemonSet status computed from the nodes: desired = nodes its affinity takes, ready = those labelled
 *   for at least `readyDelayMs`; Pods listed from the DaemonSets (one per node taken) and Deployments.
 *
 * Unknown paths are answered 404 and counted. Every request is counted per cluster and verb, so a
 * benchmark can tell the operator's request rate per target without trusting the operator's own counter.
 */
/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-call -- the stub stores, patches and serves arbitrary Kubernetes JSON, untyped on purpose */
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';

const REVISION_LABEL = 'telemetry.rollout.dev/revision';
const OBJECT_REVISION_LABEL = 'telemetry.rollout.dev/collector-revision';

/** Options of {@link startFleetApi}. */
export interface FleetApiOptions {
  clusters: number;
  nodesPerCluster: number;
  /** A DaemonSet's agent counts ready this long after its node was labelled (default 2000 ms). */
  readyDelayMs?: number;
  /** Seconds between bookmarks on an open watch (default 60, as kube-apiserver). */
  bookmarkSeconds?: number;
  cert: string;
  key: string;
  port?: number;
}

/** Request counts: per verb over all clusters, per cluster, and the paths answered 404. */
export interface FleetApiStats {
  /** verb → requests, summed over the clusters (watch counts the watch requests, not their events). */
  byVerb: Record<string, number>;
  /** cluster → requests. */
  byCluster: Record<string, number>;
  /** Watches open now. */
  openWatches: number;
  /** `METHOD path` of requests answered 404 as unknown, with their counts. */
  unknown: Record<string, number>;
  total: number;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see the file's eslint comment
type Obj = Record<string, any>;

interface Watcher {
  res: ServerResponse;
  lastSent: number;
  timer: NodeJS.Timeout;
}

interface Cluster {
  name: string;
  rv: number;
  nodes: Map<string, Obj>;
  /** When each node got its current revision label (ms). */
  labelledAt: Map<string, number>;
  /** Recent node events for watches that resume from a resourceVersion. */
  events: Array<{ rv: number; type: string; object: Obj }>;
  watchers: Set<Watcher>;
  /** path (without query) → object, for everything the operator applies. */
  objects: Map<string, Obj>;
  requests: number;
  started: number;
}

const EVENT_LOG = 500;

/** Resources this stub knows: plural → kind and whether namespaced, per group/version. */
const RESOURCES: Record<string, Array<{ name: string; kind: string; namespaced: boolean }>> = {
  v1: [
    { name: 'namespaces', kind: 'Namespace', namespaced: false },
    { name: 'nodes', kind: 'Node', namespaced: false },
    { name: 'pods', kind: 'Pod', namespaced: true },
    { name: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true },
    { name: 'configmaps', kind: 'ConfigMap', namespaced: true },
    { name: 'services', kind: 'Service', namespaced: true },
  ],
  'apps/v1': [
    { name: 'daemonsets', kind: 'DaemonSet', namespaced: true },
    { name: 'deployments', kind: 'Deployment', namespaced: true },
  ],
  'rbac.authorization.k8s.io/v1': [
    { name: 'roles', kind: 'Role', namespaced: true },
    { name: 'rolebindings', kind: 'RoleBinding', namespaced: true },
    { name: 'clusterroles', kind: 'ClusterRole', namespaced: false },
    { name: 'clusterrolebindings', kind: 'ClusterRoleBinding', namespaced: false },
  ],
};

function makeNode(cluster: string, i: number, rv: number): Obj {
  const name = `${cluster}-node-${String(i).padStart(3, '0')}`;
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      uid: `${cluster}-${i}-0000-0000-000000000000`,
      resourceVersion: String(rv),
      creationTimestamp: '2026-12-01T00:00:00Z',
      labels: {
        'beta.kubernetes.io/arch': 'amd64',
        'beta.kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'node.kubernetes.io/instance-type': 'm6i.xlarge',
        'topology.kubernetes.io/region': 'eu-west-1',
        'topology.kubernetes.io/zone': `eu-west-1${'abc'[i % 3]}`,
      },
      annotations: { 'node.alpha.kubernetes.io/ttl': '0', 'volumes.kubernetes.io/controller-managed-attach-detach': 'true' },
    },
    spec: { podCIDR: `10.${i % 250}.0.0/24`, providerID: `aws:///eu-west-1a/i-${cluster}${i}` },
    status: {
      capacity: { cpu: '4', memory: '16098196Ki', pods: '110', 'ephemeral-storage': '104845292Ki' },
      allocatable: { cpu: '3920m', memory: '15083412Ki', pods: '110', 'ephemeral-storage': '95551679124' },
      conditions: [
        { type: 'MemoryPressure', status: 'False', reason: 'KubeletHasSufficientMemory', lastHeartbeatTime: '2026-12-01T00:00:00Z' },
        { type: 'DiskPressure', status: 'False', reason: 'KubeletHasNoDiskPressure', lastHeartbeatTime: '2026-12-01T00:00:00Z' },
        { type: 'PIDPressure', status: 'False', reason: 'KubeletHasSufficientPID', lastHeartbeatTime: '2026-12-01T00:00:00Z' },
        { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: '2026-12-01T00:00:00Z' },
      ],
      addresses: [
        { type: 'InternalIP', address: `10.1.${Math.floor(i / 250)}.${i % 250}` },
        { type: 'Hostname', address: name },
      ],
      nodeInfo: { kubeletVersion: 'v1.36.3', containerRuntimeVersion: 'containerd://2.1.0', osImage: 'Ubuntu 24.04', architecture: 'amd64' },
    },
  };
}

/** Does a label selector (equality and existence terms only, as the operator sends) match these labels? */
export function selectorMatches(selector: string | null, labels: Record<string, string> | undefined): boolean {
  if (!selector) return true;
  const l = labels ?? {};
  for (const term of selector.split(',')) {
    const t = term.trim();
    if (t === '') continue;
    const ne = t.indexOf('!=');
    if (ne > 0) {
      if (l[t.slice(0, ne)] === t.slice(ne + 2)) return false;
      continue;
    }
    const eq = t.indexOf('=');
    if (eq > 0) {
      const k = t.slice(0, eq);
      const v = t.slice(t[eq + 1] === '=' ? eq + 2 : eq + 1);
      if (l[k] !== v) return false;
    } else if (t.startsWith('!')) {
      if (t.slice(1) in l) return false;
    } else if (!(t in l)) return false;
  }
  return true;
}

/** Does a DaemonSet's required node affinity take this node? */
function affinityTakes(ds: Obj, node: Obj): boolean {
  const terms: Obj[] = ds.spec?.template?.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  if (terms.length === 0) return true;
  const labels: Record<string, string> = node.metadata.labels ?? {};
  return terms.some((term) =>
    (term.matchExpressions ?? []).every((e: Obj) => {
      const v = labels[e.key as string];
      if (e.operator === 'In') return v !== undefined && (e.values as string[]).includes(v);
      if (e.operator === 'NotIn') return v === undefined || !(e.values as string[]).includes(v);
      if (e.operator === 'Exists') return v !== undefined;
      if (e.operator === 'DoesNotExist') return v === undefined;
      return false;
    }),
  );
}

function mergePatch(target: Obj, patch: Obj): Obj {
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete target[k];
    else if (typeof v === 'object' && !Array.isArray(v) && typeof target[k] === 'object' && target[k] !== null && !Array.isArray(target[k]))
      mergePatch(target[k], v);
    else target[k] = v;
  }
  return target;
}

/** A running stub: its port, request statistics, and stop. */
export interface FleetApi {
  port: number;
  url(cluster: string): string;
  clusterNames: string[];
  stats(): FleetApiStats;
  close(): Promise<void>;
}

/** Cluster names `c0001`… for `n` clusters. */
export function clusterNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `c${String(i + 1).padStart(4, '0')}`);
}

/** Starts the stub; see the file comment. */
export async function startFleetApi(o: FleetApiOptions): Promise<FleetApi> {
  const readyDelayMs = o.readyDelayMs ?? 2000;
  const bookmarkMs = (o.bookmarkSeconds ?? 60) * 1000;
  const names = clusterNames(o.clusters);
  const clusters = new Map<string, Cluster>();
  for (const name of names) {
    const c: Cluster = {
      name,
      rv: 100,
      nodes: new Map(),
      labelledAt: new Map(),
      events: [],
      watchers: new Set(),
      objects: new Map(),
      requests: 0,
      started: Date.now(),
    };
    for (let i = 0; i < o.nodesPerCluster; i++) {
      const n = makeNode(name, i, ++c.rv);
      c.nodes.set(n.metadata.name as string, n);
    }
    clusters.set(name, c);
  }
  const byVerb: Record<string, number> = {};
  const unknown: Record<string, number> = {};
  let total = 0;
  let openWatches = 0;

  const send = (res: ServerResponse, code: number, body: unknown, type = 'application/json'): void => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  };
  const status = (res: ServerResponse, code: number, reason: string, message: string): void =>
    send(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });

  const nodeEvent = (c: Cluster, type: string, node: Obj): void => {
    const rv = Number(node.metadata.resourceVersion);
    c.events.push({ rv, type, object: node });
    if (c.events.length > EVENT_LOG) c.events.splice(0, c.events.length - EVENT_LOG);
    const line = JSON.stringify({ type, object: node }) + '\n';
    for (const w of c.watchers) {
      w.res.write(line);
      w.lastSent = Date.now();
    }
  };

  // One sweep for every open watch's bookmark instead of a timer each.
  const bookmarkSweep = setInterval(() => {
    const now = Date.now();
    for (const c of clusters.values()) {
      for (const w of c.watchers) {
        if (now - w.lastSent < bookmarkMs) continue;
        w.res.write(JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Node', apiVersion: 'v1', metadata: { resourceVersion: String(c.rv) } } }) + '\n');
        w.lastSent = now;
      }
    }
  }, 2000);

  /** The DaemonSet as GET/LIST show it, with a status computed from the nodes now. */
  const withStatus = (c: Cluster, ds: Obj): Obj => {
    if (ds.kind !== 'DaemonSet') return ds;
    const now = Date.now();
    let desired = 0;
    let ready = 0;
    const revision = ds.metadata?.labels?.[OBJECT_REVISION_LABEL] as string | undefined;
    for (const n of c.nodes.values()) {
      if (!affinityTakes(ds, n)) continue;
      desired++;
      const labelled = n.metadata.labels?.[REVISION_LABEL] === revision ? (c.labelledAt.get(n.metadata.name as string) ?? 0) : 0;
      if (now - labelled >= readyDelayMs) ready++;
    }
    const gen = ds.metadata.generation as number;
    return {
      ...ds,
      status: {
        observedGeneration: gen,
        desiredNumberScheduled: desired,
        currentNumberScheduled: desired,
        numberReady: ready,
        numberAvailable: ready,
        updatedNumberScheduled: desired,
        numberMisscheduled: 0,
      },
    };
  };

  const podsOf = (c: Cluster, ns: string): Obj[] => {
    const pods: Obj[] = [];
    const first = c.nodes.keys().next().value;
    for (const [path, obj] of c.objects) {
      if (obj.metadata?.namespace !== ns) continue;
      const tmplLabels = obj.spec?.template?.metadata?.labels ?? {};
      const mk = (name: string, node: string): Obj => ({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: ns, labels: tmplLabels, resourceVersion: String(c.rv) },
        spec: { nodeName: node },
        status: { phase: 'Running' },
      });
      if (obj.kind === 'DaemonSet') {
        for (const n of c.nodes.values()) if (affinityTakes(obj, n)) pods.push(mk(`${obj.metadata.name}-${n.metadata.name}`, n.metadata.name as string));
      } else if (obj.kind === 'Deployment' && (obj.spec?.replicas ?? 1) > 0 && first) {
        pods.push(mk(`${obj.metadata.name}-0`, first));
      }
      void path;
    }
    return pods;
  };

  const metricsText = (c: Cluster): string => {
    // Counters that advance with time (a background of 20 requests/s) and with what this stub served;
    // every request lands in the 50 ms latency bucket: a healthy API server, so the gates pass.
    const n = Math.floor(((Date.now() - c.started) / 1000) * 20) + c.requests;
    const buckets = [0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60];
    const lines: string[] = ['# TYPE apiserver_request_duration_seconds histogram'];
    for (const verb of ['GET', 'LIST']) {
      const base = `component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="${verb}",version="v1"`;
      const count = verb === 'GET' ? n : Math.floor(n / 10);
      for (const le of buckets) lines.push(`apiserver_request_duration_seconds_bucket{${base},le="${le}"} ${le >= 0.05 ? count : Math.floor(count / 2)}`);
      lines.push(`apiserver_request_duration_seconds_bucket{${base},le="+Inf"} ${count}`);
      lines.push(`apiserver_request_duration_seconds_sum{${base}} ${(count * 0.02).toFixed(3)}`);
      lines.push(`apiserver_request_duration_seconds_count{${base}} ${count}`);
    }
    lines.push('# TYPE apiserver_request_total counter');
    lines.push(
      `apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="GET",version="v1"} ${n}`,
    );
    lines.push(
      `apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} ${Math.floor(n / 10)}`,
    );
    lines.push('# TYPE apiserver_flowcontrol_rejected_requests_total counter');
    lines.push('apiserver_flowcontrol_rejected_requests_total{flow_schema="global-default",priority_level="global-default",reason="queue-full"} 0');
    lines.push('# TYPE apiserver_resource_objects gauge');
    lines.push(`apiserver_resource_objects{group="",resource="pods"} ${o.nodesPerCluster * 10}`);
    lines.push(`apiserver_resource_objects{group="",resource="services"} 40`);
    lines.push(`apiserver_resource_objects{group="discovery.k8s.io",resource="endpointslices"} 60`);
    return lines.join('\n') + '\n';
  };

  const readBody = (req: IncomingMessage): Promise<string> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (b: Buffer) => chunks.push(b));
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });

  const count = (c: Cluster, verb: string): void => {
    c.requests++;
    total++;
    byVerb[verb] = (byVerb[verb] ?? 0) + 1;
  };

  const handleNodes = async (c: Cluster, req: IncomingMessage, res: ServerResponse, name: string | undefined, q: URLSearchParams): Promise<void> => {
    if (name === undefined && req.method === 'GET' && q.get('watch') === 'true') {
      count(c, 'watch');
      const since = Number(q.get('resourceVersion') ?? '0');
      if (since > 0 && c.events.length > 0 && since < c.events[0]!.rv - 1 && since < c.rv) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(
          JSON.stringify({
            type: 'ERROR',
            object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: 'too old resource version' },
          }) + '\n',
        );
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
      res.flushHeaders();
      for (const e of c.events) if (e.rv > since) res.write(JSON.stringify({ type: e.type, object: e.object }) + '\n');
      const timeout = Math.max(1, Number(q.get('timeoutSeconds') ?? '1800')) * 1000;
      const w: Watcher = { res, lastSent: Date.now(), timer: setTimeout(() => res.end(), timeout) };
      c.watchers.add(w);
      openWatches++;
      res.on('close', () => {
        clearTimeout(w.timer);
        if (c.watchers.delete(w)) openWatches--;
      });
      return;
    }
    if (name === undefined && req.method === 'GET') {
      count(c, 'list');
      const all = [...c.nodes.values()];
      const limit = Number(q.get('limit') ?? '0');
      const from = Number(q.get('continue') || '0');
      const items = limit > 0 ? all.slice(from, from + limit) : all;
      const more = limit > 0 && from + limit < all.length;
      send(res, 200, {
        kind: 'NodeList',
        apiVersion: 'v1',
        metadata: { resourceVersion: String(c.rv), ...(more ? { continue: String(from + limit) } : {}) },
        items,
      });
      return;
    }
    const node = name === undefined ? undefined : c.nodes.get(name);
    if (req.method === 'GET' && name !== undefined) {
      count(c, 'get');
      if (node) send(res, 200, node);
      else status(res, 404, 'NotFound', `nodes "${name}" not found`);
      return;
    }
    if (req.method === 'PATCH' && node) {
      count(c, 'patch');
      const patch = JSON.parse(await readBody(req)) as Obj;
      const before = node.metadata.labels?.[REVISION_LABEL];
      mergePatch(node, patch);
      const after = node.metadata.labels?.[REVISION_LABEL];
      if (before !== after) c.labelledAt.set(name!, Date.now());
      node.metadata.resourceVersion = String(++c.rv);
      nodeEvent(c, 'MODIFIED', node);
      send(res, 200, node);
      return;
    }
    count(c, 'other');
    status(res, 404, 'NotFound', 'not found');
  };

  const handleObjects = async (c: Cluster, req: IncomingMessage, res: ServerResponse, gv: string, rest: string[], q: URLSearchParams): Promise<boolean> => {
    // rest: [namespaces, ns, plural, name?] or [plural, name?]
    let ns: string | undefined;
    let plural: string;
    let name: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      ns = rest[1];
      plural = rest[2]!;
      name = rest[3];
    } else {
      plural = rest[0]!;
      name = rest[1];
    }
    const res0 = RESOURCES[gv]?.find((r) => r.name === plural);
    if (!res0) return false;
    const base = `/${gv === 'v1' ? 'api' : 'apis'}/${gv}${ns ? `/namespaces/${ns}` : ''}/${plural}`;
    const path = name ? `${base}/${name}` : base;
    if (plural === 'pods' && req.method === 'GET' && !name && ns) {
      count(c, 'list');
      const items = podsOf(c, ns).filter((p) => selectorMatches(q.get('labelSelector'), p.metadata.labels));
      send(res, 200, { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(c.rv) }, items });
      return true;
    }
    if (req.method === 'GET' && !name) {
      count(c, 'list');
      const items: Obj[] = [];
      for (const [p, obj] of c.objects)
        if (p.startsWith(`${base}/`) && selectorMatches(q.get('labelSelector'), obj.metadata?.labels)) items.push(withStatus(c, obj));
      send(res, 200, { kind: `${res0.kind}List`, apiVersion: gv, metadata: { resourceVersion: String(c.rv) }, items });
      return true;
    }
    if (req.method === 'GET') {
      count(c, 'get');
      const obj = c.objects.get(path);
      if (obj) send(res, 200, withStatus(c, obj));
      else status(res, 404, 'NotFound', `${plural} "${name}" not found`);
      return true;
    }
    if (req.method === 'DELETE' && name) {
      count(c, 'delete');
      const obj = c.objects.get(path);
      if (!obj) return (status(res, 404, 'NotFound', `${plural} "${name}" not found`), true);
      c.objects.delete(path);
      c.rv++;
      send(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, kind: plural } });
      return true;
    }
    if ((req.method === 'PATCH' || req.method === 'PUT' || req.method === 'POST') && (name || req.method === 'POST')) {
      count(c, req.method === 'PATCH' ? 'apply' : req.method === 'PUT' ? 'update' : 'create');
      const body = JSON.parse(await readBody(req)) as Obj;
      const key = name ? path : `${base}/${body.metadata?.name as string}`;
      const existing = c.objects.get(key);
      if (req.method === 'POST' && existing) return (status(res, 409, 'AlreadyExists', `${plural} "${body.metadata?.name as string}" already exists`), true);
      if (req.method === 'PUT' && !existing) return (status(res, 404, 'NotFound', `${plural} "${name}" not found`), true);
      const specChanged = !existing || JSON.stringify(existing.spec) !== JSON.stringify(body.spec);
      const next: Obj = {
        ...body,
        apiVersion: gv,
        kind: res0.kind,
        metadata: {
          ...(body.metadata as Obj),
          ...(ns ? { namespace: ns } : {}),
          uid: existing?.metadata?.uid ?? `${c.name}-${c.rv}`,
          resourceVersion: String(++c.rv),
          generation: ((existing?.metadata?.generation as number | undefined) ?? 0) + (specChanged ? 1 : 0),
          creationTimestamp: existing?.metadata?.creationTimestamp ?? new Date().toISOString(),
        },
      };
      c.objects.set(key, next);
      send(res, existing ? 200 : 201, withStatus(c, next));
      return true;
    }
    return false;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'https://stub');
    const m = /^\/clusters\/([^/]+)(\/.*)?$/.exec(url.pathname);
    const c = m ? clusters.get(m[1]!) : undefined;
    if (!c) {
      const k = `${req.method} ${url.pathname}`;
      unknown[k] = (unknown[k] ?? 0) + 1;
      return status(res, 404, 'NotFound', 'no such cluster');
    }
    if (!/^Bearer \S+/.test(req.headers.authorization ?? '')) {
      count(c, 'unauthorized');
      return status(res, 401, 'Unauthorized', 'Unauthorized');
    }
    const p = m![2] ?? '/';
    const q = url.searchParams;
    if (req.method === 'GET' && p === '/readyz') return (count(c, 'get'), send(res, 200, 'ok', 'text/plain'));
    if (req.method === 'GET' && p === '/livez') return (count(c, 'get'), send(res, 200, 'ok', 'text/plain'));
    if (req.method === 'GET' && p === '/version') return (count(c, 'get'), send(res, 200, { major: '1', minor: '36', gitVersion: 'v1.36.3' }));
    if (req.method === 'GET' && p === '/metrics') return (count(c, 'get'), send(res, 200, metricsText(c), 'text/plain; version=0.0.4'));
    if (req.method === 'GET' && p === '/api') return (count(c, 'discovery'), send(res, 200, { kind: 'APIVersions', versions: ['v1'] }));
    const disc = /^\/(?:api|apis)\/(v1|[^/]+\/v1)$/.exec(p);
    if (req.method === 'GET' && disc && RESOURCES[disc[1]!]) {
      count(c, 'discovery');
      return send(res, 200, {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: disc[1],
        resources: RESOURCES[disc[1]!]!.map((r) => ({ ...r, verbs: ['get', 'list', 'patch', 'delete'] })),
      });
    }
    const parts = p.split('/').filter(Boolean);
    // /api/v1/... or /apis/<group>/<version>/...
    const [gv, rest] = parts[0] === 'api' ? [parts[1]!, parts.slice(2)] : parts[0] === 'apis' ? [`${parts[1]}/${parts[2]}`, parts.slice(3)] : ['', []];
    if (gv === 'v1' && rest[0] === 'nodes') return handleNodes(c, req, res, rest[1], q);
    if (gv && rest.length > 0 && (await handleObjects(c, req, res, gv, rest, q))) return;
    count(c, 'unknown');
    const k = `${req.method} ${p}`;
    unknown[k] = (unknown[k] ?? 0) + 1;
    status(res, 404, 'NotFound', `the stub does not serve ${k}`);
  };

  // keepAliveTimeout 0: no `Keep-Alive: timeout=` header and no server-side idle close, as kube-apiserver
  // (Go's net/http sends no such header): the client's own idle timeout decides how long a connection lives.
  const server = https.createServer({ cert: o.cert, key: o.key, keepAliveTimeout: 0, requestTimeout: 0 }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) status(res, 500, 'InternalError', err instanceof Error ? err.message : String(err));
      else res.destroy();
    });
  });
  server.headersTimeout = 60_000;
  server.maxConnections = 100_000;
  await new Promise<void>((resolve) => server.listen(o.port ?? 0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    clusterNames: names,
    url: (cluster) => `https://127.0.0.1:${port}/clusters/${cluster}`,
    stats: () => ({
      byVerb: { ...byVerb },
      byCluster: Object.fromEntries([...clusters.values()].map((c) => [c.name, c.requests])),
      openWatches,
      unknown: { ...unknown },
      total,
    }),
    close: async () => {
      clearInterval(bookmarkSweep);
      for (const c of clusters.values()) for (const w of c.watchers) w.res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
