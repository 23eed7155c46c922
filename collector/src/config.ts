/**
 * The collector's configuration: `spec.collector.config` of the TelemetryRollout CRD, rendered by the
 * operator into a ConfigMap that the agent reads from `TRO_CONFIG`.
 *
 * One source of truth: `COLLECTOR_CONFIG_OPENAPI` is the structural schema embedded in the CRD, and
 * `validateCollectorConfig` walks that same schema (plus the TypeScript twin of each CEL rule), so the
 * operator, the agent and the API server agree on what is valid. `DEFAULT_CONFIG` equals the schema's
 * defaults (a unit test proves it). The schema itself is in configschema.ts (re-exported here).
 */
import type { LogLevel } from '#core/logger.js';
import { ConfigError } from './errors.js';
import { BACKOFF_RULE, COLLECTOR_CONFIG_OPENAPI, type OpenApiSchema } from './configschema.js';

export { COLLECTOR_CONFIG_OPENAPI, type OpenApiSchema } from './configschema.js';

/** Where pod/container metadata comes from. `Naive` is the incident pattern: pressure tests only. */
export type MetadataMode = 'Kubelet' | 'Naive';
/** Resources the cluster-mode watcher can watch. */
export type WatchedResource = 'pods' | 'services' | 'endpointslices' | 'nodes';
/** The log levels the agent accepts (winston's names; the shared core's logger defines them). */
export type { LogLevel } from '#core/logger.js';

/** The fully resolved collector configuration (every field present). See COLLECTOR_CONFIG_OPENAPI. */
export interface CollectorConfig {
  /** Collection interval in seconds, 1..3600. */
  intervalSeconds: number;
  metadata: {
    /** Kubelet (frugal, node-local) or Naive (cluster-wide LIST/WATCH from every node: dangerous). */
    mode: MetadataMode;
    /** Base URL of the node's kubelet read-only API; the agent GETs `<kubeletURL>/pods`. */
    kubeletURL: string;
    /** Naive mode only: cluster-wide relist period in seconds, 1..3600. */
    naiveRelistSeconds: number;
  };
  clusterWatcher: {
    /** Run the leader-elected cluster-mode watcher Deployment. */
    enabled: boolean;
    /** Resources the watcher lists (resourceVersion=0) and watches. */
    resources: WatchedResource[];
  };
  apiRateLimit: {
    /** Token-bucket refill per second, per agent: (0, 100]. */
    qps: number;
    /** Token-bucket size: 1..1000. */
    burst: number;
  };
  backoff: {
    /** First retry delay in seconds, (0, 3600]. */
    initialSeconds: number;
    /** Cap of the exponential delay in seconds, >= initialSeconds, <= 86400. */
    maxSeconds: number;
    /** Fraction 0..1 of each delay that is randomised (see backoff.ts). */
    jitter: number;
  };
  collect: {
    /** CPU, memory, filesystem, network from /proc and /sys. */
    node: boolean;
    /** Container and pod info from the kubelet /pods. */
    containers: boolean;
  };
  /**
   * The node-local break-glass stop directory: one file per issuer and scope (`auto-<rev>`, `manual-all`...);
   * the agent stops while any of them names its revision or `*` (see killswitch.ts).
   */
  stopDirectory: string;
  /** Deprecated (read for one more release): the single stop file of the previous layout, obeyed as well. */
  stopFilePath: string;
  /** Port of the agent's HTTP server (/metrics, /healthz, and /metadata in cluster mode), 1024..65535. */
  metricsPort: number;
  /** Minimum level of the JSON logs. */
  logLevel: LogLevel;
}

/** A partial config as written by a user: every field optional at every depth. */
export type CollectorConfigInput = {
  [K in keyof CollectorConfig]?: CollectorConfig[K] extends unknown[]
    ? CollectorConfig[K]
    : CollectorConfig[K] extends object
      ? Partial<CollectorConfig[K]>
      : CollectorConfig[K];
};

/** One validation problem. `path` is dotted from the prefix given to the validator. */
export interface ConfigValidationError {
  path: string;
  message: string;
}

