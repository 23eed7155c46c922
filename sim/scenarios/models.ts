/**
 * Scenarios that exercise the models beyond the API server (issue 14): a Prometheus that goes down, nodes
 * that come and go during an outage, a token that expires. Each one is a plan the replay runs through the
 * operator: the revision it rolls out, how the world and the rollout differ from the defaults, the faults
 * it schedules, and its own findings, which the replay puts in the result's `checks` (plain values, the
 * same for the same seed).
 *
 * - `prometheus-down`: the bad revision, every target's gates reading a Prometheus server
 *   (`metrics.prometheusURL`); the Prometheus servers go down when the first bad agent runs, so the bad
 *   step is judged on no data. The product's NoData policy (`onNoData`, default Pause) decides.
 * - `nodes-churn-during-outage`: the bad revision, with nodes replaced all along (the model's churn rate);
 *   when the canary's API server falls, 5 % of its nodes are replaced within a minute, half of the nodes
 *   that ran the bad agent among them. Recovery must not be wedged by nodes that no longer exist.
 * - `token-expires-mid-rollout`: a good revision on Ready nodes; once a cluster (the canary) is moving the
 *   nodes of its second step, its token is refused (HTTP 401) for 20 minutes, then renewed. If the rollout pauses after the renewal, a person retries it five minutes later (the
 *   documented remedy for a GateNoData pause); the findings say whether that was needed.
 */
import { RETRY_ANNOTATION } from '../../operator/src/rollout/controls.js';
import type { FakeRolloutStore } from '../../testkit/operator/rollout/fakes.js';
import type { ClusterShape } from '../fleet.js';
import type { SimCluster } from '../cluster.js';
import { prometheusUrl, type World, type WorldOptions } from '../world.js';

/** What a plan sees of a running scenario. */
export interface PlanContext {
  world: World;
  store: FakeRolloutStore;
  /** Enqueues the rollout, as the informer does after a person changes it. */
  kick: () => void;
  fleet: ClusterShape[];
  /** When the rollout was created (ms, virtual). */
  t0: number;
}

/** A scenario's findings: plain, deterministic values. */
export type Findings = Record<string, number | boolean | string | null>;

/** One model scenario. */
export interface ModelScenario {
  /** The revision the operator rolls out: the good image or the bad one. */
  revision: 'good' | 'bad';
  /** Virtual-time limits, seconds after the rollout is created. */
  horizons: { full: number; quick: number };
  /** Every node Ready (as `healthy-ready`): a NotReady node holds a good revision's step until its deadline. */
  allNodesReady?: boolean;
  /** World options besides seed, model, fleet and behaviours. */
  world?: Pick<WorldOptions, 'prometheus' | 'churn'>;
  /** Changes the TelemetryRollout manifest in place. */
  manifest?(m: { spec: { targets: { clusters: Array<Record<string, unknown>> } } }): void;
  /**
   * Schedules the faults and starts the observations; returns the findings, read when the scenario ends.
   */
  arm(ctx: PlanContext): () => Findings;
}

/** The names of the model scenarios, in the order the replay runs them. */
export const MODEL_SCENARIO_NAMES = ['prometheus-down', 'nodes-churn-during-outage', 'token-expires-mid-rollout'] as const;
/** A model scenario's name. */
export type ModelScenarioName = (typeof MODEL_SCENARIO_NAMES)[number];

/** Calls `fn` every `ms` of virtual time (the world's clock), from the next instant on. */
function every(world: World, ms: number, fn: () => void): void {
  const run = (): void => {
    fn();
    world.clock.setTimer(ms, run);
  };
  world.clock.setTimer(ms, run);
}

/** Seconds from the rollout's creation, rounded; null for undefined. */
function since(ctx: PlanContext, ms: number | undefined): number | null {
  return ms === undefined ? null : Math.round((ms - ctx.t0) / 1000);
}

/** The cluster whose nodes first ran a bad agent (the canary), if any yet. */
function firstBadCluster(world: World): SimCluster | undefined {
  for (const c of world.clusters.values()) if (c.exposedByBehaviour('list-everything') > 0) return c;
  return undefined;
}

