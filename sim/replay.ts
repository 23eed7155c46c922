/**
 * The replay's scenarios and what it reports of each. A scenario runs on a fresh {@link World} of the
 * same fleet and seed:
 * - `incident`: no operator; the bad revision is applied to every node of every cluster at once;
 * - `operator-defaults`: the same revision through the operator with a default spec (plus a
 *   break-glass transport, which has no default);
 * - `healthy`: a good revision through the operator with the same spec, until it completes (or ends);
 * - `healthy-ready`: the same on a fleet whose nodes are all Ready (the model's NotReady fraction set to
 *   0): a NotReady node's agent never becomes ready, which holds a step until its deadline;
 * - the overlapping-fault scenarios of faults.ts (their own model or fleet where they say so).
 * The bad revision declares the frugal (Kubelet) mode, so preflight lets it through; its image LISTs the
 * whole cluster (agents.ts), which only the gates can see.
 */
import { SLO_P99_SECONDS, World, type ClusterStats, type SeriesPoint } from './world.js';
import { describeFleet, type ClusterShape } from './fleet.js';
import type { Behaviour } from './model/agents.js';
import type { Model } from './model/calibration.js';
import { isModelScenario, MODEL_SCENARIO_NAMES, MODEL_SCENARIOS, type Findings } from './scenarios/models.js';
import { FAULT_HORIZONS, FAULT_PLANS, FAULT_SCENARIOS, isFaultScenario, type FaultReport } from './faults.js';

/** The good collector image (frugal, as declared). */
export const GOOD_IMAGE = 'registry.example/telemetry-collector:1.4.0';
/** The incident's image: declared frugal, LISTs the whole cluster from every node. */
export const BAD_IMAGE = 'registry.example/telemetry-collector:1.5.0';

/** What each image does on the API server. */
export const behaviourOf = (image: string): Behaviour => (image === BAD_IMAGE ? 'list-everything' : 'frugal');

/** The scenarios, in the order the replay runs them (then the model scenarios of scenarios/models.ts and the fault scenarios of faults.ts). */
export const SCENARIOS = ['incident', 'operator-defaults', 'healthy', 'healthy-ready', ...MODEL_SCENARIO_NAMES, ...FAULT_SCENARIOS] as const;
/** A scenario's name. */
export type ScenarioName = (typeof SCENARIOS)[number];

/** Virtual seconds before the bad or good revision is introduced (a baseline for the gates). */
const LEAD_IN_SECONDS = 60;

/** Options of one replay. */
export interface ReplayOptions {
  seed: number;
  model: Model;
  fleet: ClusterShape[];
  /** Virtual-time limits, seconds after the revision is introduced. */
  horizons: Record<ScenarioName, number>;
}

/** Horizons of the full replay. */
export const FULL_HORIZONS: Record<ScenarioName, number> = {
  incident: 1800,
  'operator-defaults': 3 * 3600,
  // A good revision on the full fleet with the default strategy (the fleet stage moves 2 clusters at a
  // time, 3 steps of at least 300 s each) needs most of a day of virtual time and about 45 minutes of wall
  // time per scenario; the replay stops it after 3 hours, past the canary (the 7,500-node cluster, the
  // hard part) and into the fleet stage, and reports where it stands. `--quick` runs good revisions to
  // completion.
  healthy: 3 * 3600,
  'healthy-ready': 3 * 3600,
  ...modelHorizons('full'),
  ...FAULT_HORIZONS.full,
};
/** Horizons of the quick replay. */
export const QUICK_HORIZONS: Record<ScenarioName, number> = {
  incident: 1200,
  'operator-defaults': 2 * 3600,
  healthy: 24 * 3600,
  'healthy-ready': 24 * 3600,
  ...modelHorizons('quick'),
  ...FAULT_HORIZONS.quick,
};

function modelHorizons(which: 'full' | 'quick'): Record<(typeof MODEL_SCENARIO_NAMES)[number], number> {
  return Object.fromEntries(MODEL_SCENARIO_NAMES.map((n) => [n, MODEL_SCENARIOS[n].horizons[which]])) as Record<(typeof MODEL_SCENARIO_NAMES)[number], number>;
}

/**
 * What one scenario measured. Times of the bad revision (detection, rollback, recovery) are seconds
 * after its first agent ran; the good revision's completion is seconds after the rollout was created.
 */
