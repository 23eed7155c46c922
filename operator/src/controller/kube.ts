/**
 * Small helpers around `@kubernetes/client-node`: error classification, retries that honour
 * Retry-After, per-request cancellation for the typed APIs, and a raw GET for non-resource paths
 * (`/readyz`, `/metrics`).
 *
 * Secrets: nothing here puts a kubeconfig, token, client key or request header into an error message.
 */
import http from 'node:http';
import https from 'node:https';
import { Observable } from '@kubernetes/client-node';
import type { ConfigurationOptions, KubeConfig, ObservableMiddleware } from '@kubernetes/client-node';
import { backoffDelayMs, parseRetryAfter, TRANSIENT_NETWORK_CODES, withBackoff, type BackoffPolicy } from '#core/backoff.js';
import { SystemClock, type Clock } from '#core/clock.js';
import { statusCode } from '../util/errors.js';

/**
 * The HTTP status of an API error (ApiException, a wrapped error's cause...); one walker for the
 * operator, kept in util/errors.ts where the reconciler, which does not depend on client-node, uses it too.
 */
export { statusCode };

/** Re-exported from the shared core, where the leader elector uses it too. */
export { errorChain } from '#core/logger.js';

/** 404: the object does not exist (a reconcile of a deleted object is done). */
export function isNotFound(err: unknown): boolean {
  return statusCode(err) === 404;
}

/** 409: a write lost an optimistic-concurrency race (resourceVersion) or the object already exists. */
export function isConflict(err: unknown): boolean {
  return statusCode(err) === 409;
}

/** 410: the requested resourceVersion is too old (a watch must relist). */
export function isGone(err: unknown): boolean {
  return statusCode(err) === 410;
}

/**
 * Whether retrying `err` may help: HTTP 408, 429 and 5xx other than 501/505; connection-level errors
 * (reset, refused, unreachable, DNS, undici socket/timeout errors, also when wrapped as the `cause` of
 * fetch's `TypeError: fetch failed`); and timeouts (`TimeoutError`). Not retryable: other 4xx, an
 * `AbortError` (the caller cancelled), and anything unrecognised.
 */
export function isRetryable(err: unknown): boolean {
  const code = statusCode(err);
  if (code !== undefined) return code === 408 || code === 429 || (code >= 500 && code !== 501 && code !== 505);
  let e: unknown = err;
  for (let depth = 0; depth < 5 && typeof e === 'object' && e !== null; depth++) {
    const { name, code: sysCode, cause } = e as { name?: unknown; code?: unknown; cause?: unknown };
    if (name === 'AbortError') return false;
    if (name === 'TimeoutError') return true;
    if (typeof sysCode === 'string' && TRANSIENT_NETWORK_CODES.has(sysCode)) return true;
    e = cause;
  }
  return false;
}

function headerValue(headers: unknown, name: string): string | undefined {
  if (typeof headers !== 'object' || headers === null) return undefined;
  for (const [k, v] of Object.entries(headers as Record<string, unknown>)) {
    if (k.toLowerCase() === name) return Array.isArray(v) ? String(v[0]) : typeof v === 'string' ? v : undefined;
  }
  return undefined;
}

/**
 * The delay the server asked for, in ms: the `Retry-After` header (seconds or an HTTP date, relative
 * to `now`), else the Status body's `details.retryAfterSeconds`, of the first error in the `cause`
 * chain that has `headers` or a `body` (an ApiException). Undefined when absent or unparsable.
 */
export function retryAfterMs(err: unknown, now: Date = new Date()): number | undefined {
  let e: unknown = err;
  // The ApiException may be wrapped as the cause of a contextual error.
  for (let depth = 0; depth < 5 && typeof e === 'object' && e !== null && !('headers' in e) && !('body' in e); depth++) {
    e = (e as { cause?: unknown }).cause;
  }
  if (typeof e !== 'object' || e === null) return undefined;
  const { headers, body } = e as { headers?: unknown; body?: unknown };
  const fromHeader = parseRetryAfter(headerValue(headers, 'retry-after'), now.getTime());
  if (fromHeader !== undefined) return fromHeader;
  let status: unknown = body;
  if (typeof status === 'string') {
    try {
      status = JSON.parse(status);
    } catch {
      // Not a Status object: no retry-after in it.
      status = undefined;
    }
  }
  const seconds = (status as { details?: { retryAfterSeconds?: unknown } } | undefined)?.details?.retryAfterSeconds;
  return typeof seconds === 'number' && seconds >= 0 ? seconds * 1000 : undefined;
}

/** Options of {@link withRetry}. */
export interface RetryOptions {
  /** Retries after the first attempt (default 5). */
  retries?: number;
  /** Delay before the first retry (default 200 ms). */
  minDelayMs?: number;
  /** Upper bound of the backoff delay (default 30 s). */
  maxDelayMs?: number;
  /** Growth per retry (default 2). */
  factor?: number;
  /** A server's Retry-After beyond this is capped to it (default 60 s), so a bogus header cannot park us. */
  maxRetryAfterMs?: number;
  /** Which errors to retry (default {@link isRetryable}). */
  shouldRetry?: (err: unknown) => boolean;
  /** Cancels waiting and further attempts; the promise then rejects with the abort reason. */
  signal?: AbortSignal;
  /** Time source for the delays (default the system clock). */
  clock?: Clock;
  /** Jitter source in [0, 1) (default Math.random); each delay is scaled by 1 + 0.5 × random. */
  random?: () => number;
  /** Told about every retry before its delay (for logs/metrics). Must not throw. */
  onRetry?: (info: { error: unknown; attempt: number; delayMs: number }) => void;
}

