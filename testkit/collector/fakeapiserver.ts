/**
 * An in-memory Kubernetes API server double that implements KubeTransport, for unit tests of the
 * ApiClient pipeline and of the modes. It records every request that reached it (what the real API
 * server would count), serves LIST/GET/POST/PUT with resourceVersions and 409 conflicts, streams WATCH
 * events (history replay from a resourceVersion, 410 Gone once compacted, BOOKMARKs on demand), and lets
 * tests inject faults (status codes, hanging requests) per request.
 */
import { abortReason } from '#core/clock.js';
import type { Clock } from '#core/clock.js';
import type { KubeObject } from '../../collector/src/apiclient.js';
import type { KubeRequest, KubeResponse, KubeTransport } from '../../collector/src/transport.js';

/** A request as the fake server saw it. */
export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
  /** Clock time when it arrived (if a clock was given). */
  at: number;
  /** `list` | `watch` | `get` | `create` | `update`. */
  verb: string;
  /** Collection path without namespace, e.g. `/api/v1/pods`. */
  collection: string;
  namespace: string | undefined;
  name: string | undefined;
}

/** A canned answer (for faults). `hang` never answers until the request is aborted. */
export type FakeAnswer = { status: number; body?: unknown; headers?: Record<string, string> } | { hang: true };

/** An async byte stream fed by the test / the fake server, that fails with the abort reason on abort. */
export class ChunkStream implements AsyncIterable<Uint8Array> {
  private queue: Uint8Array[] = [];
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  private readonly signal: AbortSignal;
  constructor(signal: AbortSignal) {
    this.signal = signal;
    signal.addEventListener('abort', () => this.fail(abortReason(signal)), { once: true });
  }

  get closed(): boolean {
    return this.ended || this.failure !== undefined;
  }

