/**
 * Logging: the narrow Logger interface the shared core and the agent log through (so tests can record
 * log calls), and the agent's logger: one JSON object per line on stdout carrying the agent's identity
 * (node, revision, mode). Never pass secrets (tokens, kubeconfigs) as metadata: log lines are shipped
 * off the node.
 *
 * The agent's own logger is a few lines here rather than winston: the same output (level, message,
 * fields, ISO timestamp) for ~3 MiB less RSS, in an agent whose whole budget is 64 MiB. The operator
 * keeps winston (with its redaction format) as its sink: a winston Logger satisfies {@link ParentLogger},
 * so code of the core takes either, and the e2e node runtime may pass a winston logger to agents it
 * runs in its own process.
 */

/** The levels of the agent's logger (a subset of winston's npm levels, with the same names). */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/** What the core and the collector need from a logger; a winston Logger satisfies it. */
export interface Logger {
  error(message: string, meta?: Record<string, unknown>): unknown;
  warn(message: string, meta?: Record<string, unknown>): unknown;
  info(message: string, meta?: Record<string, unknown>): unknown;
  debug(message: string, meta?: Record<string, unknown>): unknown;
}

/** A logger that makes children with more fields on every line (a winston Logger, or a JsonLogger). */
export interface ParentLogger extends Logger {
  child(fields: Record<string, unknown>): Logger;
}

const SEVERITY: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/**
 * JSON.stringify that cannot throw on what may end up in log metadata: Errors become serializeError()
 * objects (plain JSON would print `{}`), bigints strings, and a repeated object "[Circular]".
 */
function safeJson(obj: unknown): string {
  const seen = new WeakSet<object>();
  return JSON.stringify(obj, (_key, value: unknown) => {
    if (value instanceof Error) return serializeError(value);
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'object' && value !== null) {
      if (seen.has(value)) return '[Circular]';
      seen.add(value);
    }
    return value;
  });
}

/**
 * Writes `{"level","message",...fields,...meta,"timestamp"}` lines (winston's JSON format) for levels at
 * or above `level`.
 */
export class JsonLogger implements ParentLogger {
  private readonly level: LogLevel;
  private readonly fields: Record<string, unknown>;
  private readonly write: (line: string) => void;
  constructor(level: LogLevel, fields: Record<string, unknown> = {}, write: (line: string) => void = (l) => process.stdout.write(l)) {
    this.level = level;
    this.fields = fields;
    this.write = write;
  }

  private log(level: LogLevel, message: string, meta: Record<string, unknown> | undefined): void {
    if (SEVERITY[level] > SEVERITY[this.level]) return;
    this.write(`${safeJson({ level, message, ...this.fields, ...meta, timestamp: new Date().toISOString() })}\n`);
  }

  error(message: string, meta?: Record<string, unknown>): void {
    this.log('error', message, meta);
  }
  warn(message: string, meta?: Record<string, unknown>): void {
    this.log('warn', message, meta);
  }
  info(message: string, meta?: Record<string, unknown>): void {
    this.log('info', message, meta);
  }
  debug(message: string, meta?: Record<string, unknown>): void {
    this.log('debug', message, meta);
  }

  child(fields: Record<string, unknown>): JsonLogger {
    return new JsonLogger(this.level, { ...this.fields, ...fields }, this.write);
  }
}

/**
 * The agent's logger: JSON lines on stdout with `fields` (e.g. node, revision, mode; undefined ones
 * left out) on every line. Errors passed as metadata are serialised with their name, message, code and
 * cause chain.
 */
export function createJsonLogger(level: LogLevel, fields: Record<string, string | undefined>): JsonLogger {
  return new JsonLogger(level, Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)));
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

/**
 * One line describing an error and its `cause` chain (`get Lease ns/x: HTTP-Code: 503 ...`), capped at
 * `maxChars`, for log fields and conditions. Wrappers add context, causes say what actually failed: a
 * log line needs both. Secrets are the logger's redaction's job; this adds none of its own.
 */
export function errorChain(err: unknown, maxChars = 1000): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; depth < 5 && e !== undefined && e !== null; depth++) {
    const message = e instanceof Error ? e.message : typeof e === 'string' ? e : JSON.stringify(e);
    const code = typeof e === 'object' && typeof (e as { code?: unknown }).code === 'string' ? ` (${(e as { code: string }).code})` : '';
    parts.push(`${message}${code}`.replace(/\s+/g, ' ').trim());
    e = e instanceof Error ? e.cause : undefined;
  }
  const line = parts.filter((p) => p !== '').join(': ');
  return line.length > maxChars ? `${line.slice(0, maxChars)}…` : line;
}

/** A logger that discards everything (for library use when the caller supplies none). */
export const nullLogger: Logger = {
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
};