/**
 * Runs `fn` and retries it on retryable errors with jittered exponential backoff, waiting at least as
 * long as a server's Retry-After (capped at `maxRetryAfterMs`): the shared core's retry loop and
 * delay computation (jitter up to +50 %), slept on the injected clock so it is testable and honours
 * Retry-After exactly. The last error is rethrown unchanged when retries run out or the error is not retryable.
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const clock = opts.clock ?? new SystemClock();
  const random = opts.random ?? Math.random;
  const maxRetryAfterMs = opts.maxRetryAfterMs ?? 60_000;
  const policy: BackoffPolicy = {
    initialMs: opts.minDelayMs ?? 200,
    maxMs: opts.maxDelayMs ?? 30_000,
    factor: opts.factor ?? 2,
    jitter: 0.5,
    jitterMode: 'up',
  };
  return withBackoff(fn, {
    policy,
    clock,
    retries: opts.retries ?? 5,
    shouldRetry: opts.shouldRetry ?? isRetryable,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onRetry ? { onRetry: opts.onRetry } : {}),
    delayMs: (retry, error) => {
      const serverAsked = retryAfterMs(error, clock.now());
      return Math.round(Math.max(backoffDelayMs(retry, policy, random), Math.min(serverAsked ?? 0, maxRetryAfterMs)));
    },
  });
}

/**
 * Per-request options for client-node's typed APIs that attach `signal` to the request, so a hung
 * call can be cancelled (client-node has no per-call timeout). Pass it as the last argument, e.g.
 * `api.readNamespacedLease({ name, namespace }, requestOptions(AbortSignal.timeout(5000)))`.
 * The object-style APIs run options through their observable layer, so this is observable middleware
 * (client-node's minimal `Observable`), appended after any configured middleware.
 */
export function requestOptions(signal: AbortSignal): ConfigurationOptions {
  const middleware: ObservableMiddleware = {
    pre: (ctx) => {
      ctx.setSignal(signal);
      return new Observable(Promise.resolve(ctx));
    },
    post: (ctx) => new Observable(Promise.resolve(ctx)),
  };
  return { middleware: [middleware], middlewareMergeStrategy: 'append' };
}

/** Options of {@link rawGet}. */
export interface RawGetOptions {
  /** Whole-request timeout in ms (connect, headers and body). */
  timeoutMs: number;
  /** Cancels the request; it then rejects with a `RawGetError` named `AbortError`. */
  signal?: AbortSignal;
  /** Response bodies beyond this many bytes fail the request (default 64 MiB). */
  maxBytes?: number;
  /** The Accept header (default `text/plain, *\/*`). */
  accept?: string;
}

/** A raw GET response. Any HTTP status resolves; only transport failures reject. */
export interface RawResponse {
  statusCode: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * A failed raw GET. The message names the server URL, path and failure (`ECONNREFUSED`, timeout...);
 * it never carries the kubeconfig, credentials or request headers, and the low-level error is not
 * attached as `cause` (TLS errors carry certificate objects and sockets that do not belong in logs).
 */
export class RawGetError extends Error {
  /** `ETIMEDOUT`, `ECONNREFUSED`, `EABORTED`, `ETOOBIG`, `ENOCLUSTER`, ... */
  readonly code: string;
  constructor(message: string, code: string, name = 'RawGetError') {
    super(message);
    this.name = name;
    this.code = code;
  }
}

/**
 * GET a non-resource path (`/readyz?verbose`, `/livez`, `/metrics`) of the kubeconfig's current cluster
 * with its credentials, via `kc.applyToHTTPSOptions` and Node's https (http for `http:` servers, which
 * client-node only allows with skipTLSVerify). Resolves with status, headers and the body as text for
 * any status; rejects with {@link RawGetError} on transport failure, timeout, abort or an oversized body.
 */
export async function rawGet(kc: KubeConfig, path: string, opts: RawGetOptions): Promise<RawResponse> {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new RawGetError('kubeconfig has no current cluster', 'ENOCLUSTER');
  const url = new URL(cluster.server.replace(/\/+$/, '') + (path.startsWith('/') ? path : `/${path}`));
  const where = `GET ${url.origin}${url.pathname}`;
  const options: https.RequestOptions = { method: 'GET', headers: { Accept: opts.accept ?? 'text/plain, */*' } };
  try {
    await kc.applyToHTTPSOptions(options);
  } catch (err) {
    // The message of an auth-provider failure may quote its config; only say which step failed.
    throw new RawGetError(`${where}: preparing credentials failed (${(err as { name?: string }).name ?? 'Error'})`, 'EAUTH');
  }
  const maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
  const transport = url.protocol === 'http:' ? http : https;

  return new Promise<RawResponse>((resolve, reject) => {
    let settled = false;
    const fail = (message: string, code: string, name?: string): void => {
      if (settled) return;
      settled = true;
      cleanup();
      req.destroy();
      reject(new RawGetError(`${where}: ${message}`, code, name));
    };
    const timer = setTimeout(() => fail(`timed out after ${opts.timeoutMs} ms`, 'ETIMEDOUT', 'TimeoutError'), opts.timeoutMs);
    const onAbort = (): void => fail('aborted', 'EABORTED', 'AbortError');
    const cleanup = (): void => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    const req = transport.request(url, options, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) fail(`response larger than ${maxBytes} bytes`, 'ETOOBIG');
        else chunks.push(chunk);
      });
      res.on('error', (err: NodeJS.ErrnoException) => fail(`response failed: ${err.code ?? err.name}`, err.code ?? 'ERESPONSE'));
      res.on('end', () => {
        if (settled) return;
        settled = true;
        cleanup();
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => fail(`request failed: ${err.code ?? err.name}`, err.code ?? 'EREQUEST'));
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    req.end();
  });
}
