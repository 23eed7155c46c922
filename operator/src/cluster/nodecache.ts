/**
 * The node inventory of one cluster, kept by one LIST and then a WATCH (an informer of our own), holding
 * only what the operator needs of each node ({@link NodeInfo}: name, a few labels, addresses, Ready):
 * a few hundred bytes per node instead of the full Node object with its images and conditions.
 *
 * In steady state it makes no LIST at all: the watch asks for bookmarks so its resourceVersion stays
 * fresh on a quiet cluster, and a watch that ends (the server's timeoutSeconds, an idle timeout, a
 * broken connection) resumes from the last resourceVersion. Only 410 Gone (the resourceVersion was
 * compacted away) relists. client-node's ListWatch is not used: it stops for good on an error, keeps
 * whole objects and asks for no bookmarks.
 *
 * The loop never stops on an error: it backs off (jittered, up to 30 s) and tries again, and the
 * inventory it has stays readable meanwhile, which is what break-glass needs while an API server is
 * down.
 */
import type { V1Node } from '@kubernetes/client-node';
import { backoffDelayMs, type BackoffPolicy } from '#core/backoff.js';
import type { Clock } from '#core/clock.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/logging.js';
import { REVISION_LABEL, type NodeInfo } from '../rollout/interfaces.js';
import type { WatchEvent } from './watch.js';

/** The node labels kept in {@link NodeInfo.labels}: the revision label and the usual topology labels. */
export const KEPT_NODE_LABELS: readonly string[] = [
  REVISION_LABEL,
  'kubernetes.io/hostname',
  'topology.kubernetes.io/zone',
  'node.kubernetes.io/instance-type',
];

/** The part of a Node the operator keeps (see {@link KEPT_NODE_LABELS}). Works on typed and raw JSON nodes. */
export function nodeInfoOf(node: V1Node): NodeInfo {
  const all = node.metadata?.labels ?? {};
  const labels: Record<string, string> = {};
  for (const k of KEPT_NODE_LABELS) {
    const v = all[k];
    if (v !== undefined) labels[k] = v;
  }
  return {
    name: node.metadata?.name ?? '',
    labels,
    addresses: (node.status?.addresses ?? []).map((a) => ({ type: a.type, address: a.address })),
    ready: node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
  };
}

/**
 * Whether resourceVersion `a` is older than `b`. resourceVersions are opaque to clients, but every
 * kube-apiserver backed by etcd hands out increasing integers; when either is not one, nothing is
 * "older" and the later write wins. Used only so that the result of our own PATCH is not undone by a
 * watch event that predates it.
 */
export function olderResourceVersion(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined || !/^\d+$/.test(a) || !/^\d+$/.test(b)) return false;
  return BigInt(a) < BigInt(b);
}

/** What the cache needs from the cluster (the client wires these to counted API calls). */
export interface NodeCacheSource {
  /** A full LIST of nodes (possibly paginated inside) and the list's resourceVersion. */
  list(signal: AbortSignal): Promise<{ items: V1Node[]; resourceVersion: string }>;
  /**
   * One WATCH from `resourceVersion` (with bookmarks); resolves when the server ends it, rejects on
   * failure (an error with `statusCode` 410 when the resourceVersion is too old).
   */
  watch(resourceVersion: string, signal: AbortSignal, onEvent: (event: WatchEvent) => void): Promise<void>;
}

/** Options of {@link NodeCache}. */
export interface NodeCacheOptions {
  clock: Clock;
  logger: Logger;
  /** First retry delay after a failure (default 1 s), doubling up to `maxBackoffMs` (default 30 s). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Jitter source in [0, 1) (default Math.random). */
  random?: () => number;
}

const isGone = (err: unknown): boolean => (err as { statusCode?: unknown } | null)?.statusCode === 410 || (err as { code?: unknown } | null)?.code === 410;

interface Entry {
  info: NodeInfo;
  resourceVersion: string | undefined;
}

/** See the file comment. Start it lazily with {@link NodeCache.nodes}; stop it with {@link NodeCache.stop}. */
export class NodeCache {
  private entries = new Map<string, Entry>();
  private resourceVersion = '';
  private isSynced = false;
  private loop: Promise<void> | undefined;
  private listing: Promise<void> | undefined;
  private readonly stopper = new AbortController();
  private readonly src: NodeCacheSource;
  private readonly opts: NodeCacheOptions;

  constructor(src: NodeCacheSource, opts: NodeCacheOptions) {
    this.src = src;
    this.opts = opts;
  }

  /** Whether a LIST has filled the cache (it stays readable from then on, even while the watch is down). */
  get synced(): boolean {
    return this.isSynced;
  }

  /** Whether the list+watch loop runs. */
  get started(): boolean {
    return this.loop !== undefined;
  }

