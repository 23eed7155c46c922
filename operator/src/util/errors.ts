/**
 * Error helpers shared by the operator. Errors are wrapped with context and never carry secrets.
 */

/**
 * An error that must not be retried: the input is wrong and retrying will not change that
 * (controller-runtime's TerminalError). The reconciler turns it into a Stalled/Failed condition.
 */
export class TerminalError extends Error {
  /** Machine-readable reason (PascalCase), used as the condition reason. */
  readonly reason: string;
  constructor(reason: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TerminalError';
    this.reason = reason;
  }
}

/** Returns the message of any thrown value, for logs and conditions. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Node's codes for a server certificate that fails verification. */
const TLS_CODES = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * Whether an error or one of its causes (at most 5 deep) carries an HTTP status in `statuses` (as a
 * numeric `code` or `statusCode`) or a TLS verification failure (as a string `code`).
 */
function refusedBy(err: unknown, statuses: readonly number[]): boolean {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, statusCode } = e as { code?: unknown; statusCode?: unknown };
    if (statuses.includes(code as number) || statuses.includes(statusCode as number)) return true;
    if (typeof code === 'string' && TLS_CODES.has(code)) return true;
  }
  return false;
}

/**
 * Whether an error (or one of its causes) is the API server refusing the credentials: HTTP 401 or 403
 * as a numeric `code`/`statusCode`, or a TLS verification failure as a string `code`.
 */
export const isCredentialError = (err: unknown): boolean => refusedBy(err, [401, 403]);

/** Whether the string code of a transport error is a TLS verification failure (for probes). */
export const isTlsVerificationCode = (code: string): boolean => TLS_CODES.has(code);

/**
 * Whether an error (or a cause) is an authentication failure: HTTP 401, or a TLS verification failure.
 * Unlike a 403, which a write can also get from a quota or an admission webhook, it always means the
 * kubeconfig itself is refused.
 */
export const isAuthenticationError = (err: unknown): boolean => refusedBy(err, [401]);

const isHttpStatus = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 100 && v <= 599;

/**
 * The HTTP status of an API error: a numeric `code`/`statusCode` in 100..599 (client-node's
 * ApiException and `ClusterRequestError` set `code`, its watch sets `statusCode`; fakes may set `code`),
 * looking through a chain of `cause`s so a wrapped error (`new Error('replace Lease', { cause })`) keeps
 * its status. Undefined for anything else: Node system errors (string `code`) and DOMExceptions (legacy
 * numeric `code`, e.g. 23 for TimeoutError) are not HTTP statuses.
 */
export function statusCode(err: unknown): number | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && typeof e === 'object' && e !== null; depth++) {
    if (e instanceof DOMException) return undefined;
    const { code, statusCode: sc, cause } = e as { code?: unknown; statusCode?: unknown; cause?: unknown };
    if (isHttpStatus(code)) return code;
    if (isHttpStatus(sc)) return sc;
    e = cause;
  }
  return undefined;
}

/**
 * Whether the API server answered but refused the call for its own state: HTTP 429 (API Priority and
 * Fairness, or max-inflight) or a 5xx. An overloaded server, not a broken kubeconfig.
 */
export function isOverloadError(err: unknown): boolean {
  const status = statusCode(err);
  return status !== undefined && (status === 429 || (status >= 500 && status <= 599));
}
