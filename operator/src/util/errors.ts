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
