/**
 * The ONLY path by which the collector talks to the Kubernetes API server.
 *
 * Every call goes through, in order:
 *   1. the kill switch: refused locally (counted as blocked) while the stop file is engaged, and aborted
 *      mid-flight (including a backoff wait or a streaming watch) the moment it engages;
 *   2. the token bucket (unless the agent was built without one: only the Naive mode does that);
 *   3. jittered exponential backoff on 429/5xx/network errors, honouring Retry-After;
 * and is counted in `collector_api_requests_total{verb,resource,code}` and
 * `collector_api_response_bytes_total{verb,resource}`. The kill switch is re-checked after the token
 * wait, since the file may appear while a call is queued.
 *
 * Objects are plain JSON (typed minimally in apitypes.ts, re-exported here): the collector reads a
 * handful of fields and keeping client-node's model classes would cost CPU for (de)serialising dates it
 * never uses.
 */
import type { Clock } from '#core/clock.js';
import { abortReason } from '#core/clock.js';
import { ApiError, NetworkError, StoppedError } from './errors.js';
import { linkSignals } from './signals.js';
import { withBackoff, type BackoffPolicy } from './backoff.js';
import type { KillSwitch } from './killswitch.js';
import type { Logger } from '#core/logger.js';
import { serializeError } from '#core/logger.js';
import type { CollectorMetrics } from './metrics.js';
import type { TokenBucket } from './ratelimit.js';
import type { KubeRequest, KubeResponse, KubeTransport } from './transport.js';
import {
  resourcePath,
  type CallOptions,
  type KubeList,
  type KubeObject,
  type ListParams,
  type ResourceRef,
  type WatchEvent,
  type WatchParams,
  type WatchResult,
} from './apitypes.js';

export {
  RESOURCES,
  resourcePath,
  type CallOptions,
  type KubeList,
  type KubeObject,
  type ListParams,
  type ObjectMeta,
  type ResourceRef,
  type WatchEvent,
  type WatchParams,
  type WatchResult,
} from './apitypes.js';

/** Dependencies of an ApiClient. */
export interface ApiClientOptions {
  transport: KubeTransport;
  killSwitch: KillSwitch;
  /** null only for the Naive mode, which deliberately runs unthrottled (see naive/). */
  rateLimiter: TokenBucket | null;
  backoff: BackoffPolicy;
  clock: Clock;
  metrics: CollectorMetrics;
  logger: Logger;
  /** The agent's lifetime: aborting it cancels every call (shutdown). */
  signal?: AbortSignal;
  random?: () => number;
}

