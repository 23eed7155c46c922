/**
 * Error types of the collector. Cancellations (kill switch, shutdown) are distinct classes so that retry
 * logic never retries them and logs never report them as failures.
 */

/**
 * Thrown (and used as the abort reason) when the node-local stop file forbids API calls. Never retried:
 * the agent goes idle until the kill switch clears.
 */
export class StoppedError extends Error {
  constructor(message = 'collector stopped by the stop file', options?: ErrorOptions) {
    super(message, options);
    this.name = 'StoppedError';
  }
}

/** Abort reason used when the agent itself is shutting down (SIGTERM or `AgentHandle.stop()`). */
export class ShutdownError extends Error {
  constructor(message = 'collector shutting down', options?: ErrorOptions) {
    super(message, options);
    this.name = 'ShutdownError';
  }
}

/**
 * A request that never produced an HTTP status: connection refused/reset, DNS failure, TLS failure,
 * timeout. Retried with backoff, like 429 and 5xx.
 */
export class NetworkError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'NetworkError';
  }
}

/**
 * The API server answered with a non-2xx status (or a watch stream carried an ERROR event). `code` is
 * the HTTP status (what the retry decision, the reflector's 410 relist and the leader's 404/409 handling
 * read), `body` the parsed Status object when the body was JSON (else its text), `headers` the response
 * headers with lower-case names (Retry-After). Field names match client-node's ApiException, which this
 * replaces, so log serialisation (`code`) and callers reading `code` are unchanged.
 */
export class ApiError extends Error {
  readonly code: number;
  readonly body: unknown;
  readonly headers: Record<string, string>;
  constructor(code: number, message: string, body: unknown, headers: Record<string, string>, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ApiError';
    this.code = code;
    this.body = body;
    this.headers = headers;
  }
}

/** The collector's configuration is invalid; `errors` lists every problem found, not only the first. */
export class ConfigError extends Error {
  readonly errors: readonly { path: string; message: string }[];
  constructor(errors: readonly { path: string; message: string }[], source?: string) {
    super(`invalid collector config${source ? ` in ${source}` : ''}: ` + errors.map((e) => `${e.path}: ${e.message}`).join('; '));
    this.name = 'ConfigError';
    this.errors = errors;
  }
}