export interface ScenarioResult {
  scenario: ScenarioName;
  fleet: ReturnType<typeof describeFleet>;
  /** Virtual seconds simulated after the revision was introduced. */
  simulatedSeconds: number;
  /** When the first bad agent ran, seconds after the revision was introduced (null: never). */
  firstBadAgentSeconds: number | null;
  /** Nodes on which the bad revision's agent ran (unstopped), and their share of the fleet's nodes. */
  exposedNodes: number;
  exposedFraction: number;
  /**
   * First gate failure or unreachable cluster the operator reported (null: none, or no operator); for a
   * good revision, a false alarm, counted from the rollout's creation.
   */
  detectionSeconds: number | null;
  /** When the operator began rolling back (null: it did not). */
  rollbackSeconds: number | null;
  /** Cluster-seconds with the API p99 over the SLO (while up), summed over the fleet, and the worst cluster's. */
  pastSloClusterSeconds: number;
  pastSloWorstClusterSeconds: number;
  clustersPastSlo: number;
  /** Clusters whose API server crashed at least once, and the cluster-seconds they were down. */
  clustersCrashed: number;
  downClusterSeconds: number;
  /**
   * Cluster-seconds in which CoreDNS answered service names with SERVFAIL (its records expired while the
   * API server was down), summed over the fleet, the worst cluster's, and the clusters that had any.
   */
  dnsFailClusterSeconds: number;
  dnsFailWorstClusterSeconds: number;
  clustersWithDnsFailures: number;
  /**
   * Last moment any cluster was unhealthy (down, past SLO, or a bad agent running); null if still
   * unhealthy at the end, or no bad agent ever ran.
   */
  recoverSeconds: number | null;
  /** When the rollout reached Succeeded (null: not within the horizon, or not this scenario). */
  completeSeconds: number | null;
  /** Bad agents still running unstopped at the end on clusters whose API server crashed. */
  badAgentsActiveOnCrashedClusters: number;
  /** Bad agents still running unstopped at the end, fleet-wide. */
  badAgentsActiveAtEnd: number;
  /** The rollout's phase at the end (operator scenarios), and its first cluster's message. */
  finalPhase: string | null;
  finalMessage: string | null;
  /** Reconcile passes and those that threw. */
  passes: number;
  passErrors: number;
  /** The first warnings the operator recorded (time in seconds after the revision was introduced). */
  warnings: Array<{ t: number; reason: string; message: string }>;
  /** Per cluster, those touched by the scenario (crashed, past SLO, or exposed). */
  clusters: Array<ClusterStats & { exposed: number; badActiveAtEnd: number }>;
  /** API p99, availability, bad agents and CoreDNS SERVFAILs over time, for the three largest clusters. */
  series: Record<string, SeriesPoint[]>;
  /** A model scenario's own findings (scenarios/models.ts); null for the others. */
  checks: Findings | null;
  /** The fault scenarios' own measurements (faults.ts). */
  faults?: FaultReport;
}

/** A TelemetryRollout over the whole fleet with the default spec and a break-glass transport. */
export function rolloutManifest(fleet: ClusterShape[], image: string): Record<string, unknown> {
  return {
    apiVersion: 'telemetry.rollout.dev/v1alpha1',
    kind: 'TelemetryRollout',
    metadata: { name: 'collector', namespace: 'default' },
    spec: {
      // Declared frugal: what preflight judges.
      collector: { image, config: { metadata: { mode: 'Kubelet' } } },
      targets: { clusters: fleet.map((c) => ({ name: c.name, kubeconfigSecretRef: { name: `${c.name}-kubeconfig` } })) },
      // The transport has no default; the simulated one stands for ssh whatever the type says.
      breakGlass: { transport: { type: 'local', local: { rootDir: '/' } } },
    },
  };
}

