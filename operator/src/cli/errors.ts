/**
 * Exit codes of `kubectl-tro` and the translation of any failure into one clear line and one of them.
 *
 * Exit codes (also printed by `kubectl tro --help`):
 *   0  success
 *   1  failed: a file did not validate; `get --watch --until-done` ended RolledBack or Failed;
 *      break-glass did not reach every targeted node (or none matched); the API server refused a
 *      request for another reason (conflict, invalid, internal error)
 *   2  usage error: unknown command or option, bad argument, unusable --kubeconfig or --context, an
 *      unreadable input file (manifest, inventory) or an invalid break-glass transport
 *   3  not found: the rollout, or the TelemetryRollout API itself (the CRD is not installed)
 *   4  cluster unreachable: connection refused or reset, DNS, TLS, timeout (--request-timeout), or the
 *      API server answering 429/503/504
 *   5  unauthorized or forbidden (HTTP 401/403)
 *   127 (from the wrapper) no Node.js >= 22.19 found
 *
 * This module does not import client-node (loading it takes most of a second, and offline commands
 * must stay fast); API errors are recognised by shape: a numeric HTTP `code` and a `body`, anywhere in
 * the `cause` chain, which is what client-node's ApiException has.
 *
 * Secrets: messages are built from the API's Status message, error codes and the server URL (without
 * user info), never from request headers or kubeconfig content, and pass through redactString anyway.
 */
import { redactString } from '../util/logging.js';

/** The exit codes; see the file comment. */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  notFound: 3,
  unreachable: 4,
  forbidden: 5,
} as const;

/** One of {@link EXIT}'s values. */
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The exit-code table as shown at the end of `--help`. */
export const EXIT_CODES_HELP = `Exit codes:
  0  success
  1  failed: validation failed, the watched rollout ended RolledBack/Failed, break-glass missed nodes,
     or the API refused the request
  2  usage error (bad command, option or argument; unusable --kubeconfig or --context)
  3  not found (the rollout, or the TelemetryRollout API: is the CRD installed?)
  4  cluster unreachable or timed out (also HTTP 429/503/504)
  5  unauthorized or forbidden`;

/** A failure with the line to print and the exit code to end with. */
export class CliError extends Error {
  /** The process exit code. */
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode, options?: ErrorOptions) {
    super(message, options);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

const isHttpStatus = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 100 && v <= 599;

/** The first error in the `cause` chain with an HTTP status (an ApiException), with that status. */
function findApiError(err: unknown): { code: number; body: unknown } | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && typeof e === 'object' && e !== null; depth++) {
    // DOMException carries a legacy numeric `code` (23 for TimeoutError) that is not an HTTP status.
    if (!(e instanceof DOMException)) {
      const { code, statusCode, body } = e as { code?: unknown; statusCode?: unknown; body?: unknown };
      if (isHttpStatus(code)) return { code, body };
      if (isHttpStatus(statusCode)) return { code: statusCode, body };
    }
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The message of a Kubernetes Status body (an object, or JSON text), if it is one. */
export function statusMessage(body: unknown): string | undefined {
  let b = body;
  if (typeof b === 'string') {
    try {
      b = JSON.parse(b);
    } catch {
      // Not JSON (a proxy's HTML page, "404 page not found"): there is no Status message to show.
      return undefined;
    }
  }
  if (typeof b !== 'object' || b === null) return undefined;
  const { kind, message } = b as { kind?: unknown; message?: unknown };
  return kind === 'Status' && typeof message === 'string' && message !== '' ? message : undefined;
}

/** Whether a 404 body says the object is missing (a Status naming it) rather than the whole API. */
function isObjectNotFound(body: unknown): boolean {
  let b = body;
  if (typeof b === 'string') {
    try {
      b = JSON.parse(b);
    } catch {
      return false;
    }
  }
  const details = (b as { reason?: unknown; details?: { name?: unknown } } | null | undefined) ?? undefined;
  return details?.reason === 'NotFound' && typeof details.details?.name === 'string' && details.details.name !== '';
}

// Transport failures: the server cannot be reached (or not safely).
const TLS_CODES = /^(CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|ERR_TLS_|ERR_SSL_)/;

/** A short reason for a transport failure (`ECONNREFUSED`, `bad port`, `timed out`), if it is one. */
function transportFailure(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && typeof e === 'object' && e !== null; depth++) {
    const { name, code, message, cause } = e as { name?: unknown; code?: unknown; message?: unknown; cause?: unknown };
    if (name === 'TimeoutError') return 'timed out';
    if (typeof code === 'string' && /^(E[A-Z]+|UND_ERR_[A-Z_]+)$/.test(code)) return code;
    if (typeof code === 'string' && TLS_CODES.test(code)) return `TLS: ${code}`;
    // undici's `TypeError: fetch failed` wraps the real failure as its cause; when that cause has no
    // code (undici's "bad port" for ports fetch refuses) its message is the reason.
    if (name === 'TypeError' && message === 'fetch failed') {
      if (typeof cause === 'object' && cause !== null) {
        const inner = transportFailure(cause);
        if (inner) return inner;
        const m = (cause as { message?: unknown }).message;
        return typeof m === 'string' && m !== '' ? m.split('\n')[0] : 'fetch failed';
      }
      return 'fetch failed';
    }
    e = cause;
  }
  return undefined;
}

