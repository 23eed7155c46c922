/**
 * The cluster watcher's in-memory metadata cache. Objects are trimmed to the fields node agents and
 * enrichment need (a Pod in JSON is ~4 KiB; its trimmed form is a few hundred bytes), which keeps the
 * watcher's memory proportional to the cluster but small. Pods are indexed by node for
 * `/metadata/pods?node=X`.
 */
import type { KubeObject, WatchEvent } from '../apiclient.js';
import type { WatchedResource } from '../config.js';

/** Trimmed pod. */
export interface PodMeta {
  namespace: string;
  name: string;
  uid?: string;
  nodeName?: string;
  phase?: string;
  podIP?: string;
  labels: Record<string, string>;
  owner?: { kind: string; name: string };
  containers: { name: string; image?: string }[];
}
/** Trimmed service. */
export interface ServiceMeta {
  namespace: string;
  name: string;
  type?: string;
  clusterIP?: string;
  selector: Record<string, string>;
  ports: { name?: string; port?: number; protocol?: string }[];
}
/** Trimmed EndpointSlice. */
export interface EndpointSliceMeta {
  namespace: string;
  name: string;
  service?: string;
  endpoints: { addresses: string[]; nodeName?: string; ready?: boolean; targetRef?: { kind?: string; name?: string; namespace?: string } }[];
}
/** Trimmed node. */
export interface NodeMeta {
  name: string;
  labels: Record<string, string>;
  addresses: { type?: string; address?: string }[];
}

type Meta = PodMeta | ServiceMeta | EndpointSliceMeta | NodeMeta;

/** The raw fields trimming reads; everything optional because the input is untrusted JSON. */
interface RawFields {
  spec?: {
    nodeName?: string;
    containers?: { name?: string; image?: string }[];
    type?: string;
    clusterIP?: string;
    selector?: Record<string, string>;
    ports?: { name?: string; port?: number; protocol?: string }[];
  };
  status?: { phase?: string; podIP?: string; addresses?: { type?: string; address?: string }[] };
  endpoints?: {
    addresses?: string[];
    nodeName?: string;
    conditions?: { ready?: boolean };
    targetRef?: { kind?: string; name?: string; namespace?: string };
  }[];
}

function trim(resource: WatchedResource, o: KubeObject): Meta {
  const md = o.metadata ?? {};
  const raw = o as RawFields;
  const spec = raw.spec ?? {};
  const status = raw.status ?? {};
  switch (resource) {
    case 'pods': {
      const owner = md.ownerReferences?.find((r) => r.controller) ?? md.ownerReferences?.[0];
      return {
        namespace: md.namespace ?? '',
        name: md.name ?? '',
        ...(md.uid !== undefined ? { uid: md.uid } : {}),
        ...(spec.nodeName !== undefined ? { nodeName: spec.nodeName } : {}),
        ...(status.phase !== undefined ? { phase: status.phase } : {}),
        ...(status.podIP !== undefined ? { podIP: status.podIP } : {}),
        labels: md.labels ?? {},
        ...(owner ? { owner: { kind: owner.kind, name: owner.name } } : {}),
        containers: (spec.containers ?? []).map((c) => ({ name: c.name ?? '', ...(c.image !== undefined ? { image: c.image } : {}) })),
      };
    }
    case 'services':
      return {
        namespace: md.namespace ?? '',
        name: md.name ?? '',
        ...(spec.type !== undefined ? { type: spec.type } : {}),
        ...(spec.clusterIP !== undefined ? { clusterIP: spec.clusterIP } : {}),
        selector: spec.selector ?? {},
        ports: (spec.ports ?? []).map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })),
      };
    case 'endpointslices':
      return {
        namespace: md.namespace ?? '',
        name: md.name ?? '',
        service: md.labels?.['kubernetes.io/service-name'],
        endpoints: (raw.endpoints ?? []).map((e) => ({
          addresses: e.addresses ?? [],
          nodeName: e.nodeName,
          ready: e.conditions?.ready,
          ...(e.targetRef ? { targetRef: { kind: e.targetRef.kind, name: e.targetRef.name, namespace: e.targetRef.namespace } } : {}),
        })),
      };
    case 'nodes':
      return {
        name: md.name ?? '',
        labels: md.labels ?? {},
        addresses: (status.addresses ?? []).map((a) => ({ type: a.type, address: a.address })),
      };
  }
}