/** Nodes, fleet-wide, with a pod of the bad revision (running or about to start). */
function badPods(world: World): number {
  let n = 0;
  for (const c of world.clusters.values()) n += c.podsByBehaviour('list-everything');
  return n;
}

const prometheusDown: ModelScenario = {
  revision: 'bad',
  horizons: { full: 3 * 3600, quick: 2 * 3600 },
  world: { prometheus: true },
  manifest(m) {
    for (const c of m.spec.targets.clusters) c['metrics'] = { prometheusURL: prometheusUrl(String(c['name'])) };
  },
  arm(ctx) {
    const { world, store } = ctx;
    let downAt: number | undefined;
    let badPodsAtDown = 0;
    let badPodsMaxAfter = 0;
    let clustersWithBadPodsMax = 0;
    let stepAtDown: number | undefined;
    let stepMaxAfter = -1;
    let startedMaxAfter = 0;
    const phases = new Set<string>();
    every(world, 2000, () => {
      if (downAt === undefined && world.firstBadAt !== undefined) {
        downAt = world.clock.nowMs();
        for (const p of world.prometheus.values()) p.up = false;
        badPodsAtDown = badPods(world);
        stepAtDown = Math.max(-1, ...(store.current().status?.clusters ?? []).filter((c) => c.phase !== 'Pending').map((c) => c.step ?? 0));
      }
      if (downAt === undefined) return;
      // The furthest step of any cluster, and the clusters that have begun: neither may grow.
      const cs = store.current().status?.clusters ?? [];
      for (const c of cs) if (c.phase !== 'Pending') stepMaxAfter = Math.max(stepMaxAfter, c.step ?? 0);
      startedMaxAfter = Math.max(startedMaxAfter, cs.filter((c) => c.phase !== 'Pending').length);
      badPodsMaxAfter = Math.max(badPodsMaxAfter, badPods(world));
      let clusters = 0;
      for (const c of world.clusters.values()) if (c.podsByBehaviour('list-everything') > 0 || c.exposedByBehaviour('list-everything') > 0) clusters++;
      clustersWithBadPodsMax = Math.max(clustersWithBadPodsMax, clusters);
      phases.add(store.current().status?.phase ?? 'Pending');
    });
    return () => {
      const st = store.current().status;
      const canary = firstBadCluster(world);
      const cs = st?.clusters?.find((c) => c.name === canary?.name);
      const noData = world.events.filter((e) => e.reason === 'GateNoData');
      const firstNoData = downAt === undefined ? undefined : noData.find((e) => world.start + e.t * 1000 >= downAt!);
      return {
        prometheusDownSeconds: since(ctx, downAt),
        firstGateNoDataAfterDownSeconds: firstNoData === undefined ? null : since(ctx, world.start + firstNoData.t * 1000),
        gateNoDataEvents: noData.length,
        gateFailedEvents: world.events.filter((e) => e.reason === 'GateFailed').length,
        phasesAfterDown: [...phases].sort().join(','),
        canary: canary?.name ?? null,
        canaryLastGate: cs?.lastGate?.verdict ?? null,
        canaryLastGateMessage: cs?.lastGate?.message?.slice(0, 200) ?? null,
        stepAtPrometheusDown: stepAtDown ?? null,
        stepMaxAfterPrometheusDown: stepMaxAfter,
        clustersStartedMaxAfterPrometheusDown: startedMaxAfter,
        badPodsAtPrometheusDown: badPodsAtDown,
        badPodsMaxAfterPrometheusDown: badPodsMaxAfter,
        clustersWithBadRevisionMax: clustersWithBadPodsMax,
        prometheusScrapes: [...world.prometheus.values()].reduce((a, p) => a + p.scrapes.apiserver, 0),
      };
    };
  },
};