/** The defaults of every field; identical to the `default`s in COLLECTOR_CONFIG_OPENAPI. */
export const DEFAULT_CONFIG: Readonly<CollectorConfig> = Object.freeze({
  intervalSeconds: 10,
  metadata: { mode: 'Kubelet', kubeletURL: 'http://127.0.0.1:10255', naiveRelistSeconds: 30 },
  clusterWatcher: { enabled: true, resources: ['pods', 'services'] },
  apiRateLimit: { qps: 2, burst: 5 },
  backoff: { initialSeconds: 1, maxSeconds: 300, jitter: 0.5 },
  collect: { node: true, containers: true },
  stopDirectory: '/var/run/telemetry-rollout/stop.d',
  stopFilePath: '/var/run/telemetry-rollout/stop',
  metricsPort: 9464,
  logLevel: 'info',
} satisfies CollectorConfig);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function join(prefix: string, key: string): string {
  return prefix ? `${prefix}.${key}` : key;
}

function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/** Validates `value` against one schema node; appends problems to `errors`. */
function validateNode(value: unknown, schema: OpenApiSchema, path: string, errors: ConfigValidationError[]): void {
  const where = path || '(root)';
  switch (schema.type) {
    case 'object': {
      if (!isPlainObject(value)) {
        errors.push({ path: where, message: `must be an object, got ${describeType(value)}` });
        return;
      }
      const props = schema.properties ?? {};
      for (const [key, child] of Object.entries(value)) {
        const sub = props[key];
        // Structural schemas prune unknown fields silently; a typo would then quietly fall back to a
        // default, so the validator reports them instead.
        if (!sub) errors.push({ path: join(path, key), message: 'unknown field' });
        else validateNode(child, sub, join(path, key), errors);
      }
      return;
    }
    case 'array': {
      if (!Array.isArray(value)) {
        errors.push({ path: where, message: `must be an array, got ${describeType(value)}` });
        return;
      }
      if (schema.maxItems !== undefined && value.length > schema.maxItems) {
        errors.push({ path: where, message: `must have at most ${schema.maxItems} items` });
      }
      if (schema.items) {
        value.forEach((item, i) => validateNode(item, schema.items!, `${path}[${i}]`, errors));
      }
      if (schema['x-kubernetes-list-type'] === 'set') {
        const seen = new Set<string>();
        value.forEach((item, i) => {
          const k = JSON.stringify(item);
          if (seen.has(k)) errors.push({ path: `${path}[${i}]`, message: `duplicate value ${k}` });
          seen.add(k);
        });
      }
      return;
    }
    case 'string': {
      if (typeof value !== 'string') {
        errors.push({ path: where, message: `must be a string, got ${describeType(value)}` });
        return;
      }
      if (schema.enum && !schema.enum.includes(value)) {
        errors.push({ path: where, message: `must be one of ${schema.enum.join(', ')}, got "${value}"` });
      }
      if (schema.maxLength !== undefined && value.length > schema.maxLength) {
        errors.push({ path: where, message: `must be at most ${schema.maxLength} characters` });
      }
      if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value)) {
        errors.push({ path: where, message: `must match ${schema.pattern}, got "${value}"` });
      }
      return;
    }
    case 'integer':
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        errors.push({ path: where, message: `must be a ${schema.type}, got ${describeType(value)}` });
        return;
      }
      if (schema.type === 'integer' && !Number.isInteger(value)) {
        errors.push({ path: where, message: `must be an integer, got ${value}` });
      }
      if (schema.minimum !== undefined) {
        if (schema.exclusiveMinimum ? value <= schema.minimum : value < schema.minimum) {
          errors.push({
            path: where,
            message: `must be ${schema.exclusiveMinimum ? '>' : '>='} ${schema.minimum}, got ${value}`,
          });
        }
      }
      if (schema.maximum !== undefined) {
        if (schema.exclusiveMaximum ? value >= schema.maximum : value > schema.maximum) {
          errors.push({
            path: where,
            message: `must be ${schema.exclusiveMaximum ? '<' : '<='} ${schema.maximum}, got ${value}`,
          });
        }
      }
      if (schema.enum && !schema.enum.includes(value)) {
        errors.push({ path: where, message: `must be one of ${schema.enum.join(', ')}, got ${value}` });
      }
      return;
    }
    case 'boolean':
      if (typeof value !== 'boolean') {
        errors.push({ path: where, message: `must be a boolean, got ${describeType(value)}` });
      }
      return;
  }
}