function keyOf(o: KubeObject): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}

/** Per-resource stores plus a node → pods index. */
export class MetadataCache {
  private readonly stores = new Map<WatchedResource, Map<string, Meta>>();
  private readonly podsByNode = new Map<string, Map<string, PodMeta>>();
  private readonly rvs = new Map<WatchedResource, string>();
  private readonly synced = new Set<WatchedResource>();

  private store(resource: WatchedResource): Map<string, Meta> {
    let s = this.stores.get(resource);
    if (!s) {
      s = new Map();
      this.stores.set(resource, s);
    }
    return s;
  }

  private indexPod(key: string, pod: PodMeta | undefined, prev: PodMeta | undefined): void {
    if (prev?.nodeName) {
      const m = this.podsByNode.get(prev.nodeName);
      m?.delete(key);
      if (m?.size === 0) this.podsByNode.delete(prev.nodeName);
    }
    if (pod?.nodeName) {
      let m = this.podsByNode.get(pod.nodeName);
      if (!m) {
        m = new Map();
        this.podsByNode.set(pod.nodeName, m);
      }
      m.set(key, pod);
    }
  }

  /** Replaces a resource's contents with a LIST result and marks it synced. */
  replace(resource: WatchedResource, items: KubeObject[], resourceVersion: string | undefined): void {
    const s = this.store(resource);
    s.clear();
    if (resource === 'pods') this.podsByNode.clear();
    for (const o of items) {
      const k = keyOf(o);
      const m = trim(resource, o);
      s.set(k, m);
      if (resource === 'pods') this.indexPod(k, m as PodMeta, undefined);
    }
    if (resourceVersion) this.rvs.set(resource, resourceVersion);
    this.synced.add(resource);
  }

  /** Applies one watch event. */
  apply(resource: WatchedResource, ev: WatchEvent): void {
    const s = this.store(resource);
    const k = keyOf(ev.object);
    const prev = s.get(k);
    if (ev.type === 'DELETED') {
      s.delete(k);
      if (resource === 'pods') this.indexPod(k, undefined, prev as PodMeta | undefined);
    } else {
      const m = trim(resource, ev.object);
      s.set(k, m);
      if (resource === 'pods') this.indexPod(k, m as PodMeta, prev as PodMeta | undefined);
    }
    const rv = ev.object.metadata?.resourceVersion;
    if (rv) this.rvs.set(resource, rv);
  }

  /** Forgets everything (on losing leadership: a follower must not serve stale data). */
  clear(): void {
    this.stores.clear();
    this.podsByNode.clear();
    this.rvs.clear();
    this.synced.clear();
  }

  /** True once a LIST of `resource` has been loaded (and not cleared since). */
  isSynced(resource: WatchedResource): boolean {
    return this.synced.has(resource);
  }

  /** Last known resourceVersion of a resource. */
  resourceVersion(resource: WatchedResource): string | undefined {
    return this.rvs.get(resource);
  }

  /** Pods, all or bound to `node`. */
  pods(node?: string): PodMeta[] {
    if (node !== undefined) return [...(this.podsByNode.get(node)?.values() ?? [])];
    return [...(this.stores.get('pods')?.values() ?? [])] as PodMeta[];
  }

  /** All cached objects of a resource. */
  list(resource: WatchedResource): Meta[] {
    return [...(this.stores.get(resource)?.values() ?? [])];
  }

  /** Object count per resource. */
  counts(): Record<string, number> {
    return Object.fromEntries([...this.stores].map(([r, s]) => [r, s.size]));
  }
}
