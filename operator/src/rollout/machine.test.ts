import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import type { ClusterStatus, TelemetryRolloutStatus } from '../api/types.generated.js';
import { FakeClock } from '../../../testkit/core/fakeclock.js';
import { withMachineSection } from './diagram.js';
import { FakeBreakGlass, FakeCluster, FakeClusterFactory, FakeEvents, FakeRolloutStore, ScriptedGates } from '../../../testkit/operator/rollout/fakes.js';
import {
  applyClusterEvent,
  applyRolloutEvent,
  CLUSTER_EVENTS,
  CLUSTER_MACHINE,
  CLUSTER_PHASES,
  CONTROL_EVENTS,
  SAFETY_EVENTS,
  IllegalTransitionError,
  nextRolloutPhase,
  ROLLOUT_EVENTS,
  ROLLOUT_MACHINE,
  ROLLOUT_PHASES,
  type Edge,
  type RolloutPhase,
} from './machine.js';
import { ABORT_ANNOTATION, PROMOTE_ANNOTATION, RETRY_ANNOTATION, RolloutReconciler } from './reconciler.js';
import { revisionOf } from './revision.js';

const targets = <P extends string>(e: Edge<P>): P[] => (typeof e.to === 'string' ? [e.to] : [e.to.Rollback, e.to.Pause]);

function reachable<P extends string>(start: P, rows: Record<P, { on: Partial<Record<string, Edge<P>>> }>): Set<P> {
  const seen = new Set<P>([start]);
  const todo = [start];
  while (todo.length) {
    const p = todo.pop() as P;
    const edges: Array<Edge<P> | undefined> = Object.values(rows[p].on);
    for (const e of edges) {
      for (const t of e ? targets(e) : []) {
        if (seen.has(t)) continue;
        seen.add(t);
        todo.push(t);
      }
    }
  }
  return seen;
}

describe('the phase machine table', () => {
  it('names every (rollout phase, event) pair exactly once: an edge or explicitly ignored', () => {
    for (const phase of ROLLOUT_PHASES) {
      const row = ROLLOUT_MACHINE[phase];
      const named = [...Object.keys(row.on), ...row.ignores].sort();
      expect({ phase, named }).toEqual({ phase, named: [...ROLLOUT_EVENTS].sort() });
    }
  });

  it('names every (cluster phase, event) pair exactly once: an edge or explicitly ignored', () => {
    for (const phase of CLUSTER_PHASES) {
      const row = CLUSTER_MACHINE[phase];
      const named = [...Object.keys(row.on), ...row.ignores].sort();
      expect({ phase, named }).toEqual({ phase, named: [...CLUSTER_EVENTS].sort() });
    }
  });

  it('reaches every phase from Pending, in both machines', () => {
    expect([...reachable('Pending', ROLLOUT_MACHINE)].sort()).toEqual([...ROLLOUT_PHASES].sort());
    expect([...reachable('Pending', CLUSTER_MACHINE)].sort()).toEqual([...CLUSTER_PHASES].sort());
  });

  it('leaves a terminal phase only by a named control, or by break-glass', () => {
    const terminal = ROLLOUT_PHASES.filter((p) => ROLLOUT_MACHINE[p].capabilities.terminal);
    expect(terminal.sort()).toEqual(['Failed', 'RolledBack', 'Succeeded']);
    for (const phase of terminal) {
      for (const [event, edge] of Object.entries(ROLLOUT_MACHINE[phase].on)) {
        const allowed = CONTROL_EVENTS.has(event as never) || SAFETY_EVENTS.has(event as never);
        if (edge && targets(edge).some((t) => t !== phase)) expect({ phase, event, allowed }).toEqual({ phase, event, allowed: true });
      }
    }
  });

  it('arms break-glass in every phase in which the candidate may run, except after success (a policy of its own)', () => {
    const caps = (p: RolloutPhase) => ROLLOUT_MACHINE[p].capabilities;
    expect(ROLLOUT_PHASES.filter((p) => caps(p).candidateMayRun && !caps(p).breakGlassArmed)).toEqual(['Succeeded']);
    for (const p of ROLLOUT_PHASES) if (caps(p).breakGlassArmed) expect({ p, probes: caps(p).probesReachability }).toEqual({ p, probes: true });
  });

  it('leads a spec change to Pending from every phase', () => {
    for (const phase of ROLLOUT_PHASES) expect(ROLLOUT_MACHINE[phase].on.SpecChanged?.to).toBe('Pending');
  });

  it('refuses a change that is not an edge, and a breach edge without its policy', () => {
    const s: TelemetryRolloutStatus = { phase: 'Succeeded' };
    expect(() => applyRolloutEvent(s, 'GateFailed')).toThrow(IllegalTransitionError);
    expect(s.phase).toBe('Succeeded');
    expect(() => applyRolloutEvent({ phase: 'Progressing' }, 'GateFailed')).toThrow(/no breach policy/);
    const p: TelemetryRolloutStatus = { phase: 'Progressing' };
    expect(applyRolloutEvent(p, 'GateFailed', 'Pause')).toBe('Paused');
    const c: ClusterStatus = { name: 'a', phase: 'RolledBack' };
    expect(() => applyClusterEvent(c, 'StepReady')).toThrow(/illegal cluster transition: StepReady in phase RolledBack/);
    expect(applyClusterEvent({ name: 'b' }, 'Start')).toBe('Preflight');
  });

  it('docs/concepts.md holds the diagrams and table generated from the current table (npm run generate)', () => {
    const doc = readFileSync(new URL('../../../docs/concepts.md', import.meta.url), 'utf8');
    expect(doc).toBe(withMachineSection(doc));
  });
});

