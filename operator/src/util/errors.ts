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

/** The first HTTP status (a numeric `code` or `statusCode`) on an error or its causes (at most 5 deep). */
export function httpStatusOf(err: unknown): number | undefined {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, statusCode } = e as { code?: unknown; statusCode?: unknown };
    if (typeof code === 'number') return code;
    if (typeof statusCode === 'number') return statusCode;
  }
  return undefined;
}

/**
 * Whether the API server answered but refused the call for its own state: HTTP 429 (API Priority and
 * Fairness, or max-inflight) or a 5xx. An overloaded server, not a broken kubeconfig.
 */
export function isOverloadError(err: unknown): boolean {
  const status = httpStatusOf(err);
  return status !== undefined && (status === 429 || (status >= 500 && status <= 599));
}
