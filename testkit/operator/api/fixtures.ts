/**
 * The table of invalid TelemetryRollouts, kept in one place so that both tiers use the same cases:
 * the offline validator's unit tests and the e2e test against the real kube-apiserver. Each case
 * names the field path that the error must mention.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { API_VERSION, KIND, findRepoRoot } from '../../../operator/src/api/crd.js';
import type { FieldError } from '../../../operator/src/api/validate.js';

/** Formats validation errors one per line as `path: message`, for readable test failures. */
export function formatErrors(errors: FieldError[]): string {
  return errors.map((e) => `${e.path}: ${e.message}`).join('\n');
}

/** A plain JSON object as it comes from YAML. */
export type Json = Record<string, unknown>;

/** A valid rollout that each invalid case mutates; it relies on defaults for everything optional. */
export function validBase(name = 'table-case'): Json {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name },
    spec: {
      collector: { image: 'registry.example/collector:1.0.0' },
      targets: {
        clusters: [
          { name: 'alpha', kubeconfigSecretRef: { name: 'alpha-kubeconfig' } },
          { name: 'beta', kubeconfigSecretRef: { name: 'beta-kubeconfig' } },
        ],
      },
    },
  };
}

/** One invalid case: how to break the base object, and the field the rejection must name. */
export interface InvalidCase {
  /** What is wrong, as a test title. */
  name: string;
  /** Mutates a fresh copy of {@link validBase}'s spec. */
  mutate: (spec: Json) => void;
  /** The field path the error must name, in the API server's notation. */
  field: string;
}

/** Sets a value deep in an object, creating plain objects on the way. */
function set(obj: Json, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur: Json = obj;
  for (const p of parts.slice(0, -1)) {
    cur[p] ??= {};
    cur = cur[p] as Json;
  }
  cur[parts[parts.length - 1] as string] = value;
}

const stage = (extra: Json): Json => ({ name: 's1', clusters: 1, ...extra });

