/**
 * Logging: winston JSON logs carrying the agent's identity (node, revision, mode) on every line, behind a
 * narrow Logger interface so tests can record log calls. Never pass secrets (tokens, kubeconfigs) as
 * metadata: log lines are shipped off the node.
 */
import winston from 'winston';
import type { LogLevel } from './config.js';

/** What the collector needs from a logger; a winston Logger satisfies it. */
export interface Logger {
  error(message: string, meta?: Record<string, unknown>): unknown;
  warn(message: string, meta?: Record<string, unknown>): unknown;
  info(message: string, meta?: Record<string, unknown>): unknown;
  debug(message: string, meta?: Record<string, unknown>): unknown;
}

/**
 * A winston logger writing one JSON object per line to stdout, with `fields` (e.g. node, revision, mode)
 * on every line and an ISO timestamp. Errors passed as `err` metadata are serialised with their message
 * and stack (winston's default drops them to `{}`).
 */
export function createLogger(level: LogLevel, fields: Record<string, string | undefined>): winston.Logger {
  const defaultMeta = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
  return winston.createLogger({
    level,
    defaultMeta,
    format: winston.format.combine(
      winston.format((info) => {
        const err = (info as { err?: unknown }).err;
        if (err instanceof Error) (info as { err?: unknown }).err = serializeError(err);
        return info;
      })(),
      winston.format.timestamp(),
      winston.format.json(),
    ),
    transports: [new winston.transports.Console()],
  });
}

/** A plain-object form of an error for logs: name, message, HTTP code if any, and the cause chain. */
export function serializeError(err: unknown, depth = 0): Record<string, unknown> {
  if (!(err instanceof Error)) return { message: String(err) };
  const out: Record<string, unknown> = { name: err.name, message: err.message };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') out.code = code;
  if (err.cause !== undefined && depth < 3) out.cause = serializeError(err.cause, depth + 1);
  return out;
}

/** A logger that discards everything (for library use when the caller supplies none). */
export const nullLogger: Logger = {
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
};