  push(text: string): void {
    if (this.closed) return;
    this.queue.push(Buffer.from(text, 'utf8'));
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  fail(err: Error): void {
    if (this.closed) return;
    this.failure = err;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      if (this.failure) throw this.failure;
      const next = this.queue.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }
}

interface Watcher {
  collection: string;
  namespace: string | undefined;
  stream: ChunkStream;
  request: RecordedRequest;
}

interface HistoryEntry {
  rv: number;
  collection: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KubeObject;
}

const PATH_RE = /^\/(?:api\/v1|apis\/([^/]+)\/([^/]+))(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?$/;

function json(status: number, body: unknown, headers: Record<string, string> = {}): KubeResponse {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return {
    status,
    headers: { 'content-type': 'application/json', ...headers },
    body: (async function* () {
      yield Buffer.from(text, 'utf8');
    })(),
  };
}

function status(code: number, reason: string, message: string): unknown {
  return { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message };
}

function key(ns: string | undefined, name: string | undefined): string {
  return `${ns ?? ''}/${name ?? ''}`;
}

/** See the file comment. */
export class FakeApiServer implements KubeTransport {
  readonly requests: RecordedRequest[] = [];
  /** Consulted in order for every request; the first answer wins. Remove entries to clear a fault. */
  readonly faults: ((req: RecordedRequest) => FakeAnswer | undefined)[] = [];
  private rv = 1000;
  private compactedRv = 0;
  private readonly store = new Map<string, Map<string, KubeObject>>();
  private readonly history: HistoryEntry[] = [];
  private readonly watchers = new Set<Watcher>();

  private readonly clock?: Clock;
  constructor(clock?: Clock) {
    this.clock = clock;
  }

  /** The current resourceVersion of the "etcd" behind the server. */
  get resourceVersion(): string {
    return String(this.rv);
  }

  /** Open watch connections. */
  get openWatches(): number {
    return [...this.watchers].filter((w) => !w.stream.closed).length;
  }

  /** Requests matching a verb (and optionally a collection). */
  count(verb: string, collection?: string): number {
    return this.requests.filter((r) => r.verb === verb && (collection === undefined || r.collection === collection)).length;
  }

  /** Stored objects of a collection. */
  objects(collection: string): KubeObject[] {
    return [...(this.store.get(collection)?.values() ?? [])];
  }

  /** Creates or replaces an object (bumping its resourceVersion) and notifies watchers. */
  put(collection: string, obj: KubeObject): KubeObject {
    const items = this.store.get(collection) ?? new Map<string, KubeObject>();
    this.store.set(collection, items);
    const k = key(obj.metadata?.namespace, obj.metadata?.name);
    const type = items.has(k) ? 'MODIFIED' : 'ADDED';
    const stored: KubeObject = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
    items.set(k, stored);
    this.emit({ rv: this.rv, collection, type, object: stored });
    return stored;
  }

  /** Deletes an object and notifies watchers. */
  delete(collection: string, namespace: string | undefined, name: string): void {
    const items = this.store.get(collection);
    const k = key(namespace, name);
    const obj = items?.get(k);
    if (!obj || !items) return;
    items.delete(k);
    const gone: KubeObject = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
    this.emit({ rv: this.rv, collection, type: 'DELETED', object: gone });
  }

  /** Forgets history up to now: watches from an older resourceVersion get 410 Gone; open ones get an ERROR 410. */
  compact(expireOpenWatches = true): void {
    this.compactedRv = this.rv;
    if (!expireOpenWatches) return;
    for (const w of this.watchers) {
      w.stream.push(JSON.stringify({ type: 'ERROR', object: status(410, 'Expired', 'too old resource version') }) + '\n');
      w.stream.end();
    }
    this.watchers.clear();
  }

  /** Sends a BOOKMARK at the current resourceVersion to every open watch that asked for bookmarks. */
  bookmark(): void {
    for (const w of this.watchers) {
      if (w.request.query.allowWatchBookmarks === 'true') {
        w.stream.push(JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: String(this.rv) } } }) + '\n');
      }
    }
  }

  /** Closes every open watch normally (as the server does at timeoutSeconds). */
  closeWatches(): void {
    for (const w of this.watchers) w.stream.end();
    this.watchers.clear();
  }

  private emit(entry: HistoryEntry): void {
    this.history.push(entry);
    for (const w of this.watchers) {
      if (w.stream.closed) {
        this.watchers.delete(w);
        continue;
      }
      if (w.collection !== entry.collection) continue;
      if (w.namespace !== undefined && w.namespace !== entry.object.metadata?.namespace) continue;
      w.stream.push(JSON.stringify({ type: entry.type, object: entry.object }) + '\n');
    }
  }

  async send(req: KubeRequest): Promise<KubeResponse> {
    if (req.signal.aborted) throw abortReason(req.signal);
    const m = PATH_RE.exec(req.path);
    const query = Object.fromEntries(Object.entries(req.query ?? {}).filter((e): e is [string, string] => e[1] !== undefined));
    const group = m?.[1];
    const version = m?.[2];
    const namespace = m?.[3];
    const plural = m?.[4] ?? '';
    const name = m?.[5];
    const collection = group ? `/apis/${group}/${version}/${plural}` : `/api/v1/${plural}`;
    const verb =
      req.method === 'GET'
        ? name
          ? 'get'
          : query.watch === 'true'
            ? 'watch'
            : 'list'
        : req.method === 'POST'
          ? 'create'
          : req.method === 'PUT'
            ? 'update'
            : req.method.toLowerCase();
    const rec: RecordedRequest = {
      method: req.method,
      path: req.path,
      query,
      body: req.body,
      at: this.clock?.nowMs() ?? 0,
      verb,
      collection,
      namespace,
      name,
    };
    this.requests.push(rec);
    // Yield once, like a real round trip, so callers cannot rely on synchronous answers.
    await Promise.resolve();
    for (const fault of this.faults) {
      const answer = fault(rec);
      if (!answer) continue;
      if ('hang' in answer) {
        return new Promise<KubeResponse>((_resolve, reject) => {
          req.signal.addEventListener('abort', () => reject(abortReason(req.signal)), { once: true });
        });
      }
      return json(answer.status, answer.body ?? status(answer.status, 'Fault', 'injected fault'), answer.headers);
    }
    if (!m) return json(404, status(404, 'NotFound', `no route ${req.path}`));
    const items = this.store.get(collection) ?? new Map<string, KubeObject>();
    switch (verb) {
      case 'list': {
        const list = [...items.values()].filter((o) => namespace === undefined || o.metadata?.namespace === namespace);
        return json(200, { kind: 'List', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) }, items: list });
      }
      case 'watch': {
        const from = Number(query.resourceVersion ?? this.rv);
        const stream = new ChunkStream(req.signal);
        if (query.resourceVersion !== undefined && query.resourceVersion !== '0' && from < this.compactedRv) {
          stream.push(JSON.stringify({ type: 'ERROR', object: status(410, 'Expired', 'too old resource version') }) + '\n');
          stream.end();
        } else {
          for (const h of this.history) {
            if (h.rv > from && h.collection === collection && (namespace === undefined || h.object.metadata?.namespace === namespace)) {
              stream.push(JSON.stringify({ type: h.type, object: h.object }) + '\n');
            }
          }
          this.watchers.add({ collection, namespace, stream, request: rec });
        }
        return { status: 200, headers: { 'content-type': 'application/json' }, body: stream };
      }
      case 'get': {
        const obj = items.get(key(namespace, name));
        return obj ? json(200, obj) : json(404, status(404, 'NotFound', `${plural} "${name}" not found`));
      }
      case 'create': {
        const body = req.body as KubeObject;
        const k = key(namespace, body.metadata?.name);
        if (items.has(k)) return json(409, status(409, 'AlreadyExists', `${plural} "${body.metadata?.name}" already exists`));
        return json(201, this.put(collection, { ...body, metadata: { ...body.metadata, namespace } }));
      }
      case 'update': {
        const body = req.body as KubeObject;
        const current = items.get(key(namespace, name));
        if (!current) return json(404, status(404, 'NotFound', `${plural} "${name}" not found`));
        if (body.metadata?.resourceVersion !== current.metadata?.resourceVersion) {
          return json(409, status(409, 'Conflict', 'the object has been modified; please apply your changes to the latest version'));
        }
        return json(200, this.put(collection, { ...body, metadata: { ...body.metadata, namespace, name } }));
      }
      default:
        return json(405, status(405, 'MethodNotAllowed', req.method));
    }
  }
}