// ---- the reconciler honours the declared capabilities in every phase ----------------------------------

const SPEC = {
  collector: { image: 'collector:1' },
  targets: { clusters: [{ name: 'a', kubeconfigSecretRef: { name: 'a-kc' } }] },
  strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [50, 100], bakeSeconds: 300 }] },
  gates: { intervalSeconds: 5, windowSeconds: 5, scrapeIntervalSeconds: 1, coreDNS: { cacheTTLSeconds: 0 } },
  breakGlass: { unreachableAfterSeconds: 60 },
};

/** A cluster phase that goes with each rollout phase, with half its nodes on the candidate. */
const CLUSTER_IN: Record<RolloutPhase, ClusterStatus['phase']> = {
  Pending: 'Pending',
  Progressing: 'Baking',
  Paused: 'Paused',
  BreakGlass: 'Paused',
  RollingBack: 'Baking',
  RolledBack: 'RolledBack',
  Succeeded: 'Succeeded',
  Failed: 'Failed',
};

/** A world whose rollout is already in `phase`, its one cluster running the candidate on 5 of 10 nodes. */
async function inPhase(phase: RolloutPhase, opts: { reachable: boolean; afterSuccess?: 'Manual' | 'Auto' | 'Off' }) {
  const clock = new FakeClock();
  const factory = new FakeClusterFactory();
  const cluster = new FakeCluster('a', 10);
  factory.add(cluster);
  const store = new FakeRolloutStore({
    apiVersion: 'telemetry.rollout.dev/v1alpha1',
    kind: 'TelemetryRollout',
    metadata: { name: 'r', namespace: 'default' },
    spec: opts.afterSuccess ? { ...SPEC, breakGlass: { ...SPEC.breakGlass, afterSuccess: opts.afterSuccess } } : SPEC,
  });
  const rev = revisionOf(store.current().spec.collector);
  const nodes = [...cluster.nodes.keys()].sort().slice(0, 5);
  for (const n of nodes) await cluster.setNodeRevision(n, rev);
  const now = clock.now().getTime();
  const on = CLUSTER_IN[phase] !== 'RolledBack' && CLUSTER_IN[phase] !== 'Pending';
  const c: ClusterStatus = {
    name: 'a',
    stage: 's',
    phase: CLUSTER_IN[phase],
    revision: rev,
    nodesTotal: 10,
    nodesUpdated: on ? 5 : 0,
    step: 0,
    stepPercent: 50,
    stepStartedAt: new Date(now - 200_000).toISOString(),
    bakeStartedAt: new Date(now - 150_000).toISOString(),
    reachable: opts.reachable,
    ...(opts.reachable ? {} : { unreachableSince: new Date(now - 120_000).toISOString() }),
  };
  const status: TelemetryRolloutStatus = {
    revision: rev,
    phase,
    ...(phase === 'Paused' ? { reason: 'GateFailed' } : {}),
    clusters: phase === 'Pending' ? [] : [c],
    handledRequests: {},
  };
  await store.writeStatus(store.current(), status);
  cluster.reachable = opts.reachable;
  const gates = new ScriptedGates();
  const bg = new FakeBreakGlass(factory);
  const r = new RolloutReconciler({
    rollouts: store,
    clusters: factory,
    gates,
    status: store,
    events: new FakeEvents(),
    clock,
    breakGlass: bg,
    options: { pollMs: 1000 },
  });
  return { r, gates, bg, cluster, store };
}

