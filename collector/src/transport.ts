/**
 * The HTTP boundary to the Kubernetes API server, behind a narrow interface so the ApiClient pipeline
 * (kill switch → token bucket → backoff → metrics) can be unit-tested against an in-memory fake.
 *
 * The real implementation, HttpTransport, is node:https with a keep-alive Agent and our own kubeconfig
 * loader (the shared core's kubeconfig.ts) instead of client-node: importing client-node alone doubled
 * an agent's RSS.
 * The collector needs only what this gives directly: an AbortSignal on every request (also while the
 * body streams), the body as it arrives (exact byte counts, watch streams), and NetworkError whenever
 * no HTTP status came back.
 */
import type * as nodeHttp from 'node:http';
import https from 'node:https';
import { pipeline, type Readable } from 'node:stream';
import zlib from 'node:zlib';
import { abortReason } from '#core/clock.js';
import { NetworkError } from './errors.js';
import type { ApiServerConfig } from '#core/kubeconfig.js';
import { http } from '#core/nodehttp.js';

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
  /** Releases pooled connections once the agent is done with the transport (optional). */
  close?(): void;
}

/** Builds the query string of a request. */
export function buildQuery(query: Record<string, string | undefined> | undefined): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) params.set(k, v);
  const s = params.toString();
  return s ? `?${s}` : '';
}

/**
 * Concurrent connections per agent. A connection carries one request at a time (HTTP/1.1) and a watch
 * holds its connection for minutes, so the limit must exceed the most watches an agent keeps open (the
 * cluster watcher's resources, the Naive mode's three) or a Lease renewal would queue behind them;
 * small, because each socket costs TLS buffers and an agent runs on every node.
 */
export const MAX_SOCKETS = 8;

/**
 * Idle keep-alive sockets are closed after this long: below kube-apiserver's 90 s idle timeout, so we
 * never reuse a socket the server is closing (a spurious ECONNRESET).
 */
export const IDLE_SOCKET_MS = 60_000;

/**
 * A request whose socket sees no byte for this long fails with NetworkError: undici's header and body
 * timeouts, which the client-node transport had. Watches have their own, shorter idle watchdog.
 */
export const SOCKET_TIMEOUT_MS = 300_000;

/** Options of HttpTransport. */
export interface HttpTransportOptions {
  /** Default MAX_SOCKETS. */
  maxSockets?: number;
  /** Default SOCKET_TIMEOUT_MS. */
  socketTimeoutMs?: number;
}

function flatHeaders(h: nodeHttp.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/**
 * The body of a response as it arrives (gunzipped when the server compressed it: the byte counts stay
 * those of the JSON, as with fetch before). A broken stream is a NetworkError, an aborted one the
 * signal's reason. Leaving the loop early destroys the response, so its socket is never reused.
 */
async function* bodyOf(res: nodeHttp.IncomingMessage, signal: AbortSignal, what: string): AsyncIterable<Uint8Array> {
  const enc = res.headers['content-encoding'];
  let stream: Readable = res;
  if (enc === 'gzip' || enc === 'deflate') {
    // pipeline destroys both streams when either fails; the error surfaces in the loop below.
    stream = pipeline(res, enc === 'gzip' ? zlib.createGunzip() : zlib.createInflate(), () => undefined);
  }
  let ended = false;
  try {
    for await (const chunk of stream) yield chunk as Buffer;
    ended = true;
  } catch (err) {
    if (signal.aborted) throw abortReason(signal);
    throw new NetworkError(`${what}: reading response body: ${(err as Error).message}`, { cause: err });
  } finally {
    if (!ended) {
      stream.destroy();
      res.destroy();
    }
  }
}

/**
 * KubeTransport over node:http(s) for one ApiServerConfig. One instance per agent: its keep-alive pool
 * (at most `maxSockets`) serves that agent's requests only, as in a real per-node agent. The bearer
 * token is asked of the config's TokenSource on every request (file tokens rotate); URLs are logged in
 * errors, headers never (they carry the token).
 */
export class HttpTransport implements KubeTransport {
  private readonly config: ApiServerConfig;
  private readonly userAgent: string;
  private readonly agent: nodeHttp.Agent;
  private readonly request: typeof http.request;
  private readonly socketTimeoutMs: number;
  constructor(config: ApiServerConfig, userAgent: string, options: HttpTransportOptions = {}) {
    this.config = config;
    this.userAgent = userAgent;
    this.socketTimeoutMs = options.socketTimeoutMs ?? SOCKET_TIMEOUT_MS;
    const pool = {
      keepAlive: true,
      // TCP keep-alive probes after 30 s of silence (client-node's setting): a dead peer under a quiet
      // watch is noticed by the kernel, not only by the watchdog.
      keepAliveMsecs: 30_000,
      maxSockets: options.maxSockets ?? MAX_SOCKETS,
      maxFreeSockets: 2,
      // For a pooled socket only: a socket in use gets the request's own timeout.
      timeout: IDLE_SOCKET_MS,
      scheduling: 'lifo' as const,
    };
    if (new URL(config.server).protocol === 'http:') {
      this.agent = new http.Agent(pool);
      this.request = http.request;
    } else {
      this.agent = new https.Agent({
        ...pool,
        ...(config.ca !== undefined ? { ca: config.ca } : {}),
        ...(config.cert !== undefined ? { cert: config.cert, key: config.key } : {}),
        rejectUnauthorized: !config.insecureSkipTLSVerify,
        ...(config.tlsServerName !== undefined ? { servername: config.tlsServerName } : {}),
      });
      this.request = https.request;
    }
  }

  async send(req: KubeRequest): Promise<KubeResponse> {
    req.signal.throwIfAborted();
    const what = `${req.method} ${req.path}`;
    const headers: Record<string, string> = {
      'User-Agent': this.userAgent,
      Accept: 'application/json',
      // As fetch did: the API server gzips large LIST responses for clients that accept it.
      'Accept-Encoding': 'gzip',
    };
    if (this.config.token) headers.Authorization = `Bearer ${await this.config.token.token()}`;
    let payload: Buffer | undefined;
    if (req.body !== undefined) {
      payload = Buffer.from(JSON.stringify(req.body));
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(payload.length);
    }
    req.signal.throwIfAborted();
    const url = new URL(this.config.server + req.path + buildQuery(req.query));
    return new Promise<KubeResponse>((resolve, reject) => {
      const r = this.request(url, { method: req.method, headers, agent: this.agent, signal: req.signal, timeout: this.socketTimeoutMs });
      r.on('timeout', () => r.destroy(new NetworkError(`${what}: no data for ${this.socketTimeoutMs} ms`)));
      r.on('error', (err) => {
        // After the response arrived, errors surface through the body iterator instead.
        if (req.signal.aborted) reject(abortReason(req.signal));
        else reject(err instanceof NetworkError ? err : new NetworkError(`${what}: ${err.message}`, { cause: err }));
      });
      r.on('response', (res) => {
        resolve({ status: res.statusCode ?? 0, headers: flatHeaders(res.headers), body: bodyOf(res, req.signal, what) });
      });
      r.end(payload);
    });
  }

  /** Closes the pooled sockets; requests in flight are cut. */
  close(): void {
    this.agent.destroy();
  }
}