  /**
   * Every node, sorted by name. Starts the loop on first use. Before the first LIST has succeeded, it
   * waits for that LIST (joining the loop's own, or starting one), so it never answers from an empty
   * cache; a failure of that LIST rejects. `signal` cancels the wait, not the LIST.
   */
  async nodes(signal?: AbortSignal): Promise<NodeInfo[]> {
    if (this.stopper.signal.aborted) throw new Error('node cache is stopped');
    this.start();
    if (!this.isSynced) await abortable(this.relist(), signal);
    return [...this.entries.values()].map((e) => e.info).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Starts the list+watch loop (idempotent). */
  start(): void {
    if (this.stopper.signal.aborted) return;
    this.loop ??= this.run();
  }

  /**
   * Puts a node we just wrote (the answer of our PATCH) into the cache, so the next read sees our own
   * write without waiting for the watch; a watch event older than it will not undo it.
   */
  observe(node: V1Node): void {
    if (!this.isSynced || node.metadata?.name === undefined) return;
    this.put(node);
  }

  /** Stops the loop and waits for it to end. The cache cannot be restarted. */
  async stop(): Promise<void> {
    this.stopper.abort(new DOMException('node cache stopped', 'AbortError'));
    await this.loop;
  }

  private put(node: V1Node): void {
    const name = node.metadata?.name;
    if (name === undefined) return;
    const rv = node.metadata?.resourceVersion;
    const current = this.entries.get(name);
    if (current && olderResourceVersion(rv, current.resourceVersion)) return;
    this.entries.set(name, { info: nodeInfoOf(node), resourceVersion: rv });
  }

  /** One LIST at a time: concurrent callers share it. */
  private relist(): Promise<void> {
    this.listing ??= (async () => {
      try {
        const { items, resourceVersion } = await this.src.list(this.stopper.signal);
        const fresh = new Map<string, Entry>();
        for (const n of items) {
          if (n.metadata?.name !== undefined) fresh.set(n.metadata.name, { info: nodeInfoOf(n), resourceVersion: n.metadata.resourceVersion });
        }
        this.entries = fresh;
        this.resourceVersion = resourceVersion;
        this.isSynced = true;
      } finally {
        this.listing = undefined;
      }
    })();
    return this.listing;
  }

  private onEvent(e: WatchEvent): void {
    // Called from the watch's data handler: it must not throw, whatever arrives.
    try {
      const obj = e.object as unknown as V1Node & { code?: unknown };
      if (e.type === 'ERROR') {
        if (obj.code === 410) this.resourceVersion = '';
        return;
      }
      const rv = obj.metadata?.resourceVersion;
      if (e.type === 'ADDED' || e.type === 'MODIFIED') this.put(obj);
      else if (e.type === 'DELETED' && obj.metadata?.name !== undefined) {
        const current = this.entries.get(obj.metadata.name);
        if (!current || !olderResourceVersion(rv, current.resourceVersion)) this.entries.delete(obj.metadata.name);
      }
      if (rv !== undefined && rv !== '' && this.resourceVersion !== '') this.resourceVersion = rv;
    } catch (err) {
      this.opts.logger.warn('node watch: could not apply an event', { error: errorMessage(err) });
    }
  }

  private backoffMs(failures: number): number {
    const policy: BackoffPolicy = { initialMs: this.opts.minBackoffMs ?? 1000, maxMs: this.opts.maxBackoffMs ?? 30_000, jitter: 0.5, jitterMode: 'around' };
    return Math.round(backoffDelayMs(failures, policy, this.opts.random ?? Math.random));
  }

  private async run(): Promise<void> {
    const stop = this.stopper.signal;
    let failures = 0;
    while (!stop.aborted) {
      try {
        if (this.resourceVersion === '') {
          await this.relist();
          failures = 0;
        }
        const started = this.opts.clock.now().getTime();
        let events = 0;
        await this.src.watch(this.resourceVersion, stop, (e) => {
          events++;
          this.onEvent(e);
        });
        // A watch the server closes at once, again and again, would spin: treat it like a failure.
        if (events === 0 && this.opts.clock.now().getTime() - started < 1000) {
          failures++;
          await this.opts.clock.sleep(this.backoffMs(failures), stop);
        } else {
          failures = 0;
        }
      } catch (err) {
        if (stop.aborted) break;
        if (isGone(err)) {
          // Our resourceVersion was compacted away: only a new LIST can resume.
          this.resourceVersion = '';
          continue;
        }
        failures++;
        const delayMs = this.backoffMs(failures);
        this.opts.logger.warn('node cache: list/watch failed; retrying', { error: errorMessage(err), failures, delayMs });
        try {
          await this.opts.clock.sleep(delayMs, stop);
        } catch {
          // Stopped while waiting: the loop condition ends it.
        }
      }
    }
  }
}

/** `p`, or a rejection with the signal's reason as soon as `signal` aborts (p keeps running). */
function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: Error) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