/** Runs one scenario and measures it. */
export async function runScenario(name: ScenarioName, o: ReplayOptions): Promise<ScenarioResult> {
  const plan = isModelScenario(name) ? MODEL_SCENARIOS[name] : undefined;
  const fault = isFaultScenario(name) ? FAULT_PLANS[name] : undefined;
  const baseModel = name === 'healthy-ready' || plan?.allNodesReady ? { ...o.model, cluster: { ...o.model.cluster, notReadyFraction: 0 } } : o.model;
  const model = fault?.model?.(baseModel) ?? baseModel;
  const fleet = fault?.fleet?.(o.fleet) ?? o.fleet;
  const world = new World({ seed: o.seed, model, fleet, behaviourOf, ...plan?.world });
  const t0 = world.start + LEAD_IN_SECONDS * 1000;
  const end = t0 + o.horizons[name] * 1000;
  await world.clock.runUntil(t0);
  let operator: ReturnType<World['startOperator']> | undefined;
  let completedAt: number | undefined;
  let stop: () => boolean = () => false;
  let findings: (() => Findings) | undefined;
  let faultReport: (() => FaultReport) | undefined;
  if (name === 'incident') {
    for (const c of world.clusters.values()) c.applyDirect(incidentDaemonSet());
  } else {
    const good = plan ? plan.revision === 'good' : name === 'healthy' || name === 'healthy-ready' || fault?.good === true;
    const manifest = rolloutManifest(fleet, good ? GOOD_IMAGE : BAD_IMAGE);
    plan?.manifest?.(manifest as Parameters<NonNullable<typeof plan.manifest>>[0]);
    operator = world.startOperator(manifest);
    const store = operator.store;
    if (plan) findings = plan.arm({ world, store, kick: operator.kick, fleet, t0 });
    faultReport = fault?.arm(world, operator, t0);
    if (good) {
      let pausedSince: number | undefined;
      stop = () => {
        const phase = store.current().status?.phase;
        if (phase === 'Succeeded') completedAt ??= world.clock.nowMs();
        // A model scenario's rollout that paused waits for a person, who is not modelled: ten minutes
        // of pause end it (reported with its phase).
        pausedSince = phase === 'Paused' ? (pausedSince ?? world.clock.nowMs()) : undefined;
        if (plan && pausedSince !== undefined && world.clock.nowMs() - pausedSince > 600_000) return true;
        return phase === 'Succeeded' || phase === 'RolledBack' || phase === 'Failed';
      };
    } else {
      // Done once a bad agent has run, the fleet has then been healthy for ten minutes and the rollout
      // has settled; or, if it does not settle (a rollback that cannot finish clearing its stop files),
      // after an hour of health: reported with its phase, not waited for.
      stop = () => {
        if (world.firstBadAt === undefined || world.lastUnhealthyAt === undefined || world.active('list-everything') > 0) return false;
        const quiet = world.clock.nowMs() - world.lastUnhealthyAt;
        const phase = store.current().status?.phase;
        const settled = phase === 'RolledBack' || phase === 'Failed' || phase === 'Succeeded';
        return quiet > (settled ? 600_000 : 3_600_000);
      };
    }
  }
  await world.clock.runUntil(end, stop);
  operator?.stop();
  const at = world.clock.nowMs();
  const rel = (ms: number | undefined): number | null => (ms === undefined ? null : Math.round((ms - t0) / 1000));
  const bad0 = world.firstBadAt;
  // Bad-revision times count from its first agent; without one (a good revision), from the rollout's creation.
  const base = bad0 ?? t0;
  const sinceBad = (ms: number | undefined): number | null => (ms === undefined ? null : Math.round((ms - base) / 1000));
  const firstEvent = (reasons: string[]): number | null => {
    const e = world.events.find((x) => reasons.includes(x.reason));
    return e === undefined ? null : sinceBad(world.start + e.t * 1000);
  };
  const stats = [...world.stats.values()];
  const clusters = stats
    .map((s) => {
      const c = world.clusters.get(s.name)!;
      return { ...s, exposed: c.exposedByBehaviour('list-everything'), badActiveAtEnd: c.activeByBehaviour('list-everything') };
    })
    .filter((s) => s.crashes > 0 || s.pastSloSeconds > 0 || s.exposed > 0);
  const exposed = world.exposed('list-everything');
  const stillUnhealthy = world.lastUnhealthyAt !== undefined && at - world.lastUnhealthyAt < 5000;
  return {
    scenario: name,
    fleet: describeFleet(fleet),
    simulatedSeconds: Math.round((at - t0) / 1000),
    firstBadAgentSeconds: rel(bad0),
    exposedNodes: exposed,
    exposedFraction: exposed / world.nodes,
    detectionSeconds: operator ? firstEvent(['GateFailed', 'ClusterUnreachable', 'ProjectionExceedsSLO']) : null,
    rollbackSeconds: operator ? firstEvent(['RollingBack']) : null,
    pastSloClusterSeconds: stats.reduce((a, s) => a + s.pastSloSeconds, 0),
    pastSloWorstClusterSeconds: Math.max(0, ...stats.map((s) => s.pastSloSeconds)),
    clustersPastSlo: stats.filter((s) => s.pastSloSeconds > 0).length,
    clustersCrashed: stats.filter((s) => s.crashes > 0).length,
    downClusterSeconds: stats.reduce((a, s) => a + s.downSeconds, 0),
    dnsFailClusterSeconds: stats.reduce((a, s) => a + s.dnsFailSeconds, 0),
    dnsFailWorstClusterSeconds: Math.max(0, ...stats.map((s) => s.dnsFailSeconds)),
    clustersWithDnsFailures: stats.filter((s) => s.dnsFailSeconds > 0).length,
    recoverSeconds: world.lastUnhealthyAt === undefined || bad0 === undefined ? null : stillUnhealthy ? null : sinceBad(world.lastUnhealthyAt),
    completeSeconds: rel(completedAt),
    badAgentsActiveOnCrashedClusters: clusters.filter((c) => c.crashes > 0).reduce((a, c) => a + c.badActiveAtEnd, 0),
    badAgentsActiveAtEnd: world.active('list-everything'),
    finalPhase: operator ? (operator.store.current().status?.phase ?? 'Pending') : null,
    finalMessage: operator
      ? (operator.store
          .current()
          .status?.clusters?.find((c) => c.phase !== 'Pending')
          ?.message?.slice(0, 300) ?? null)
      : null,
    warnings: world.events
      .filter((e) => e.type === 'Warning')
      .slice(0, 12)
      .map((e) => ({ t: Math.round(e.t - LEAD_IN_SECONDS), reason: e.reason, message: e.message.slice(0, 300) })),
    passes: world.passes,
    passErrors: world.passErrors,
    clusters,
    series: Object.fromEntries(world.series),
    checks: findings ? findings() : null,
    ...(faultReport ? { faults: faultReport() } : {}),
  };
}

