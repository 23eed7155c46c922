/**
 * The collector config's structural OpenAPI schema (embedded in the CRD) and its cross-field rules,
 * split from config.ts, which validates against it and re-exports it.
 */
import type { CollectorConfig } from './config.js';

/**
 * The subset of Kubernetes' JSONSchemaProps (OpenAPI v3, structural) that the collector's schema uses.
 * Kept deliberately small: the validator below implements exactly these keywords.
 */
export interface OpenApiSchema {
  type: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description: string;
  default?: unknown;
  properties?: Record<string, OpenApiSchema>;
  items?: OpenApiSchema;
  enum?: readonly (string | number)[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  maxItems?: number;
  maxLength?: number;
  pattern?: string;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-validations'?: readonly { rule: string; message: string }[];
}

/**
 * Cross-field rules: the CEL text that goes into the schema and its TypeScript twin used by
 * validateCollectorConfig (the operator validates without an API server at hand). A unit test evaluates
 * the CEL text with a CEL interpreter on the same cases to prove both agree.
 */
export const BACKOFF_RULE = {
  rule: 'self.maxSeconds >= self.initialSeconds',
  message: 'backoff.maxSeconds must be greater than or equal to backoff.initialSeconds',
  check: (b: CollectorConfig['backoff']): boolean => b.maxSeconds >= b.initialSeconds,
};

/**
 * The structural OpenAPI v3 schema of `spec.collector.config`, to be embedded verbatim in the CRD.
 * Every field has a description and a default; nested objects default to `{}` so that the API server
 * applies the nested defaults even when a whole section is omitted. Uniqueness of `resources` uses
 * `x-kubernetes-list-type: set` because structural schemas forbid `uniqueItems: true`.
 */
export const COLLECTOR_CONFIG_OPENAPI: OpenApiSchema = {
  type: 'object',
  description:
    'Configuration of the telemetry collector agent, rendered into a ConfigMap and read by every agent. ' +
    'All fields are optional; the defaults are frugal with the API server.',
  default: {},
  properties: {
    intervalSeconds: {
      type: 'integer',
      description: 'Collection interval in seconds (node telemetry and kubelet /pods).',
      default: 10,
      minimum: 1,
      maximum: 3600,
    },
    metadata: {
      type: 'object',
      description: 'Where pod and container metadata comes from.',
      default: {},
      properties: {
        mode: {
          type: 'string',
          description:
            'Kubelet: node-local metadata from the kubelet read-only API, no cluster-wide LIST/WATCH. ' +
            'Naive: DANGEROUS, reproduces the December 2024 incident pattern (every node LISTs pods, services ' +
            'and endpoints cluster-wide without resourceVersion, watches them and relists periodically); for ' +
            'pressure tests only, the operator refuses it on large clusters.',
          default: 'Kubelet',
          enum: ['Kubelet', 'Naive'],
        },
        kubeletURL: {
          type: 'string',
          description: "Base URL of the node's kubelet read-only API; the agent GETs <kubeletURL>/pods.",
          default: 'http://127.0.0.1:10255',
          pattern: '^https?://[^\\s]+$',
          maxLength: 256,
        },
        naiveRelistSeconds: {
          type: 'integer',
          description: 'Naive mode only: period in seconds of the cluster-wide relist.',
          default: 30,
          minimum: 1,
          maximum: 3600,
        },
      },
    },
    clusterWatcher: {
      type: 'object',
      description: 'The single leader-elected cluster-mode watcher (a Deployment), the only cluster-wide watch.',
      default: {},
      properties: {
        enabled: {
          type: 'boolean',
          description: 'Run the leader-elected cluster-mode watcher Deployment.',
          default: true,
        },
        resources: {
          type: 'array',
          description: 'Resources the watcher lists (resourceVersion=0, served from the watch cache) and then watches.',
          default: ['pods', 'services'],
          maxItems: 4,
          'x-kubernetes-list-type': 'set',
          items: {
            type: 'string',
            description: 'A resource to watch cluster-wide.',
            enum: ['pods', 'services', 'endpointslices', 'nodes'],
          },
        },
      },
    },
    apiRateLimit: {
      type: 'object',
      description: 'Client-side token bucket applied to every API server request of one agent.',
      default: {},
      properties: {
        qps: {
          type: 'number',
          description: 'Token-bucket refill rate in requests per second, per agent.',
          default: 2,
          minimum: 0,
          exclusiveMinimum: true,
          maximum: 100,
        },
        burst: {
          type: 'integer',
          description: 'Token-bucket capacity: requests that may be sent back to back.',
          default: 5,
          minimum: 1,
          maximum: 1000,
        },
      },
    },
    backoff: {
      type: 'object',
      description: 'Jittered exponential backoff on retryable API errors (429, 5xx, network) and before every relist.',
      default: {},
      'x-kubernetes-validations': [{ rule: BACKOFF_RULE.rule, message: BACKOFF_RULE.message }],
      properties: {
        initialSeconds: {
          type: 'number',
          description: 'Delay before the first retry, in seconds.',
          default: 1,
          minimum: 0,
          exclusiveMinimum: true,
          maximum: 3600,
        },
        maxSeconds: {
          type: 'number',
          description: 'Upper bound of the exponential delay, in seconds; at least initialSeconds.',
          default: 300,
          minimum: 0,
          exclusiveMinimum: true,
          maximum: 86400,
        },
        jitter: {
          type: 'number',
          description: 'Fraction of each delay that is randomised: a delay d is drawn uniformly from [d*(1-jitter), d].',
          default: 0.5,
          minimum: 0,
          maximum: 1,
        },
      },
    },
    collect: {
      type: 'object',
      description: 'What the node agent collects.',
      default: {},
      properties: {
        node: {
          type: 'boolean',
          description: 'CPU, memory, filesystem and network from /proc and /sys.',
          default: true,
        },
        containers: {
          type: 'boolean',
          description: 'Container and pod information (from the kubelet /pods).',
          default: true,
        },
      },
    },
    stopDirectory: {
      type: 'string',
      description:
        'Absolute path of the node-local break-glass stop directory (hostPath mounted read-only into the agent): the agent stops while any file in it names its revision or "*".',
      default: '/var/run/telemetry-rollout/stop.d',
      pattern: '^/[^\\s]*$',
      maxLength: 256,
    },
    stopFilePath: {
      type: 'string',
      description: 'Deprecated (read for one more release): the single stop file of the previous layout, still obeyed next to stopDirectory.',
      default: '/var/run/telemetry-rollout/stop',
      pattern: '^/[^\\s]*$',
      maxLength: 256,
    },
    metricsPort: {
      type: 'integer',
      description: "Port of the agent's HTTP server: /metrics, /healthz (and /metadata in cluster mode).",
      default: 9464,
      minimum: 1024,
      maximum: 65535,
    },
    logLevel: {
      type: 'string',
      description: 'Minimum level of the JSON logs.',
      default: 'info',
      enum: ['error', 'warn', 'info', 'debug'],
    },
  },
};
