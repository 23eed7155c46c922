/**
 * client-node's typed APIs for one cluster, instrumented: every request gets a timeout (and the
 * caller's cancellation), is counted by verb, resource and response code, and fails with an error that
 * names the cluster and the operation but carries no credential.
 *
 * Why middleware on the configuration and an AsyncLocalStorage instead of per-call options:
 * - `KubernetesObjectApi` (server-side apply of arbitrary kinds) ignores per-call middleware; it only
 *   runs the middleware of the configuration it was built with.
 * - A response code is only visible to middleware (`post`), and a failed connection is visible only to
 *   the caller: the store ties the two to the one call in flight.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  KubernetesObjectApi,
  Observable,
  ServerConfiguration,
  createConfiguration,
  type Configuration,
  type KubeConfig,
  type ObservableMiddleware,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node';
import { redactString } from '../util/logging.js';
import { NO_RESPONSE_CODE, type RequestCounter } from './metrics.js';

/** Default timeout of one API request (an unreachable API server must not hang a reconcile). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
/** The User-Agent of the operator's requests, so the API server's audit log and metrics attribute them. */
export const USER_AGENT = 'telemetry-rollout-operator';

/** What kube-apiserver would call a request: its verb and resource (see {@link RequestCounter}). */
export interface RequestKind {
  verb: string;
  resource: string;
}

/**
 * Derives verb and resource from a request the way kube-apiserver labels its own metrics: GET of a
 * named object is `get`, of a collection `list` (or `watch` with `watch=true`); PATCH with the apply
 * content type is `apply`; DELETE of a collection is `deletecollection`. Paths outside /api and /apis
 * are non-resource URLs and are their own resource (`/readyz`); /api, /apis and group-version roots are
 * `discovery`.
 */
export function describeRequest(method: string, url: string, contentType?: string): RequestKind {
  let parsed: URL;
  try {
    parsed = new URL(url, 'https://unknown');
  } catch {
    return { verb: method.toLowerCase(), resource: 'unknown' };
  }
  const segments = parsed.pathname.split('/').filter((s) => s !== '');
  const m = method.toUpperCase();
  let rest: string[];
  if (segments[0] === 'api') rest = segments.slice(2);
  else if (segments[0] === 'apis') rest = segments.slice(3);
  else return { verb: m.toLowerCase(), resource: parsed.pathname === '' ? '/' : parsed.pathname };
  if (rest.length === 0) return { verb: 'get', resource: 'discovery' };
  // namespaces/<ns>/<resource>/... is a namespaced resource; namespaces and namespaces/<ns> are the namespace itself.
  if (rest[0] === 'namespaces' && rest.length >= 3) rest = rest.slice(2);
  const resource = rest.length >= 3 ? `${rest[0]}/${rest[2]}` : (rest[0] as string);
  const named = rest.length >= 2;
  let verb: string;
  switch (m) {
    case 'GET':
      verb = named ? 'get' : parsed.searchParams.get('watch') === 'true' ? 'watch' : 'list';
      break;
    case 'POST':
      verb = 'create';
      break;
    case 'PUT':
      verb = 'update';
      break;
    case 'PATCH':
      verb = contentType?.startsWith('application/apply-patch') ? 'apply' : 'patch';
      break;
    case 'DELETE':
      verb = named ? 'delete' : 'deletecollection';
      break;
    default:
      verb = m.toLowerCase();
  }
  return { verb, resource };
}

/**
 * A failed request to a cluster. The message names the cluster, the operation and what went wrong
 * (HTTP status and the server's Status message, timeout, connection error); `code` is the HTTP status
 * when there was one, so `statusCode()`/`isConflict()`/`isNotFound()` of controller/kube.ts recognise
 * it; `cause` is the original error (an `ApiException`, a `TimeoutError`, fetch's `TypeError`).
 */
export class ClusterRequestError extends Error {
  /** The HTTP status, when the server answered. */
  readonly code: number | undefined;
  /** The cluster's name. */
  readonly cluster: string;
  /** What was being done, e.g. `patch Node east-node-001`. */
  readonly operation: string;
  constructor(cluster: string, operation: string, summary: string, code: number | undefined, cause: unknown) {
    super(`cluster ${cluster}: ${operation}: ${summary}`, { cause });
    this.name = 'ClusterRequestError';
    this.cluster = cluster;
    this.operation = operation;
    this.code = code;
  }
}

/** The message of a Kubernetes Status body (an ApiException's body, parsed or not), if any. */
export function statusMessage(body: unknown): string | undefined {
  let b: unknown = body;
  if (typeof body === 'string') {
    try {
      b = JSON.parse(body);
    } catch {
      return body.trim() === '' ? undefined : body.trim().slice(0, 300);
    }
  }
  const msg = (b as { message?: unknown } | null | undefined)?.message;
  return typeof msg === 'string' && msg !== '' ? msg : undefined;
}

/** The system error code (`ECONNREFUSED`, ...) somewhere in a cause chain. */
function systemCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && typeof e === 'object' && e !== null; depth++) {
    const { code, cause } = e as { code?: unknown; cause?: unknown };
    if (typeof code === 'string') return code;
    e = cause;
  }
  return undefined;
}

/**
 * Wraps any error of a call to `cluster` as a {@link ClusterRequestError}; `timedOut` says the call's
 * own timeout fired (the message then says so instead of "aborted").
 */