/** The incident's DaemonSet: the bad image on every node (stable: no node label needed). */
function incidentDaemonSet() {
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: {
      name: 'telemetry-collector',
      namespace: 'telemetry-system',
      labels: { 'telemetry.rollout.dev/collector-revision': 'incident', 'telemetry.rollout.dev/stable': 'true' },
    },
    spec: { template: { spec: { containers: [{ name: 'collector', image: BAD_IMAGE }] } } },
  };
}

/** Runs the given scenarios one after the other. */
export async function runReplay(scenarios: readonly ScenarioName[], o: ReplayOptions): Promise<ScenarioResult[]> {
  const out: ScenarioResult[] = [];
  for (const s of scenarios) out.push(await runScenario(s, o));
  return out;
}

/** The replay's table: one row per scenario. */
export function formatTable(results: ScenarioResult[]): string {
  const secs = (v: number | null): string => (v === null ? '—' : `${v} s`);
  const rows = results.map((r) => [
    r.scenario,
    `${r.exposedNodes} (${(r.exposedFraction * 100).toFixed(2)} %)`,
    secs(r.detectionSeconds),
    secs(r.rollbackSeconds),
    `${r.pastSloClusterSeconds} s (${r.clustersPastSlo} clusters, worst ${r.pastSloWorstClusterSeconds} s)`,
    `${r.clustersCrashed} (${r.downClusterSeconds} s down)`,
    `${r.dnsFailClusterSeconds} s (${r.clustersWithDnsFailures} clusters, worst ${r.dnsFailWorstClusterSeconds} s)`,
    r.firstBadAgentSeconds === null ? '—' : r.recoverSeconds === null ? `not within ${r.simulatedSeconds} s` : `${r.recoverSeconds} s`,
    secs(r.completeSeconds),
    r.finalPhase ?? '—',
  ]);
  const head = [
    'scenario',
    'nodes exposed to the bad revision',
    'detection (after the first bad agent ran)',
    'rollback began',
    `cluster-seconds p99 > ${SLO_P99_SECONDS} s`,
    'API servers crashed',
    'cluster-seconds of DNS SERVFAIL',
    'recovered',
    'good revision complete',
    'final phase',
  ];
  const lines = [head, head.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`);
  return lines.join('\n');
}
