/**
 * The HTTP boundary to the Kubernetes API server, behind a narrow interface so the ApiClient pipeline
 * (kill switch → token bucket → backoff → metrics) can be unit-tested against an in-memory fake.
 *
 * The real implementation uses client-node's own request machinery (KubeConfig authentication, TLS
 * dispatcher, undici fetch via IsomorphicFetchHttpLibrary) rather than its generated typed APIs, because
 * the collector needs three things the typed APIs hide: an AbortSignal on every request, the exact
 * number of response bytes, and streaming watch bodies that can be aborted before headers arrive.
 */
import { IsomorphicFetchHttpLibrary, RequestContext, type KubeConfig } from '@kubernetes/client-node';
import { abortReason } from './clock.js';
import { NetworkError } from './errors.js';

/** One request to the API server. */
export interface KubeRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Absolute API path without query, e.g. `/api/v1/pods`. */
  path: string;
  /** Query parameters; undefined values are omitted. */
  query?: Record<string, string | undefined>;
  /** JSON body (serialised by the transport). */
  body?: unknown;
  /** Aborting cancels the request, including a body being streamed. */
  signal: AbortSignal;
}

/** A response whose status is known; the body is streamed. */
export interface KubeResponse {
  status: number;
  /** Lower-case header names. */
  headers: Record<string, string>;
  /** Body chunks; must be consumed to the end or abandoned by aborting the request's signal. */
  body: AsyncIterable<Uint8Array>;
}

/**
 * Sends requests. Rejects with NetworkError when no HTTP status was obtained, and with the signal's
 * reason when aborted.
 */
export interface KubeTransport {
  send(req: KubeRequest): Promise<KubeResponse>;
}

/** Builds the query string of a request. */
export function buildQuery(query: Record<string, string | undefined> | undefined): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) params.set(k, v);
  const s = params.toString();
  return s ? `?${s}` : '';
}

async function* iterateStream(stream: ReadableStream<Uint8Array>, signal: AbortSignal): AsyncIterable<Uint8Array> {
  const reader = stream.getReader();
  try {
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (err) {
        if (signal.aborted) throw abortReason(signal);
        throw new NetworkError(`reading response body: ${(err as Error).message}`, { cause: err });
      }
      if (chunk.done) return;
      yield chunk.value;
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * KubeTransport over a client-node KubeConfig (kubeconfig file, in-cluster service account, or one
 * loaded from a string). One instance per agent: its connection pool is shared by that agent's
 * requests only, as in a real per-node agent.
 */
export class ClientNodeTransport implements KubeTransport {
  private readonly http = new IsomorphicFetchHttpLibrary();

  private readonly kc: KubeConfig;
  private readonly userAgent: string;
  constructor(
    kc: KubeConfig,
    userAgent: string) {
    this.kc = kc;
    this.userAgent = userAgent;
  }

  async send(req: KubeRequest): Promise<KubeResponse> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const url = cluster.server.replace(/\/+$/, '') + req.path + buildQuery(req.query);
    const ctx = new RequestContext(url, req.method);
    await this.kc.applySecurityAuthentication(ctx);
    ctx.setHeaderParam('User-Agent', this.userAgent);
    ctx.setHeaderParam('Accept', 'application/json');
    if (req.body !== undefined) {
      ctx.setHeaderParam('Content-Type', 'application/json');
      ctx.setBody(JSON.stringify(req.body));
    }
    ctx.setSignal(req.signal);
    req.signal.throwIfAborted();
    let res;
    try {
      res = await this.http.send(ctx).toPromise();
    } catch (err) {
      if (req.signal.aborted) throw abortReason(req.signal);
      // The URL is logged, never the headers: they carry the bearer token.
      throw new NetworkError(`${req.method} ${req.path}: ${(err as Error).message}`, { cause: err });
    }
    const stream = res.body.stream();
    return {
      status: res.httpStatusCode,
      headers: res.headers,
      body: stream ? iterateStream(stream, req.signal) : (async function* () {})(),
    };
  }
}