/** At least twenty ways to get a rollout wrong, each rejected naming its field. */
export const INVALID_CASES: InvalidCase[] = [
  { name: 'missing collector image', mutate: (s) => set(s, 'collector', {}), field: 'spec.collector.image' },
  { name: 'empty collector image', mutate: (s) => set(s, 'collector.image', ''), field: 'spec.collector.image' },
  { name: 'missing targets', mutate: (s) => delete s.targets, field: 'spec.targets' },
  {
    name: 'both clusters and selector',
    mutate: (s) => set(s, 'targets.selector', { matchLabels: { fleet: 'prod' } }),
    field: 'spec.targets',
  },
  { name: 'neither clusters nor selector', mutate: (s) => set(s, 'targets', {}), field: 'spec.targets' },
  {
    name: 'duplicate cluster names',
    mutate: (s) =>
      set(s, 'targets.clusters', [
        { name: 'alpha', kubeconfigSecretRef: { name: 'a' } },
        { name: 'alpha', kubeconfigSecretRef: { name: 'b' } },
      ]),
    field: 'spec.targets.clusters[1]',
  },
  {
    name: 'cluster name not a DNS label',
    mutate: (s) => set(s, 'targets.clusters', [{ name: 'Prod_East', kubeconfigSecretRef: { name: 'a' } }]),
    field: 'spec.targets.clusters[0].name',
  },
  {
    name: 'cluster without kubeconfig secret',
    mutate: (s) => set(s, 'targets.clusters', [{ name: 'alpha' }]),
    field: 'spec.targets.clusters[0].kubeconfigSecretRef',
  },
  {
    name: 'node steps not increasing',
    mutate: (s) => set(s, 'strategy.stages', [stage({ nodeSteps: [5, 1, 100] })]),
    field: 'spec.strategy.stages[0].nodeSteps',
  },
  {
    name: 'node steps repeating a value',
    mutate: (s) => set(s, 'strategy.stages', [stage({ nodeSteps: [5, 5, 100] })]),
    field: 'spec.strategy.stages[0].nodeSteps',
  },
  {
    name: 'node steps not ending at 100',
    mutate: (s) => set(s, 'strategy.stages', [stage({ nodeSteps: [1, 5, 50] })]),
    field: 'spec.strategy.stages[0].nodeSteps',
  },
  {
    name: 'node step above 100',
    mutate: (s) => set(s, 'strategy.stages', [stage({ nodeSteps: [50, 150] })]),
    field: 'spec.strategy.stages[0].nodeSteps[1]',
  },
  { name: 'empty stages', mutate: (s) => set(s, 'strategy.stages', []), field: 'spec.strategy.stages' },
  {
    name: 'stage with both clusters and percent',
    mutate: (s) => set(s, 'strategy.stages', [stage({ percent: 50 })]),
    field: 'spec.strategy.stages[0]',
  },
  {
    name: 'stage percent over 100',
    mutate: (s) => set(s, 'strategy.stages', [{ name: 's1', percent: 120 }]),
    field: 'spec.strategy.stages[0].percent',
  },
  {
    name: 'zero maxConcurrentClusters',
    mutate: (s) => set(s, 'strategy.stages', [stage({ maxConcurrentClusters: 0 })]),
    field: 'spec.strategy.stages[0].maxConcurrentClusters',
  },
  {
    name: 'duplicate stage names',
    mutate: (s) => set(s, 'strategy.stages', [stage({}), stage({})]),
    field: 'spec.strategy.stages[1]',
  },
  { name: 'unknown order', mutate: (s) => set(s, 'strategy.order', 'SmallestFirst'), field: 'spec.strategy.order' },
  { name: 'unknown onFailure', mutate: (s) => set(s, 'gates.onFailure', 'Explode'), field: 'spec.gates.onFailure' },
  { name: 'unknown onNoData', mutate: (s) => set(s, 'gates.onNoData', 'Shrug'), field: 'spec.gates.onNoData' },
  {
    name: 'zero p99 threshold',
    mutate: (s) => set(s, 'gates.apiServer', { maxP99LatencySeconds: 0 }),
    field: 'spec.gates.apiServer.maxP99LatencySeconds',
  },
  {
    name: 'negative error ratio',
    mutate: (s) => set(s, 'gates.coreDNS', { maxErrorRatio: -0.1 }),
    field: 'spec.gates.coreDNS.maxErrorRatio',
  },
  {
    name: 'latency increase ratio not above 1',
    mutate: (s) => set(s, 'gates.apiServer', { maxLatencyIncreaseRatio: 1 }),
    field: 'spec.gates.apiServer.maxLatencyIncreaseRatio',
  },
  {
    name: 'negative latency noise floor',
    mutate: (s) => set(s, 'gates.apiServer', { minLatencyIncreaseSeconds: -0.1 }),
    field: 'spec.gates.apiServer.minLatencyIncreaseSeconds',
  },
  { name: 'zero failureLimit', mutate: (s) => set(s, 'gates.failureLimit', 0), field: 'spec.gates.failureLimit' },
  { name: 'failureLimit of the wrong type', mutate: (s) => set(s, 'gates.failureLimit', 'two'), field: 'spec.gates.failureLimit' },
  { name: 'paused of the wrong type', mutate: (s) => set(s, 'paused', 'yes'), field: 'spec.paused' },
  {
    name: 'ssh transport without ssh settings',
    mutate: (s) => set(s, 'breakGlass.transport', { type: 'ssh' }),
    field: 'spec.breakGlass.transport',
  },
  {
    name: 'local transport with ssh settings',
    mutate: (s) =>
      set(s, 'breakGlass.transport', {
        type: 'local',
        local: { rootDir: '/var/lib/nodes' },
        ssh: { user: 'u', privateKeySecretRef: { name: 'k', key: 'id' }, knownHostsSecretRef: { name: 'k', key: 'kh' } },
      }),
    field: 'spec.breakGlass.transport',
  },
  {
    name: 'ssh settings without known hosts',
    mutate: (s) => set(s, 'breakGlass.transport', { type: 'ssh', ssh: { user: 'u', privateKeySecretRef: { name: 'k', key: 'id' } } }),
    field: 'spec.breakGlass.transport.ssh.knownHostsSecretRef',
  },
  { name: 'unknown transport type', mutate: (s) => set(s, 'breakGlass.transport', { type: 'carrier-pigeon' }), field: 'spec.breakGlass.transport.type' },
  {
    name: 'unreachableAfterSeconds too small',
    mutate: (s) => set(s, 'breakGlass.unreachableAfterSeconds', 1),
    field: 'spec.breakGlass.unreachableAfterSeconds',
  },
  {
    name: 'break-glass stop file outside the directory the agents mount',
    mutate: (s) => set(s, 'breakGlass.transport', { type: 'local', stopFilePath: '/tmp/stop', local: { rootDir: '/nodes' } }),
    field: 'spec.breakGlass.transport.stopFilePath',
  },
  {
    name: "the agents' stop file outside the directory they mount",
    mutate: (s) => set(s, 'collector.config.stopFilePath', '/var/run/telemetry-rollout/../../etc/stop'),
    field: 'spec.collector.config.stopFilePath',
  },
  {
    name: 'break-glass stop directory outside the directory the agents mount',
    mutate: (s) => set(s, 'breakGlass.transport', { type: 'local', stopDirectory: '/tmp/stop.d', local: { rootDir: '/nodes' } }),
    field: 'spec.breakGlass.transport.stopDirectory',
  },
  {
    name: "the agents' stop directory escaping the directory they mount",
    mutate: (s) => set(s, 'collector.config.stopDirectory', '/var/run/telemetry-rollout/..'),
    field: 'spec.collector.config.stopDirectory',
  },
  {
    name: 'break-glass stop directory that is the legacy stop file',
    mutate: (s) =>
      set(s, 'breakGlass.transport', {
        type: 'local',
        stopDirectory: '/var/run/telemetry-rollout/stop',
        stopFilePath: '/var/run/telemetry-rollout/stop',
        local: { rootDir: '/nodes' },
      }),
    field: 'spec.breakGlass.transport.stopDirectory',
  },
  {
    name: 'reachableAfterSeconds negative',
    mutate: (s) => set(s, 'breakGlass.reachableAfterSeconds', -1),
    field: 'spec.breakGlass.reachableAfterSeconds',
  },
  {
    name: 'unknown collector metadata mode',
    mutate: (s) => set(s, 'collector.config', { metadata: { mode: 'Chatty' } }),
    field: 'spec.collector.config.metadata.mode',
  },
  {
    name: 'collector backoff max below initial',
    mutate: (s) => set(s, 'collector.config', { backoff: { initialSeconds: 10, maxSeconds: 5 } }),
    field: 'spec.collector.config.backoff.maxSeconds',
  },
  {
    name: 'collector zero qps',
    mutate: (s) => set(s, 'collector.config', { apiRateLimit: { qps: 0 } }),
    field: 'spec.collector.config.apiRateLimit.qps',
  },
  {
    name: 'selector with an In expression and no values',
    mutate: (s) => set(s, 'targets', { selector: { matchExpressions: [{ key: 'fleet', operator: 'In' }] } }),
    field: 'spec.targets.selector.matchExpressions[0]',
  },
];

/** Builds the full invalid object for a case, with a name unique to the case. */
export function invalidObject(c: InvalidCase, index: number): Json {
  const obj = validBase(`invalid-${index}`);
  c.mutate(obj.spec as Json);
  return obj;
}

/** Every sample manifest in config/samples, parsed, with its file name. */
export function loadSamples(): Array<{ file: string; object: Json }> {
  const dir = join(findRepoRoot(), 'config', 'samples');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((file) => ({ file, object: parse(readFileSync(join(dir, file), 'utf8')) as Json }));
}