/**
 * Validates a (partial) collector config against COLLECTOR_CONFIG_OPENAPI and its cross-field rules.
 * Returns every problem found (empty when valid); never throws. `prefix` is prepended to paths, e.g.
 * `spec.collector.config` gives `spec.collector.config.apiRateLimit.qps`. `undefined`/`null` are valid
 * (the whole config defaults). Cross-field rules are checked on the defaulted object, as the API server
 * does (defaulting runs before validation), and only when the fields they read are individually valid.
 */
export function validateCollectorConfig(obj: unknown, prefix = ''): ConfigValidationError[] {
  if (obj === undefined || obj === null) return [];
  const errors: ConfigValidationError[] = [];
  validateNode(obj, COLLECTOR_CONFIG_OPENAPI, prefix, errors);
  if (errors.length === 0) {
    const resolved = resolveConfig(obj);
    if (!BACKOFF_RULE.check(resolved.backoff)) {
      errors.push({ path: join(prefix, 'backoff'), message: BACKOFF_RULE.message });
    }
    // The same rule as the CRD's: one path cannot be both the directory and the legacy file.
    if (resolved.stopDirectory === resolved.stopFilePath) {
      errors.push({ path: join(prefix, 'stopDirectory'), message: 'must not be the legacy stopFilePath' });
    }
  }
  return errors;
}

/**
 * Applies DEFAULT_CONFIG to a partial config: objects merge field by field, arrays and scalars replace.
 * Does not validate (see parseCollectorConfig); returns a fresh object that shares nothing with
 * DEFAULT_CONFIG or the input, so callers may mutate it.
 */
export function resolveConfig(partial: CollectorConfigInput | undefined): CollectorConfig {
  const p = partial ?? {};
  return {
    intervalSeconds: p.intervalSeconds ?? DEFAULT_CONFIG.intervalSeconds,
    metadata: merge(DEFAULT_CONFIG.metadata, p.metadata),
    clusterWatcher: {
      enabled: p.clusterWatcher?.enabled ?? DEFAULT_CONFIG.clusterWatcher.enabled,
      resources: [...(p.clusterWatcher?.resources ?? DEFAULT_CONFIG.clusterWatcher.resources)],
    },
    apiRateLimit: merge(DEFAULT_CONFIG.apiRateLimit, p.apiRateLimit),
    backoff: merge(DEFAULT_CONFIG.backoff, p.backoff),
    collect: merge(DEFAULT_CONFIG.collect, p.collect),
    stopDirectory: p.stopDirectory ?? DEFAULT_CONFIG.stopDirectory,
    stopFilePath: p.stopFilePath ?? DEFAULT_CONFIG.stopFilePath,
    metricsPort: p.metricsPort ?? DEFAULT_CONFIG.metricsPort,
    logLevel: p.logLevel ?? DEFAULT_CONFIG.logLevel,
  };
}

/** Field-by-field merge where an explicit `undefined` in the partial keeps the default. */
function merge<T extends object>(defaults: T, partial: Partial<T> | undefined): T {
  const out = { ...defaults };
  for (const [k, v] of Object.entries(partial ?? {})) {
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

/**
 * Validates then resolves. Throws ConfigError listing every problem; `source` (e.g. a file path) is only
 * used in the error message.
 */
export function parseCollectorConfig(obj: unknown, source?: string): CollectorConfig {
  const errors = validateCollectorConfig(obj);
  if (errors.length > 0) throw new ConfigError(errors, source);
  return resolveConfig(obj as CollectorConfigInput | undefined);
}