/** Reads a whole body, counting bytes into `onBytes` as they arrive. */
async function readBody(body: AsyncIterable<Uint8Array>, onBytes: (n: number) => void): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) {
    onBytes(chunk.length);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function statusMessage(text: string): string {
  try {
    const obj = JSON.parse(text) as { message?: unknown };
    if (typeof obj.message === 'string') return obj.message;
  } catch {
    // Not a Status object (e.g. an HTML error page from a proxy): fall back to a short excerpt.
  }
  return text.slice(0, 200);
}

function parseJson<T>(buf: Buffer, what: string): T {
  try {
    return JSON.parse(buf.toString('utf8')) as T;
  } catch (err) {
    throw new Error(`${what}: response is not JSON`, { cause: err });
  }
}

/** A Kubernetes API client bound to one agent's kill switch, token bucket, backoff and metrics. */
export class ApiClient {
  private readonly o: ApiClientOptions;
  constructor(o: ApiClientOptions) {
    this.o = o;
  }

  /**
   * GET one object. 404 is an ApiError like any other non-2xx status. `resourceVersion: '0'` lets
   * the API server answer from its watch cache instead of a quorum read from etcd.
   */
  async get<T extends KubeObject>(
    ref: ResourceRef,
    where: { namespace?: string; name: string },
    opts: CallOptions & { resourceVersion?: string } = {},
  ): Promise<T> {
    const path = resourcePath(ref, where);
    const query = { resourceVersion: opts.resourceVersion };
    return this.call('get', ref, opts, async (signal) => {
      const buf = await this.simple({ method: 'GET', path, query, signal }, 'get', ref);
      return parseJson<T>(buf, `get ${path}`);
    });
  }

  /** LIST a collection (cluster-wide when no namespace). Pass resourceVersion '0' unless you need a quorum read. */
  async list<T extends KubeObject>(ref: ResourceRef, params: ListParams = {}, opts: CallOptions = {}): Promise<KubeList<T>> {
    const path = resourcePath(ref, { namespace: params.namespace });
    const query = {
      resourceVersion: params.resourceVersion,
      labelSelector: params.labelSelector,
      fieldSelector: params.fieldSelector,
      limit: params.limit === undefined ? undefined : String(params.limit),
      continue: params.continue,
    };
    return this.call('list', ref, opts, async (signal) => {
      const buf = await this.simple({ method: 'GET', path, query, signal }, 'list', ref);
      const list = parseJson<KubeList<T>>(buf, `list ${path}`);
      if (!Array.isArray(list.items)) list.items = [];
      return list;
    });
  }

  /** POST a new object into `namespace`. */
  async create<T extends KubeObject>(ref: ResourceRef, namespace: string, body: T, opts: CallOptions = {}): Promise<T> {
    const path = resourcePath(ref, { namespace });
    return this.call('create', ref, opts, async (signal) => {
      const buf = await this.simple({ method: 'POST', path, body, signal }, 'create', ref);
      return parseJson<T>(buf, `create ${path}`);
    });
  }

  /**
   * PUT (replace) an object. The body's metadata.resourceVersion makes it an optimistic-concurrency
   * update: a concurrent writer yields 409 Conflict (not retried).
   */
  async replace<T extends KubeObject>(ref: ResourceRef, where: { namespace?: string; name: string }, body: T, opts: CallOptions = {}): Promise<T> {
    const path = resourcePath(ref, where);
    return this.call('update', ref, opts, async (signal) => {
      const buf = await this.simple({ method: 'PUT', path, body, signal }, 'update', ref);
      return parseJson<T>(buf, `update ${path}`);
    });
  }

  /**
   * WATCH a collection from `params.resourceVersion`, delivering ADDED/MODIFIED/DELETED events to
   * `onEvent` until the server closes the stream (resolves with the resume point), an ERROR event
   * arrives (rejects with ApiError; 410 = resourceVersion too old, relist), the stream breaks
   * (NetworkError), or the kill switch / a signal aborts (rejects with the abort reason). Only the
   * connection is retried with backoff; what to do after the stream ends is the caller's loop's
   * decision. A throwing `onEvent` ends the watch with that error.
   */
  async watch<T extends KubeObject>(
    ref: ResourceRef,
    params: WatchParams,
    onEvent: (event: WatchEvent<T>) => void,
    opts: CallOptions = {},
  ): Promise<WatchResult> {
    const path = resourcePath(ref, { namespace: params.namespace });
    const query = {
      watch: 'true',
      resourceVersion: params.resourceVersion,
      labelSelector: params.labelSelector,
      fieldSelector: params.fieldSelector,
      allowWatchBookmarks: params.allowWatchBookmarks ? 'true' : undefined,
      timeoutSeconds: params.timeoutSeconds === undefined ? undefined : String(params.timeoutSeconds),
    };
    const idleMs = params.idleTimeoutMs ?? (params.timeoutSeconds !== undefined ? (params.timeoutSeconds + 30) * 1000 : 600_000);
    const labels = { verb: 'watch', resource: ref.plural };
    // One signal for the whole life of the stream: kill switch (as of now), agent shutdown, caller, and a
    // local controller for the idle watchdog and for releasing the socket when we leave early. It must
    // outlive call(), whose own linked signal is disposed as soon as the connection is established.
    const local = new AbortController();
    const stream = linkSignals([this.o.killSwitch.signal, this.o.signal, opts.signal, local.signal]);
    let watchdogFired = false;
    let res: KubeResponse;
    try {
      // The connection (up to the 200) is retried with backoff; the stream itself is consumed below.
      res = await this.call('watch', ref, { ...opts, signal: stream.signal }, async () => {
        const r = await this.send({ method: 'GET', path, query, signal: stream.signal }, labels);
        if (r.status !== 200) {
          const buf = await readBody(r.body, (n) => this.o.metrics.apiResponseBytes.inc(labels, n));
          const text = buf.toString('utf8');
          throw new ApiError(r.status, `watch ${path}: HTTP ${r.status}: ${statusMessage(text)}`, text, r.headers);
        }
        return r;
      });
    } catch (err) {
      stream.dispose();
      throw err;
    }

    let resourceVersion = params.resourceVersion;
    let events = 0;
    let bookmarks = 0;
    let lastData = this.o.clock.nowMs();
    const watchdogStop = new AbortController();
    const watchdog = (async () => {
      for (;;) {
        try {
          await this.o.clock.sleep(Math.max(1, lastData + idleMs - this.o.clock.nowMs()), watchdogStop.signal);
        } catch {
          return; // the only rejection: watchdogStop, because the stream ended
        }
        if (this.o.clock.nowMs() - lastData >= idleMs) {
          watchdogFired = true;
          local.abort(new NetworkError(`watch ${path}: no data for ${idleMs} ms`));
          return;
        }
      }
    })();

    const decoder = new TextDecoder();
    let pending = '';
    const handleLine = (line: string): void => {
      if (line.trim() === '') return;
      let ev: { type?: string; object?: KubeObject & { code?: number; message?: string; reason?: string } };
      try {
        ev = JSON.parse(line) as typeof ev;
      } catch (err) {
        throw new Error(`watch ${path}: malformed event line`, { cause: err });
      }
      const obj = ev.object;
      if (ev.type === 'ERROR') {
        const code = typeof obj?.code === 'number' ? obj.code : 500;
        throw new ApiError(code, `watch ${path}: ${obj?.reason ?? 'Error'}: ${obj?.message ?? ''}`, obj, {});
      }
      const rv = obj?.metadata?.resourceVersion;
      if (rv) resourceVersion = rv;
      if (ev.type === 'BOOKMARK') {
        bookmarks++;
        return;
      }
      if ((ev.type === 'ADDED' || ev.type === 'MODIFIED' || ev.type === 'DELETED') && obj) {
        events++;
        onEvent({ type: ev.type, object: obj as T });
      }
    };
    try {
      for await (const chunk of res.body) {
        lastData = this.o.clock.nowMs();
        this.o.metrics.apiResponseBytes.inc(labels, chunk.length);
        pending += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          handleLine(line);
        }
      }
      handleLine(pending + decoder.decode());
      return { resourceVersion, events, bookmarks };
    } catch (err) {
      if (stream.signal.aborted) {
        // A dead connection caught by the watchdog is a network failure (the caller rewatches after
        // backoff); any other abort (kill switch, shutdown, caller) is reported as itself.
        if (watchdogFired) throw new NetworkError(`watch ${path}: idle for ${idleMs} ms`, { cause: err });
        throw abortReason(stream.signal);
      }
      throw err;
    } finally {
      // Abort the connection if we leave early (handler error, ERROR event) so the socket is released.
      local.abort(new Error('watch finished'));
      stream.dispose();
      watchdogStop.abort();
      await watchdog;
    }
  }

  /**
   * Sends one request through the transport and counts it: by status code, or as "error" when no status
   * came back (network failure) or "aborted" when the kill switch / shutdown cancelled it in flight.
   */
  private async send(req: KubeRequest, labels: { verb: string; resource: string }): Promise<KubeResponse> {
    let res: KubeResponse;
    try {
      res = await this.o.transport.send(req);
    } catch (err) {
      this.o.metrics.apiRequests.inc({ ...labels, code: req.signal.aborted ? 'aborted' : 'error' });
      throw err;
    }
    this.o.metrics.apiRequests.inc({ ...labels, code: String(res.status) });
    return res;
  }

  /** Sends a non-streaming request and returns the body of a 2xx, or throws ApiError. */
  private async simple(req: KubeRequest, verb: string, ref: ResourceRef): Promise<Buffer> {
    const labels = { verb, resource: ref.plural };
    const res = await this.send(req, labels);
    const buf = await readBody(res.body, (n) => this.o.metrics.apiResponseBytes.inc(labels, n));
    if (res.status < 200 || res.status > 299) {
      const text = buf.toString('utf8');
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // keep the raw text as the exception body
      }
      throw new ApiError(res.status, `${verb} ${req.path}: HTTP ${res.status}: ${statusMessage(text)}`, body, res.headers);
    }
    return buf;
  }

  /** The common pipeline: kill switch → token bucket → backoff → attempt; counts blocked calls and errors. */
  private async call<R>(verb: string, ref: ResourceRef, opts: CallOptions, attempt: (signal: AbortSignal) => Promise<R>): Promise<R> {
    const labels = { verb, resource: ref.plural };
    const ks = this.o.killSwitch;
    if (ks.isStopped()) {
      this.o.metrics.apiBlocked.inc(labels);
      throw new StoppedError(`${verb} ${ref.plural} refused: ${ks.state.detail}`);
    }
    // The kill-switch signal of *this* moment: if the switch stops and later resumes, this call stays
    // cancelled (its caller waits for the resume and starts a fresh call).
    const outer = linkSignals([ks.signal, this.o.signal, opts.signal]);
    try {
      return await withBackoff(
        async () => {
          if (this.o.rateLimiter) await this.o.rateLimiter.take(outer.signal);
          if (ks.isStopped()) {
            this.o.metrics.apiBlocked.inc(labels);
            throw new StoppedError(`${verb} ${ref.plural} refused: ${ks.state.detail}`);
          }
          try {
            return await attempt(outer.signal);
          } catch (err) {
            // Whatever the attempt failed with, an abort is reported as the abort (never retried).
            if (outer.signal.aborted) throw abortReason(outer.signal);
            throw err;
          }
        },
        {
          policy: this.o.backoff,
          clock: this.o.clock,
          signal: outer.signal,
          ...(opts.retries !== undefined ? { retries: opts.retries } : {}),
          ...(this.o.random ? { random: this.o.random } : {}),
          onRetry: ({ error, attempt: n, delayMs }) => {
            this.o.metrics.apiRetries.inc(labels);
            this.o.logger.debug('API call failed, retrying after backoff', {
              verb,
              resource: ref.plural,
              attempt: n,
              delayMs: Math.round(delayMs),
              err: serializeError(error),
            });
          },
        },
      );
    } finally {
      outer.dispose();
    }
  }
}
