/**
 * The shapes the collector's API client speaks: minimal typings of Kubernetes objects, lists and watch
 * events, the resources it touches and their URL paths, and the parameters of its calls. Split from
 * apiclient.ts, which re-exports all of it.
 */

/** Object metadata fields the collector uses. */
export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: { kind: string; name: string; controller?: boolean }[];
  creationTimestamp?: string;
}

/** Any Kubernetes object, loosely typed. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  [key: string]: unknown;
}

/** A list response. */
export interface KubeList<T extends KubeObject = KubeObject> {
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items: T[];
}

/** One watch event (BOOKMARK and ERROR are handled inside watch() and not delivered). */
export interface WatchEvent<T extends KubeObject = KubeObject> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: T;
}

/** How a watch ended without error. */
export interface WatchResult {
  /** The last resourceVersion seen (event or bookmark), to resume from; the start one if none. */
  resourceVersion: string | undefined;
  /** Events delivered to the handler. */
  events: number;
  /** Bookmarks received. */
  bookmarks: number;
}

/** An API resource: group ('' for core), version, plural. */
export interface ResourceRef {
  group: string;
  version: string;
  plural: string;
}

/** The resources the collector touches. */
export const RESOURCES = {
  pods: { group: '', version: 'v1', plural: 'pods' },
  services: { group: '', version: 'v1', plural: 'services' },
  endpoints: { group: '', version: 'v1', plural: 'endpoints' },
  nodes: { group: '', version: 'v1', plural: 'nodes' },
  endpointslices: { group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices' },
  leases: { group: 'coordination.k8s.io', version: 'v1', plural: 'leases' },
} as const satisfies Record<string, ResourceRef>;

/**
 * The URL path of a collection (no name) or of one object. Without a namespace the collection path is
 * cluster-wide (`/api/v1/pods`), which is exactly what frugal node agents must never list or watch.
 */
export function resourcePath(ref: ResourceRef, where: { namespace?: string | undefined; name?: string | undefined } = {}): string {
  const base = ref.group === '' ? `/api/${ref.version}` : `/apis/${ref.group}/${ref.version}`;
  const ns = where.namespace ? `/namespaces/${encodeURIComponent(where.namespace)}` : '';
  const name = where.name ? `/${encodeURIComponent(where.name)}` : '';
  return `${base}${ns}/${ref.plural}${name}`;
}

/** Per-call options. */
export interface CallOptions {
  /** Cancels this call (in addition to the kill switch and the client's own signal). */
  signal?: AbortSignal;
  /** Retries after the first attempt; default Infinity (until success, stop or shutdown). */
  retries?: number;
}

/** Parameters of a LIST. */
export interface ListParams {
  namespace?: string;
  /**
   * '0' = any version, served from the API server's watch cache (cheap). Omitted = a consistent (quorum)
   * read that goes to etcd, whose cost grows with the number of objects: the incident's pattern.
   */
  resourceVersion?: string;
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
}

/** Parameters of a WATCH. */
export interface WatchParams {
  namespace?: string;
  resourceVersion?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Ask the server for BOOKMARK events, keeping the resume resourceVersion fresh (cheap). */
  allowWatchBookmarks?: boolean;
  /** Server-side timeout of the watch. */
  timeoutSeconds?: number;
  /**
   * Client-side watchdog: abort (as a network error) when no byte arrived for this long. Defaults to
   * timeoutSeconds + 30 s, or 10 minutes.
   */
  idleTimeoutMs?: number;
}