const nodesChurn: ModelScenario = {
  revision: 'bad',
  horizons: { full: 3 * 3600, quick: 2 * 3600 },
  world: { churn: true },
  arm(ctx) {
    const { world } = ctx;
    let canary: SimCluster | undefined;
    let burstAt: number | undefined;
    let replaced = 0;
    let exposedDeleted = 0;
    let killed = false;
    every(world, 2000, () => {
      canary ??= firstBadCluster(world);
      if (!canary || burstAt !== undefined) return;
      // The outage: the canary's API server falls under the bad agents' load, or, where the calibrated
      // model's API server bears that load, it is killed 30 s after the first bad agent ran (5 minutes).
      if (canary.api.up && !killed && world.firstBadAt !== undefined && world.clock.nowMs() - world.firstBadAt >= 30_000) {
        killed = true;
        world.crash(canary.name, 300);
      }
      if (canary.api.up) return;
      // The canary's API server has fallen: 5 % of its nodes replaced within the next minute, in six
      // batches; a quarter of the nodes that ran the bad agent go first (every fourth, in slot order).
      burstAt = world.clock.nowMs();
      const c = canary;
      const total = Math.ceil(c.liveNodes * 0.05);
      const exposed = c.liveIndices().filter((i) => c.wasExposed(i, 'list-everything'));
      const first = exposed.filter((_, k) => k % 4 === 0);
      for (let b = 0; b < 6; b++) {
        const n = Math.floor(total / 6) + (b < total % 6 ? 1 : 0);
        const batch = first.slice(Math.ceil((first.length * b) / 6), Math.ceil((first.length * (b + 1)) / 6));
        world.clock.setTimer(b * 10_000 + 1, () => {
          const gone = world.replaceNodes(c, n, batch);
          replaced += gone.length;
          exposedDeleted += gone.filter((i) => c.wasExposed(i, 'list-everything')).length;
        });
      }
    });
    return () => {
      let leftBehind = 0;
      let stopFiles = 0;
      let left = 0;
      let joined = 0;
      let stillExposed = 0;
      let stillRunning = 0;
      for (const c of world.clusters.values()) {
        left += c.nodesLeft;
        joined += c.nodesJoined;
        for (const i of c.liveIndices()) {
          if (c.stopFiles(i).length > 0) stopFiles++;
          if (!c.wasExposed(i, 'list-everything')) continue;
          stillExposed++;
          // A node that ran the bad agent and still exists: its agent must be gone or held by a stop file.
          if (c.activeOn(i, 'list-everything')) leftBehind++;
          if (c.runningOn(i) !== undefined) stillRunning++;
        }
      }
      return {
        canary: canary?.name ?? null,
        burstSeconds: since(ctx, burstAt),
        canaryNodesReplacedInBurst: replaced,
        exposedNodesDeletedInBurst: exposedDeleted,
        exposedNodesStillExisting: stillExposed,
        nodesLeft: left,
        nodesJoined: joined,
        exposedExistingNodesRunningUnstopped: leftBehind,
        exposedExistingNodesRunningAny: stillRunning,
        existingNodesWithStopFiles: stopFiles,
        badPodsAtEnd: badPods(world),
      };
    };
  },
};

/** How long the token is refused, ms. */
const TOKEN_REFUSED_MS = 20 * 60_000;