describe('the reconciler does what the table declares, in every rollout phase', () => {
  for (const phase of ROLLOUT_PHASES) {
    const caps = ROLLOUT_MACHINE[phase].capabilities;

    it(`${phase}: break-glass ${caps.breakGlassArmed ? 'is' : 'is not'} issued for a target unreachable past the threshold`, async () => {
      const w = await inPhase(phase, { reachable: false });
      await w.r.reconcile('default/r');
      expect(w.bg.calls.filter((c) => c.op === 'issue').length > 0).toBe(caps.breakGlassArmed && phase !== 'Pending');
      if (caps.breakGlassArmed) expect(w.store.current().status?.phase).toBe(nextRolloutPhase(phase, 'BreakGlassIssued'));
      // Whatever the phase, a target that needs break-glass and has no confirmed stop says so.
      const needed = w.store.current().status?.conditions?.find((c) => c.type === 'BreakGlassNeeded')?.status;
      expect(needed).toBe(phase === 'Pending' || phase === 'RolledBack' || caps.breakGlassArmed ? 'False' : 'True');
    });

    for (const policy of ['Manual', 'Auto', 'Off'] as const) {
      it(`${phase}: with afterSuccess ${policy}, an unreachable target ${caps.afterSuccessPolicy ? 'follows the policy' : 'follows the table'}`, async () => {
        const w = await inPhase(phase, { reachable: false, afterSuccess: policy });
        await w.r.reconcile('default/r');
        const issued = w.bg.calls.filter((c) => c.op === 'issue').length > 0;
        const st = w.store.current().status!;
        if (!caps.afterSuccessPolicy) {
          expect(issued).toBe(caps.breakGlassArmed && phase !== 'Pending');
          return;
        }
        expect(issued).toBe(policy === 'Auto');
        // No fleet reaction after success: the phase stays, nothing rolls back.
        expect(st.phase).toBe(phase);
        expect(w.cluster.relabels.filter(([, r]) => r !== st.revision)).toEqual([]);
        expect((w.cluster.calls.probe ?? 0) > 0).toBe(policy !== 'Off');
        const needed = st.conditions?.find((c) => c.type === 'BreakGlassNeeded')?.status;
        expect(needed).toBe(policy === 'Off' ? 'False' : policy === 'Manual' ? 'True' : 'False');
        if (policy === 'Auto') expect(st.conditions?.find((c) => c.type === 'AgentsStopped')?.status).toBe('True');
      });
    }

    it(`${phase}: the target's API server ${caps.probesReachability ? 'is' : 'is not'} probed and gates ${caps.gatesEvaluated ? 'are' : 'are not'} evaluated`, async () => {
      const w = await inPhase(phase, { reachable: true });
      await w.r.reconcile('default/r');
      const clusters = phase !== 'Pending';
      // After success the default policy (Manual) still watches.
      expect((w.cluster.calls.probe ?? 0) > 0).toBe((caps.probesReachability || caps.afterSuccessPolicy) && clusters);
      expect(w.gates.evaluations.length > 0).toBe(caps.gatesEvaluated && clusters);
    });

    it(`${phase}: nodes are ${caps.relabelsBack ? 'relabelled back' : 'not relabelled back'}`, async () => {
      const w = await inPhase(phase, { reachable: true });
      await w.r.reconcile('default/r');
      expect(w.cluster.relabels.some(([, rev]) => rev === null)).toBe(caps.relabelsBack);
    });
  }
});