export function wrapRequestError(cluster: string, operation: string, err: unknown, timeoutMs?: number): ClusterRequestError {
  if (err instanceof ClusterRequestError) return err;
  if (err instanceof ApiException) {
    const msg = statusMessage(err.body);
    return new ClusterRequestError(cluster, operation, `HTTP ${err.code}${msg ? `: ${redactString(msg)}` : ''}`, err.code, err);
  }
  if (timeoutMs !== undefined) return new ClusterRequestError(cluster, operation, `timed out after ${timeoutMs} ms`, undefined, err);
  const name = (err as { name?: unknown } | null)?.name;
  if (name === 'AbortError') return new ClusterRequestError(cluster, operation, 'aborted', undefined, err);
  if (name === 'TimeoutError') return new ClusterRequestError(cluster, operation, 'timed out', undefined, err);
  const sys = systemCode(err);
  const httpCode = (err as { statusCode?: unknown } | null)?.statusCode;
  if (typeof httpCode === 'number') {
    return new ClusterRequestError(cluster, operation, `HTTP ${httpCode}`, httpCode, err);
  }
  const message = err instanceof Error ? err.message : String(err);
  // fetch's TypeError says only "fetch failed"; the useful part is the system code of its cause.
  const summary = sys !== undefined ? `${sys}${message && message !== 'fetch failed' ? ` (${message})` : ''}` : message;
  return new ClusterRequestError(cluster, operation, redactString(summary), undefined, err);
}

/** The per-call state the middleware reads: the call's signal and the request it saw go out. */
interface CallState {
  signal: AbortSignal;
  pending?: RequestKind;
}

const calls = new AsyncLocalStorage<CallState>();

const passThrough = <T>(v: T): Observable<T> => new Observable(Promise.resolve(v));

/** Options of {@link KubeApis}. */
export interface KubeApisOptions {
  /** The cluster's name, for errors and the counter's `cluster` label. */
  cluster: string;
  /** Where requests are counted. */
  requests: RequestCounter;
  /** Timeout of one call (default {@link DEFAULT_REQUEST_TIMEOUT_MS}). */
  timeoutMs?: number;
}

/**
 * client-node's APIs for one cluster, sharing one instrumented configuration. Use them only inside
 * {@link KubeApis.call}: that is what gives the request its timeout and its count.
 */
export class KubeApis {
  readonly cluster: string;
  readonly timeoutMs: number;
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly custom: CustomObjectsApi;
  readonly events: EventsV1Api;
  /** For server-side apply and delete of any kind (it discovers resources once per apiVersion). */
  readonly objects: KubernetesObjectApi;
  private readonly requests: RequestCounter;

  constructor(kc: KubeConfig, opts: KubeApisOptions) {
    this.cluster = opts.cluster;
    this.requests = opts.requests;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const server = kc.getCurrentCluster()?.server;
    if (server === undefined) throw new Error(`cluster ${opts.cluster}: kubeconfig has no current cluster`);
    const config: Configuration = createConfiguration({
      baseServer: new ServerConfiguration(server, {}),
      authMethods: { default: kc },
      middleware: [this.middleware()],
    });
    this.core = new CoreV1Api(config);
    this.apps = new AppsV1Api(config);
    this.custom = new CustomObjectsApi(config);
    this.events = new EventsV1Api(config);
    this.objects = new KubernetesObjectApi(config);
  }

  /** Counts one request that did not go through the typed APIs (raw GETs, watches). */
  count(kind: RequestKind, code: string): void {
    this.requests.inc({ cluster: this.cluster, verb: kind.verb, resource: kind.resource, code });
  }

  /**
   * Runs `fn` (one or more API calls made through this object's APIs) with a timeout of `timeoutMs`
   * (default: the configured one) and the caller's `signal`; every request is counted; any failure is
   * rethrown as a {@link ClusterRequestError} naming the cluster and `operation`.
   */
  async call<T>(operation: string, fn: () => Promise<T>, signal?: AbortSignal, timeoutMs = this.timeoutMs): Promise<T> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const state: CallState = { signal: signal ? AbortSignal.any([signal, timeout]) : timeout };
    try {
      if (signal?.aborted) throw signal.reason;
      return await calls.run(state, fn);
    } catch (err) {
      const timedOut = timeout.aborted && !signal?.aborted;
      if (state.pending) {
        // The request went out and no response came back (refused, reset, timed out, aborted); the error says which.
        this.count(state.pending, NO_RESPONSE_CODE);
        state.pending = undefined;
      }
      throw wrapRequestError(this.cluster, operation, err, timedOut ? timeoutMs : undefined);
    }
  }

  private middleware(): ObservableMiddleware {
    return {
      pre: (ctx: RequestContext) => {
        ctx.setHeaderParam('User-Agent', USER_AGENT);
        const state = calls.getStore();
        if (state) {
          ctx.setSignal(state.signal);
          const headers = ctx.getHeaders();
          state.pending = describeRequest(ctx.getHttpMethod(), ctx.getUrl(), headers['Content-Type'] ?? headers['content-type']);
        }
        return passThrough(ctx);
      },
      post: (rsp: ResponseContext) => {
        const state = calls.getStore();
        if (state?.pending) {
          this.count(state.pending, String(rsp.httpStatusCode));
          state.pending = undefined;
        }
        return passThrough(rsp);
      },
    };
  }
}
