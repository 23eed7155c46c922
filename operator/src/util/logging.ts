/**
 * JSON logging for the operator (winston 3) with a redaction format that keeps credentials out of logs.
 *
 * Every log line is one JSON object: `timestamp`, `level`, `message`, plus the fields of the logger and
 * its children (`component`, `rollout`, `cluster`, ...). Redaction runs on every line before it is
 * serialised, so a kubeconfig, token or private key that reaches a log call by accident (inside an error
 * message, an API response, a nested object) is scrubbed rather than written out.
 */
import winston from 'winston';

/** The logger type used across the operator. */
export type Logger = winston.Logger;

/** The levels the operator accepts (winston's npm levels). */
export const LOG_LEVELS = ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'] as const;

/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The replacement written in place of a redacted value. */
export const REDACTED = '[REDACTED]';

/**
 * Field names whose values are always replaced, compared case-insensitively with `-`/`_` removed, so
 * `client-key-data`, `clientKeyData` and `client_key_data` all match. These are the kubeconfig's secret
 * fields (and client-node's names for them), HTTP auth, and the kubeconfig itself.
 */
const SENSITIVE_KEYS = new Set([
  'token',
  'password',
  'passwd',
  'clientkeydata',
  'clientcertificatedata',
  'certificateauthoritydata',
  'keydata',
  'certdata',
  'cadata',
  'authorization',
  'proxyauthorization',
  'accesstoken',
  'idtoken',
  'refreshtoken',
  'bearertoken',
  'apikey',
  'kubeconfig',
]);

/** Whether a field name is one whose value must never be logged. */
export function isSensitiveKey(key: string): boolean {
  return SENSITIVE_KEYS.has(key.toLowerCase().replace(/[-_]/g, ''));
}

// Patterns applied to every string. Order matters: whole blocks first, so a PEM body is removed as one
// piece before the key/value pattern could leave parts of it behind.
const PEM_BLOCK = /-----BEGIN [A-Z0-9 ]+-----[\s\S]*?(?:-----END [A-Z0-9 ]+-----|$)/g;
// base64 of "-----BEGIN": how a PEM looks inside a kubeconfig's *-data fields.
const BASE64_PEM = /LS0tLS1CRUdJTi[A-Za-z0-9+/=]*/g;
const BEARER = /\b(Bearer)\s+[A-Za-z0-9\-._~+/]+=*/gi;
// Service-account tokens and OIDC ID tokens are JWTs: header.payload.signature, base64url, "eyJ" = '{"'.
const JWT = /\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;
// `token: x`, `password=x`, `"client-key-data":"x"`, also inside JSON escaped into a string (`\"token\":\"x\"`).
const KEY_VALUE =
  /\b([a-z_-]*token|password|passwd|client-key-data|client-certificate-data|certificate-authority-data|authorization)(\\?["']?\s*[:=]\s*)(\\?["']?)([^\s"'\\,;}\]]+)/gi;

/** Scrubs bearer tokens, JWTs, PEM blocks (plain or base64) and `token:`/`password:`-style values from text. */
export function redactString(text: string): string {
  return text
    .replace(PEM_BLOCK, '[REDACTED PEM]')
    .replace(BASE64_PEM, '[REDACTED PEM]')
    .replace(BEARER, `$1 ${REDACTED}`)
    .replace(JWT, REDACTED)
    .replace(KEY_VALUE, (_m, key: string, sep: string, quote: string, value: string) =>
      // A value an earlier pattern already replaced stays as it is.
      value.startsWith('[REDACTED') ? `${key}${sep}${quote}${value}` : `${key}${sep}${quote}${REDACTED}`,
    );
}

const MAX_DEPTH = 8;

/**
 * Returns a redacted deep copy of any value: strings through {@link redactString}, values of
 * {@link isSensitiveKey} fields replaced, errors turned into plain objects (name, message, stack, code,
 * own fields, cause) so they serialise at all, binary buffers summarised (they may hold key material),
 * cycles and depth beyond 8 cut. The input is never modified.
 */
export function redactValue(value: unknown): unknown {
  return redact(value, 0, new WeakSet());
}

function redact(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object') {
    return typeof value === 'function' ? '[Function]' : value;
  }
  if (value instanceof Date) return value;
  if (value instanceof Uint8Array) return `[binary ${value.byteLength} bytes]`;
  if (seen.has(value)) return '[Circular]';
  if (depth >= MAX_DEPTH) return '[Truncated]';
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1, seen));
    const out: Record<string, unknown> = {};
    if (value instanceof Error) {
      out.name = value.name;
      out.message = redactString(value.message);
      if (value.stack !== undefined) out.stack = redactString(value.stack);
    }
    for (const [k, v] of Object.entries(value)) {
      out[k] = isSensitiveKey(k) ? REDACTED : redact(v, depth + 1, seen);
    }
    if (value instanceof Error && value.cause !== undefined) out.cause = redact(value.cause, depth + 1, seen);
    return out;
  } finally {
    seen.delete(value);
  }
}

/**
 * A winston format that redacts every string-keyed field of a log entry (see {@link redactValue}).
 * Place it after `format.errors` and before `format.json`; winston's own symbol-keyed fields are kept.
 */
export const redactFormat = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (key === 'level') continue;
    info[key] = isSensitiveKey(key) ? REDACTED : redact(info[key], 0, new WeakSet());
  }
  return info;
});

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Log level; default from `env.LOG_LEVEL`, else `info`. */
  level?: string;
  /** Environment read for `LOG_LEVEL` (default `process.env`). */
  env?: Record<string, string | undefined>;
  /** Added to every line, e.g. `{ component: 'manager' }`. */
  defaultMeta?: Record<string, unknown>;
  /** Where lines go (default stdout). Lines are newline-terminated JSON. */
  stream?: NodeJS.WritableStream;
}

/**
 * Resolves the level: the explicit option, else `LOG_LEVEL`, else `info`. An unknown value throws, so a
 * typo in a Deployment fails loudly at start instead of silently logging at the wrong level.
 */
export function resolveLogLevel(level: string | undefined, env: Record<string, string | undefined>): LogLevel {
  const wanted = (level ?? env.LOG_LEVEL ?? 'info').trim().toLowerCase();
  if (wanted === '') return 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(wanted)) {
    throw new Error(`unknown log level "${wanted}" (LOG_LEVEL); expected one of ${LOG_LEVELS.join(', ')}`);
  }
  return wanted as LogLevel;
}

/**
 * Creates the operator's JSON logger: ISO timestamp, error stacks, redaction, JSON. Use
 * `logger.child({ rollout: 'ns/name', cluster: 'prod-east-1' })` to carry context fields.
 */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = resolveLogLevel(opts.level, opts.env ?? process.env);
  return winston.createLogger({
    level,
    levels: winston.config.npm.levels,
    defaultMeta: opts.defaultMeta,
    format: winston.format.combine(winston.format.errors({ stack: true }), winston.format.timestamp(), redactFormat(), winston.format.json()),
    transports: [new winston.transports.Stream({ stream: opts.stream ?? process.stdout })],
  });
}

/** Context fields the operator's log lines carry. */
export interface LogContext {
  /** `namespace/name` of the TelemetryRollout. */
  rollout?: string;
  /** Name of the target cluster. */
  cluster?: string;
  /** The controller or component. */
  controller?: string;
}

/** A child logger carrying rollout/cluster fields (a typed `logger.child`). */
export function withContext(logger: Logger, ctx: LogContext): Logger {
  return logger.child({ ...ctx });
}