// ---- random interleavings: the reconciler never asks for a change the table does not have -------------

/** A small seeded PRNG (mulberry32): the same seed replays the same sequence. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('random interleavings of faults and controls', () => {
  for (const seed of Array.from({ length: 16 }, (_, i) => i + 1)) {
    it(`seed ${seed}: every pass applies only edges of the table, across restarts`, async () => {
      const rnd = prng(seed);
      const clock = new FakeClock();
      const factory = new FakeClusterFactory();
      for (const [n, size] of [
        ['a', 12],
        ['b', 6],
      ] as const)
        factory.add(new FakeCluster(n, size));
      const store = new FakeRolloutStore({
        apiVersion: 'telemetry.rollout.dev/v1alpha1',
        kind: 'TelemetryRollout',
        metadata: { name: 'r', namespace: 'default' },
        spec: {
          ...SPEC,
          targets: { clusters: ['a', 'b'].map((name) => ({ name, kubeconfigSecretRef: { name: `${name}-kc` } })) },
          // Both clusters move at once, so one pass observes two clusters (two faults can meet in it).
          strategy: { stages: [{ name: 's', clusters: 2, nodeSteps: [50, 100], bakeSeconds: 30, maxConcurrentClusters: 2 }] },
          gates: { ...SPEC.gates, failureLimit: rnd() < 0.5 ? 1 : 2, onFailure: rnd() < 0.5 ? 'Rollback' : 'Pause' },
        },
      });
      let failing = false;
      const gates = new ScriptedGates(() => (failing ? (rnd() < 0.8 ? 'Fail' : 'NoData') : 'Pass'));
      const bg = new FakeBreakGlass(factory);
      const make = () =>
        new RolloutReconciler({
          rollouts: store,
          clusters: factory,
          gates,
          status: store,
          events: new FakeEvents(),
          clock,
          breakGlass: bg,
          options: { pollMs: 1000 },
        });
      let r = make();
      const phases = new Set<string>();
      for (let i = 0; i < 600; i++) {
        // Each fault and control comes independently, so two can land in the same pass.
        if (rnd() < 0.06) failing = !failing;
        for (const name of ['a', 'b']) if (rnd() < 0.06) factory.clusters.get(name)!.reachable = !factory.clusters.get(name)!.reachable;
        if (rnd() < 0.02) store.annotate(ABORT_ANNOTATION, `a${i}`);
        if (rnd() < 0.03) store.annotate(RETRY_ANNOTATION, `r${i}`);
        if (rnd() < 0.01) store.annotate(PROMOTE_ANNOTATION, `p${i}`);
        if (rnd() < 0.01) store.updateSpec((s) => (s.paused = !s.paused));
        if (rnd() < 0.005) store.updateSpec((s) => s.collector.config && (s.collector.config.intervalSeconds = 10 + i));
        if (rnd() < 0.03) r = make(); // an operator restart
        let res: { requeueAfterMs?: number } = {};
        try {
          res = await r.reconcile('default/r');
        } catch (err) {
          // Conflicts and injected API errors are retried; a non-edge is a defect.
          if (err instanceof IllegalTransitionError) throw err;
          expect(err).not.toBeInstanceOf(IllegalTransitionError);
        }
        phases.add(store.current().status?.phase ?? 'Pending');
        await clock.advance(Math.min(Math.max(res.requeueAfterMs ?? 5000, 1), 30_000));
      }
      // The walk went somewhere: past planning, into more than one phase.
      expect(phases.size).toBeGreaterThan(1);
    });
  }
});