const tokenExpires: ModelScenario = {
  revision: 'good',
  allNodesReady: true,
  // Full fleet: 3 hours, past the canary's renewal and into the fleet stage (see FULL_HORIZONS's healthy).
  horizons: { full: 3 * 3600, quick: 24 * 3600 },
  arm(ctx) {
    const { world, store } = ctx;
    let victim: SimCluster | undefined;
    let from: number | undefined;
    let until: number | undefined;
    let labelledAtStart = 0;
    let labelledMaxDuring = 0;
    const phasesDuring = new Set<string>();
    const clusterPhasesDuring = new Set<string>();
    let conditionSeen = false;
    let conditionMessage: string | null = null;
    let pausedAfterRenewal: string | null = null;
    let pausedAt: number | undefined;
    let retries = 0;
    every(world, 2000, () => {
      const now = world.clock.nowMs();
      const st = store.current().status;
      if (until !== undefined && now >= until && st?.phase === 'Paused') {
        // Paused after the renewal: the documented remedy is a person's retry; one comes five minutes later.
        pausedAfterRenewal ??=
          world.events
            .filter((e) => e.reason === 'GateNoData')
            .pop()
            ?.message.slice(0, 200) ?? 'Paused';
        pausedAt ??= now;
        if (now - pausedAt >= 300_000) {
          store.annotate(RETRY_ANNOTATION, `sim-${++retries}`);
          ctx.kick();
          pausedAt = undefined;
        }
      }
      if (from === undefined) {
        // Mid-rollout: a cluster moving the nodes of its second step (its first passed its gates and bake).
        // On both fleets that is the canary.
        const next = st?.clusters?.find((c) => c.phase === 'Progressing' && (c.step ?? 0) >= 1);
        if (!next) return;
        victim = world.clusters.get(next.name);
        if (!victim) return;
        victim.credentialsRejected = true;
        from = now;
        until = now + TOKEN_REFUSED_MS;
        labelledAtStart = victim.labelledNodes();
        world.clock.setTimer(TOKEN_REFUSED_MS, () => {
          if (victim) victim.credentialsRejected = false;
        });
      }
      if (victim && until !== undefined && now < until) {
        labelledMaxDuring = Math.max(labelledMaxDuring, victim.labelledNodes());
        phasesDuring.add(st?.phase ?? 'Pending');
        clusterPhasesDuring.add(st?.clusters?.find((c) => c.name === victim!.name)?.phase ?? 'Pending');
        const cond = st?.conditions?.find((c) => c.type === 'CredentialsInvalid');
        if (cond?.status === 'True') {
          conditionSeen = true;
          conditionMessage ??= cond.message ?? '';
        }
      }
    });
    const within = (ms: number): boolean => from !== undefined && until !== undefined && ms >= from && ms < until;
    return () => {
      const st = store.current().status;
      const messages = [
        ...world.events.map((e) => e.message),
        ...(st?.conditions ?? []).map((c) => c.message ?? ''),
        ...(st?.clusters ?? []).map((c) => c.message ?? ''),
        conditionMessage ?? '',
      ];
      return {
        cluster: victim?.name ?? null,
        refusedFromSeconds: since(ctx, from),
        refusedUntilSeconds: since(ctx, until),
        labelledNodesAtRefusal: labelledAtStart,
        labelledNodesMaxWhileRefused: labelledMaxDuring,
        rolloutPhasesWhileRefused: [...phasesDuring].sort().join(','),
        clusterPhasesWhileRefused: [...clusterPhasesDuring].sort().join(','),
        credentialsInvalidConditionSeen: conditionSeen,
        credentialsInvalidConditionMessage: conditionMessage,
        pausedAfterRenewal,
        retriesByPerson: retries,
        credentialsInvalidEvents: world.events.filter((e) => e.reason === 'CredentialsInvalid').length,
        credentialsAcceptedEvents: world.events.filter((e) => e.reason === 'CredentialsAccepted').length,
        rollbackEventsWhileRefused: world.events.filter(
          (e) => (e.reason === 'RollingBack' || e.reason === 'ClusterRollingBack') && within(world.start + e.t * 1000),
        ).length,
        rollbackEvents: world.events.filter((e) => e.reason === 'RollingBack' || e.reason === 'ClusterRollingBack').length,
        firstRollbackReason: world.events.find((e) => e.reason === 'RollingBack')?.message.slice(0, 200) ?? null,
        breakGlassEvents: world.events.filter((e) => e.reason === 'BreakGlass').length,
        // The simulated client never hands the operator a token (as the product's does not put one in an
        // error), so this only checks that nothing written looks like a credential.
        messagesWithCredentials: messages.filter((m) => /bearer |authorization:|token: |client-key-data|password/i.test(m)).length,
        labelledNodesAtEnd: victim?.labelledNodes() ?? null,
      };
    };
  },
};

/** The model scenarios by name. */
export const MODEL_SCENARIOS: Readonly<Record<ModelScenarioName, ModelScenario>> = {
  'prometheus-down': prometheusDown,
  'nodes-churn-during-outage': nodesChurn,
  'token-expires-mid-rollout': tokenExpires,
};

/** Whether a scenario name is a model scenario's. */
export function isModelScenario(name: string): name is ModelScenarioName {
  return (MODEL_SCENARIO_NAMES as readonly string[]).includes(name);
}