/** What a failed request was about, for the messages of {@link classifyError}. */
export interface RequestContext {
  /** What was attempted, e.g. `get telemetryrollout "x" in namespace "y"`. */
  what: string;
  /** The API server URL (no credentials), for "cannot reach" messages. */
  server?: string;
  /** The namespace and name, for a clear not-found message. */
  namespace?: string;
  name?: string;
  /** The request timeout in seconds, quoted when a request timed out. */
  timeoutSeconds?: number;
}

/**
 * Turns any error of a request to the API server into a {@link CliError} with the exit code of the
 * file comment and one line of text. A CliError passes through unchanged.
 */
export function classifyError(err: unknown, ctx: RequestContext): CliError {
  if (err instanceof CliError) return err;
  const api = findApiError(err);
  if (api) {
    const detail = statusMessage(api.body);
    const msg = (fallback: string) => redactString(`${ctx.what}: ${detail ?? fallback}`);
    switch (api.code) {
      case 404:
        // A Status naming the object means the rollout is missing; any other 404 (no name, or a plain
        // "404 page not found") means the API itself is not served.
        if (isObjectNotFound(api.body)) {
          const what = ctx.name !== undefined ? `telemetryrollout "${ctx.name}" not found in namespace "${ctx.namespace ?? ''}"` : msg('not found');
          return new CliError(what, EXIT.notFound, { cause: err });
        }
        return new CliError(`${ctx.what}: the server does not serve telemetryrollouts.telemetry.rollout.dev (is the CRD installed?)`, EXIT.notFound, {
          cause: err,
        });
      case 401:
        return new CliError(msg('unauthorized: the credentials of the kubeconfig were not accepted'), EXIT.forbidden, { cause: err });
      case 403:
        return new CliError(msg('forbidden'), EXIT.forbidden, { cause: err });
      case 429:
      case 503:
      case 504:
        return new CliError(msg(`the API server is not serving (HTTP ${api.code})`), EXIT.unreachable, { cause: err });
      default:
        return new CliError(msg(`HTTP ${api.code}`), EXIT.failed, { cause: err });
    }
  }
  const transport = transportFailure(err);
  if (transport) {
    const where = ctx.server ? ` ${ctx.server}` : ' the API server';
    const why = transport === 'timed out' && ctx.timeoutSeconds !== undefined ? `no answer within ${ctx.timeoutSeconds}s (--request-timeout)` : transport;
    return new CliError(redactString(`${ctx.what}: cannot reach${where}: ${why}`), EXIT.unreachable, { cause: err });
  }
  return new CliError(redactString(`${ctx.what}: ${oneLine(err)}`), EXIT.failed, { cause: err });
}

/** The first line of an error's message (or its name), at most 300 characters. */
export function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message || err.name : String(err);
  const first = text.split('\n')[0] ?? '';
  return first.length > 300 ? `${first.slice(0, 297)}...` : first;
}

/** A server URL without user info, query or fragment: safe to print. */
export function safeServerUrl(server: string): string {
  try {
    const u = new URL(server);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return '<unparsable server URL>';
  }
}
