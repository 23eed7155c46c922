import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import type { TelemetryRollout } from '../api/types.generated.js';
import { validateRollout } from '../api/validate.js';
import { FakeCluster, FakeClusterFactory, FakeEvents, FakeRolloutStore } from '../../../testkit/operator/rollout/fakes.js';
import type { GateContext } from '../rollout/interfaces.js';
import { RolloutReconciler } from '../rollout/reconciler.js';
import { FakeClock } from '../../../testkit/core/fakeclock.js';
import {
  BASELINE_WARMUP_SECONDS,
  MIN_RESCRAPE_MS,
  ControlPlaneGateEvaluator,
  DefaultSourceFactory,
  MIN_SAMPLES,
  RELATIVE_FLOOR_SECONDS,
  baselineWarmupSeconds,
  judge,
  latencyFloorSeconds,
  reliableValues,
  thresholdsFor,
  type SourceFactory,
} from './evaluator.js';
import type { Measurement, MetricSource } from './sources.js';
import type { SignalValues } from './signals.js';

const manifest = (gates: Record<string, unknown> = {}) => ({
  apiVersion: 'telemetry.rollout.dev/v1alpha1',
  kind: 'TelemetryRollout',
  metadata: { name: 'r', namespace: 'default' },
  spec: {
    collector: { image: 'c:1' },
    targets: { clusters: [{ name: 'a', kubeconfigSecretRef: { name: 'a' } }] },
    strategy: { stages: [{ name: 's', clusters: 1, nodeSteps: [10, 50, 100], bakeSeconds: 20 }] },
    gates: { intervalSeconds: 5, windowSeconds: 5, scrapeIntervalSeconds: 1, failureLimit: 2, coreDNS: { cacheTTLSeconds: 0 }, ...gates },
  },
});
const gatesOf = (g: Record<string, unknown> = {}) => (validateRollout(manifest(g)).defaulted as unknown as TelemetryRollout).spec.gates;
const ok = (values: SignalValues, counts: Record<string, number> = {}): Measurement => ({
  kind: 'ok',
  at: new Date(0),
  windowSeconds: 10,
  values,
  sampleCounts: { apiServerP99Seconds: 500, apiServerErrorRatio: 500, coreDNSErrorRatio: 500, coreDNSP99Seconds: 500, ...counts },
});
const baseline = { capturedAt: '', values: { apiServerP99Seconds: 0.2 } };

describe('judge', () => {
  const g = gatesOf();
  it.each([
    ['noise around the baseline passes', { apiServerP99Seconds: 0.26, apiServerErrorRatio: 0.001 }, 'Pass'],
    ['a doubled p99 fails against the baseline', { apiServerP99Seconds: 0.4 }, 'Fail'],
    ['p99 over the absolute SLO fails', { apiServerP99Seconds: 1.5 }, 'Fail'],
    ['5xx+429 over 1% fails', { apiServerP99Seconds: 0.2, apiServerErrorRatio: 0.05 }, 'Fail'],
    ['APF rejections fail', { apiServerP99Seconds: 0.2, apfRejectionsPerSecond: 3 }, 'Fail'],
    ['CoreDNS SERVFAIL ratio fails', { apiServerP99Seconds: 0.2, coreDNSErrorRatio: 0.2 }, 'Fail'],
    ['CoreDNS p99 fails', { coreDNSP99Seconds: 0.5 }, 'Fail'],
    ['no signal at all is NoData', {}, 'NoData'],
  ] as const)('%s', (_t, values, verdict) => {
    expect(judge(ok(values), g, baseline).verdict).toBe(verdict);
  });

  it('explains a failure with the measured value, the bound and where the bound comes from', () => {
    const r = judge(ok({ apiServerP99Seconds: 0.45 }), g, baseline);
    expect(r).toMatchObject({
      verdict: 'Fail',
      failed: ['apiServerP99Seconds'],
      measurements: { apiServerP99Seconds: 0.45 },
      thresholds: { apiServerP99Seconds: 0.3 },
    });
    expect(r.message).toBe('apiServerP99Seconds 0.45 > 0.3 (baseline 0.2s x 1.5)');
  });

  it('does not judge a signal with too few samples', () => {
    const r = judge(ok({ apiServerP99Seconds: 5 }, { apiServerP99Seconds: MIN_SAMPLES - 1 }), g, baseline);
    expect(r.verdict).toBe('NoData');
    expect(r.message).toContain(`19 < ${MIN_SAMPLES} samples`);
  });

  it('keeps relative latency bounds at least 100 ms above the baseline and never above the SLO', () => {
    expect(thresholdsFor(g, { capturedAt: '', values: { apiServerP99Seconds: 0.01 } }).apiServerP99Seconds?.bound).toBeCloseTo(0.11);
    expect(thresholdsFor(g, { capturedAt: '', values: { apiServerP99Seconds: 0.9 } }).apiServerP99Seconds?.bound).toBe(1);
    expect(thresholdsFor(g).apiServerP99Seconds).toEqual({ bound: 1, why: 'absolute SLO' });
  });

  it('the noise floor is spec.gates.apiServer.minLatencyIncreaseSeconds, defaulted by the CRD to the code default', () => {
    expect(g.apiServer.minLatencyIncreaseSeconds).toBe(RELATIVE_FLOOR_SECONDS);
    const wide = gatesOf({ apiServer: { minLatencyIncreaseSeconds: 0.3 } });
    const low = { capturedAt: '', values: { apiServerP99Seconds: 0.02 } };
    // A busy-CPU target: 0.28 s against a 0.02 s baseline is scheduler noise under a 0.3 s floor ...
    expect(thresholdsFor(wide, low).apiServerP99Seconds).toEqual({ bound: 0.32, why: 'baseline 0.02s + 0.3s (minLatencyIncreaseSeconds)' });
    expect(judge(ok({ apiServerP99Seconds: 0.28 }), wide, low).verdict).toBe('Pass');
    // ... and a regression under the default floor, with the message naming the knob that set the bound.
    const r = judge(ok({ apiServerP99Seconds: 0.28 }), g, low);
    expect(r.verdict).toBe('Fail');
    expect(r.message).toBe('apiServerP99Seconds 0.28 > 0.12 (baseline 0.02s + 0.1s (minLatencyIncreaseSeconds))');
    // The absolute SLO still caps a wide floor.
    expect(thresholdsFor(gatesOf({ apiServer: { minLatencyIncreaseSeconds: 5 } }), low).apiServerP99Seconds).toEqual({ bound: 1, why: 'absolute SLO' });
    // A spec from before the field (not defaulted) falls back to the code default.
    const { minLatencyIncreaseSeconds: _drop, ...old } = g.apiServer;
    expect(latencyFloorSeconds({ ...g, apiServer: old as typeof g.apiServer })).toBe(RELATIVE_FLOOR_SECONDS);
  });

  it('an unreachable API server is flagged, not plain NoData', () => {
    expect(judge({ kind: 'unreachable', at: new Date(0), message: 'timeout' }, g)).toMatchObject({ verdict: 'NoData', unreachable: true });
    expect(judge({ kind: 'nodata', at: new Date(0), message: 'warming up' }, g).unreachable).toBeUndefined();
  });
});

/** A source playing back a function of the fraction of nodes on the new revision. */
class CurveSources implements SourceFactory {
  fraction = 0;
  calls = 0;
  private readonly curve: (fraction: number, call: number) => Measurement;
  constructor(curve: (fraction: number, call: number) => Measurement) {
    this.curve = curve;
  }
  source(ctx: GateContext): MetricSource {
    this.fraction = ctx.fraction;
    return { measure: async () => this.curve(this.fraction, this.calls++) };
  }
}

function run(curve: (f: number, call: number) => Measurement, gates: Record<string, unknown> = {}) {
  const clock = new FakeClock();
  const store = new FakeRolloutStore(manifest(gates));
  const factory = new FakeClusterFactory().add(new FakeCluster('a', 20));
  const registry = new Registry();
  const sources = new CurveSources(curve);
  const evaluator = new ControlPlaneGateEvaluator({ clock, sources, registry });
  const r = new RolloutReconciler({ rollouts: store, clusters: factory, gates: evaluator, status: store, events: new FakeEvents(), clock });
  const drive = async (until: (ro: TelemetryRollout) => boolean) => {
    for (let i = 0; i < 2000; i++) {
      const res = await r.reconcile('default/r').catch(() => ({ requeueAfterMs: 1000 }));
      if (until(store.current())) return;
      await clock.advance(res.requeueAfterMs ?? 1000);
    }
    throw new Error(`no convergence: ${JSON.stringify(store.current().status).slice(0, 2000)}`);
  };
  return { store, drive, registry, clock };
}

describe('DefaultSourceFactory', () => {
  it("queries a target's Prometheus through the fetch it was given (the fleet simulator's seam), and judges the answer", async () => {
    const asked: string[] = [];
    const fetchImpl = (async (input: string | URL) => {
      const url = new URL(input);
      asked.push(`${url.host} ${url.searchParams.get('query') ?? ''}`);
      const value = (url.searchParams.get('query') ?? '').startsWith('histogram_quantile(0.99, sum by (le) (rate(apiserver_') ? '2.5' : '0';
      return new Response(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [0, value] }] } }), { status: 200 });
    }) as typeof fetch;
    const clock = new FakeClock();
    const evaluator = new ControlPlaneGateEvaluator({ clock, sources: new DefaultSourceFactory(clock, { fetch: fetchImpl }) });
    const ctx: GateContext = {
      rollout: validateRollout(manifest()).defaulted as unknown as TelemetryRollout,
      target: { name: 'a', secretName: 'a', secretKey: 'value', metrics: { prometheusURL: 'http://prometheus.a.example:9090' } },
      client: new FakeCluster('a', 20),
      fraction: 0.1,
      consecutiveFailures: 0,
    };
    const ev = await evaluator.evaluate(ctx);
    expect(asked.length).toBeGreaterThan(0);
    expect(asked.every((a) => a.startsWith('prometheus.a.example:9090 '))).toBe(true);
    expect(ev.verdict).toBe('Fail');
    expect(ev.failed).toContain('apiServerP99Seconds');
  });
});

describe('ControlPlaneGateEvaluator.captureBaseline', () => {
  const ctxOf = (): GateContext => ({
    rollout: validateRollout(manifest()).defaulted as unknown as TelemetryRollout,
    target: { name: 'a', secretName: 'a', secretKey: 'value' },
    client: new FakeCluster('a', 20),
    fraction: 0,
    consecutiveFailures: 0,
  });

  it('gives a new source one gate interval (within bounds) instead of leaving the first step without a baseline, by asking to be called again', async () => {
    const ctx = ctxOf();
    const warmup = baselineWarmupSeconds(ctx.rollout.spec.gates);
    expect(warmup).toBe(BASELINE_WARMUP_SECONDS.min); // the manifest's interval is 5 s, below the minimum
    expect(baselineWarmupSeconds({ ...ctx.rollout.spec.gates, intervalSeconds: 20 })).toBe(20);
    expect(baselineWarmupSeconds({ ...ctx.rollout.spec.gates, intervalSeconds: 600 })).toBe(BASELINE_WARMUP_SECONDS.max);
    const clock = new FakeClock();
    const calls: number[] = [];
    const source: MetricSource = {
      measure: async () => {
        calls.push(clock.now().getTime());
        return calls.length === 1
          ? { kind: 'nodata', at: clock.now(), message: 'warming up: first scrape' }
          : { ...ok({ apiServerP99Seconds: 0.05 }), at: clock.now() };
      },
    };
    const evaluator = new ControlPlaneGateEvaluator({ clock, sources: { source: () => source } });
    // The first call returns at once: come back after the warm-up, the step has not begun.
    const first = await evaluator.captureBaseline(ctx);
    expect(first).toEqual({ retryAfterMs: warmup * 1000, message: expect.stringContaining('measuring the baseline') });
    // Called early (a status write wakes the reconciler at once): no second scrape yet, the rest of the wait.
    await clock.advance(4000);
    expect(await evaluator.captureBaseline(ctx)).toMatchObject({ retryAfterMs: warmup * 1000 - 4000 });
    expect(calls).toHaveLength(1);
    await clock.advance(warmup * 1000 - 4000);
    expect(await evaluator.captureBaseline(ctx)).toEqual({ baseline: { capturedAt: clock.now().toISOString(), values: { apiServerP99Seconds: 0.05 } } });
    expect(calls).toEqual([calls[0], (calls[0] as number) + warmup * 1000]);
    // Once the target has been measured, later baselines take one scrape and never wait.
    expect((await evaluator.captureBaseline(ctxOf())).baseline).toBeDefined();
    expect(calls).toHaveLength(3);
  });

  it('a source still without data after the warm-up lets the step go on without a baseline (absolute SLOs only)', async () => {
    const clock = new FakeClock();
    let scrapes = 0;
    const source: MetricSource = { measure: async () => (scrapes++, { kind: 'nodata', at: clock.now(), message: 'no metrics' }) };
    const evaluator = new ControlPlaneGateEvaluator({ clock, sources: { source: () => source } });
    const ctx = ctxOf();
    expect((await evaluator.captureBaseline(ctx)).retryAfterMs).toBe(BASELINE_WARMUP_SECONDS.min * 1000);
    await clock.advance(BASELINE_WARMUP_SECONDS.min * 1000);
    expect(await evaluator.captureBaseline(ctx)).toEqual({});
    expect(scrapes).toBe(2);
  });

  it('leaves ratios and quantiles of too few events out of baselines (rates stay)', async () => {
    const clock = new FakeClock();
    const m = ok(
      { apiServerP99Seconds: 0.93, apiServerErrorRatio: 0, apiServerRequestRate: 2.2, coreDNSErrorRatio: 0 },
      { apiServerP99Seconds: 11, apiServerErrorRatio: 11, apiServerRequestRate: 11, coreDNSErrorRatio: MIN_SAMPLES },
    ) as Extract<Measurement, { kind: 'ok' }>;
    expect(reliableValues(m)).toEqual({ apiServerRequestRate: 2.2, coreDNSErrorRatio: 0 });
    const evaluator = new ControlPlaneGateEvaluator({ clock, sources: { source: () => ({ measure: async () => m }) } });
    expect((await evaluator.captureBaseline(ctxOf())).baseline?.values).toEqual({ apiServerRequestRate: 2.2, coreDNSErrorRatio: 0 });
    // Without sample counts (PromQL: Prometheus averaged a window) every value is kept.
    expect(reliableValues({ values: { apiServerP99Seconds: 0.2 } })).toEqual({ apiServerP99Seconds: 0.2 });
  });

  it('a baseline of too few requests does not become a point of the predictive guard', async () => {
    // On the real control plane: a 0.93 s p99 of 11 requests at 0 %, then 0.02 s at 11 % and 0.005 s at
    // 50 %, and the parabola through them projected 7 s at 100 %.
    const clock = new FakeClock();
    let next: Measurement = ok({ apiServerP99Seconds: 0.93, apiServerRequestRate: 5 }, { apiServerP99Seconds: 11 });
    const evaluator = new ControlPlaneGateEvaluator({ clock, sources: { source: () => ({ measure: async () => next }) } });
    const ctx = ctxOf();
    const { baseline } = await evaluator.captureBaseline(ctx);
    expect(baseline?.values).toEqual({ apiServerRequestRate: 5 });
    next = ok({ apiServerP99Seconds: 0.02, apiServerRequestRate: 5 });
    await evaluator.evaluate({ ...ctx, fraction: 0.1, ...(baseline ? { baseline } : {}) });
    const proj = await evaluator.project({ ...ctx, fraction: 0.1, ...(baseline ? { baseline } : {}) });
    expect(proj?.verdict).toBe('NoData');
    expect(proj?.points?.find((p) => p.fraction === 0)?.p99Seconds).toBeUndefined();
  });
});

describe('ControlPlaneGateEvaluator in the reconciler', () => {
  it('a warming source holds the first step back by requeueing: the step begins once, after the warm-up, with a baseline', async () => {
    const w = run((_f, call) => (call === 0 ? { kind: 'nodata', at: new Date(0), message: 'warming up: first scrape' } : ok({ apiServerP99Seconds: 0.2 })));
    await w.drive((ro) => (ro.status?.clusters?.[0]?.message ?? '').includes('measuring the baseline'));
    const waiting = w.store.current().status?.clusters?.[0];
    expect(waiting?.stepPercent).toBeUndefined();
    expect(waiting?.baseline).toBeUndefined();
    const t0 = w.clock.now().getTime();
    await w.drive((ro) => ro.status?.clusters?.[0]?.stepPercent !== undefined);
    const began = w.store.current().status?.clusters?.[0];
    expect(w.clock.now().getTime() - t0).toBeGreaterThanOrEqual(BASELINE_WARMUP_SECONDS.min * 1000);
    expect(began).toMatchObject({ step: 0, stepPercent: 10, baseline: { values: { apiServerP99Seconds: 0.2 } } });
    await w.drive((ro) => ro.status?.phase === 'Succeeded');
    // Each step started exactly once.
    const started = (w.store.current().status?.history ?? []).filter((h) => h.reason === 'StepStarted').map((h) => h.message);
    expect(started).toEqual([...new Set(started)]);
    expect(started).toHaveLength(3);
  });

  it("after an operator restart, the new evaluator's first scrape (warming up) is no verdict: it neither pauses the rollout nor counts towards failureLimit", async () => {
    // Found by the simulator (sim/, a restart a few seconds into the canary's first step): the first
    // evaluation of a step had been NoData (a scrape moments after the baseline's), the restarted
    // operator's first scrape of the target is NoData again ("warming up"), and with failureLimit 2 the
    // rollout paused (onNoData: Pause) with the candidate running, for want of a second scrape.
    const clock = new FakeClock();
    const store = new FakeRolloutStore(manifest());
    const factory = new FakeClusterFactory().add(new FakeCluster('a', 20));
    const process = (script: (call: number) => Measurement) => {
      const scrapes: number[] = [];
      const sources: SourceFactory = { source: () => ({ measure: async () => (scrapes.push(clock.now().getTime()), script(scrapes.length - 1)) }) };
      const gates = new ControlPlaneGateEvaluator({ clock, sources });
      return { scrapes, r: new RolloutReconciler({ rollouts: store, clusters: factory, gates, status: store, events: new FakeEvents(), clock }) };
    };
    const drive = async (r: RolloutReconciler, until: (ro: TelemetryRollout) => boolean) => {
      for (let i = 0; i < 2000; i++) {
        const res = await r.reconcile('default/r').catch(() => ({ requeueAfterMs: 1000 }));
        expect(store.current().status?.phase).not.toBe('Paused');
        if (until(store.current())) return;
        await clock.advance(res.requeueAfterMs ?? 1000);
      }
      throw new Error(`no convergence: ${JSON.stringify(store.current().status).slice(0, 2000)}`);
    };
    const warming: Measurement = { kind: 'nodata', at: new Date(0), message: 'warming up: first scrape' };
    // The first process: a warm-up and the baseline, then one NoData evaluation.
    const first = process((call) =>
      call === 0 ? warming : call === 1 ? ok({ apiServerP99Seconds: 0.2 }) : { kind: 'nodata', at: new Date(0), message: 'no metrics' },
    );
    await drive(first.r, (ro) => ro.status?.clusters?.[0]?.lastGate?.verdict === 'NoData');
    expect(store.current().status?.clusters?.[0]?.lastGate?.consecutiveFailures).toBe(1);
    // Restarted: a new evaluator, whose first scrape only warms up.
    const second = process((call) => (call === 0 ? warming : ok({ apiServerP99Seconds: 0.2 })));
    await drive(second.r, (ro) => ro.status?.clusters?.[0]?.lastGate?.verdict === 'Pass');
    // The warm-up scrape, then one more at least a second later (not one per pass in between), which judged.
    expect(second.scrapes).toHaveLength(2);
    expect((second.scrapes[1] as number) - (second.scrapes[0] as number)).toBeGreaterThanOrEqual(MIN_RESCRAPE_MS);
    expect(store.current().status?.clusters?.[0]?.lastGate?.consecutiveFailures).toBe(0);
    await drive(second.r, (ro) => ro.status?.phase === 'Succeeded');
  });

  it('noise around the baseline passes all the way', async () => {
    const w = run((_f, call) => ok({ apiServerP99Seconds: 0.2 + ((call * 7919) % 11) / 200, apiServerErrorRatio: 0.001 }));
    await w.drive((ro) => ro.status?.phase === 'Succeeded');
  });

  it('a doubled p99 fails after failureLimit evaluations and rolls back, with value and bound in status', async () => {
    const w = run((f) => ok({ apiServerP99Seconds: f >= 0.5 ? 0.4 : 0.2 }));
    await w.drive((ro) => ro.status?.phase === 'RolledBack');
    const c = w.store.current().status?.clusters?.[0];
    expect(c?.lastGate).toMatchObject({
      verdict: 'Fail',
      consecutiveFailures: 2,
      measurements: { apiServerP99Seconds: 0.4 },
      thresholds: { apiServerP99Seconds: 0.3 },
    });
    expect(c?.baseline?.values?.apiServerP99Seconds).toBe(0.2);
    const metrics = await w.registry.metrics();
    expect(metrics).toMatch(/tro_gate_evaluations_total\{namespace="default",name="r",cluster="a",verdict="Fail"\} 2/);
    expect(metrics).toMatch(/tro_gate_threshold\{namespace="default",name="r",cluster="a",signal="apiServerP99Seconds"\} 0.3/);
  });

  it('NoData pauses (the default onNoData) and a recovery resets the count', async () => {
    let down = false;
    const w = run(() => (down ? { kind: 'nodata', at: new Date(0), message: 'Prometheus down' } : ok({ apiServerP99Seconds: 0.2 })));
    await w.drive((ro) => ro.status?.clusters?.[0]?.phase === 'Baking');
    down = true;
    await w.drive((ro) => ro.status?.clusters?.[0]?.lastGate?.verdict === 'NoData');
    down = false;
    await w.drive((ro) => ro.status?.clusters?.[0]?.lastGate?.verdict === 'Pass');
    expect(w.store.current().status?.clusters?.[0]?.lastGate?.consecutiveFailures).toBe(0);
    down = true;
    await w.drive((ro) => ro.status?.phase === 'Paused');
    expect(w.store.current().status?.reason).toBe('GateNoData');
  });

  it('the predictive guard treats p99 moves within minLatencyIncreaseSeconds as flat', async () => {
    // p99 rises 0.15 s by the 50 % step (0.2 + 0.3 f). Under the default 0.1 s floor that is a trend,
    // extrapolated to 0.5 s at 100 % against a 0.45 s bound; under a 0.2 s floor it is noise, projected
    // as the highest value seen (0.35 s), and the rollout goes on.
    const curve = (f: number) => ok({ apiServerP99Seconds: 0.2 + 0.3 * f, apiServerRequestRate: 100 });
    const gates = (floor?: number) => ({
      apiServer: { maxLatencyIncreaseRatio: 100, ...(floor === undefined ? {} : { minLatencyIncreaseSeconds: floor }) },
      prediction: { maxProjectedP99LatencySeconds: 0.45 },
    });
    const strict = run(curve, gates());
    await strict.drive((ro) => ro.status?.phase === 'Paused');
    expect(strict.store.current().status?.reason).toBe('ProjectionExceedsSLO');
    expect(strict.store.current().status?.clusters?.[0]?.projection?.projectedP99Seconds).toBeGreaterThan(0.45);

    const tolerant = run(curve, gates(0.2));
    await tolerant.drive((ro) => ro.status?.clusters?.[0]?.projection?.verdict !== undefined && (ro.status.clusters[0].stepPercent ?? 0) >= 100);
    expect(tolerant.store.current().status?.reason).not.toBe('ProjectionExceedsSLO');
  });

  it('the predictive guard refuses the next step when the projection to 100% breaks the SLO', async () => {
    // Latency that is fine at 10% but grows quadratically: 0.1 + 2 f^2 reaches 2.1 s at 100%.
    const w = run((f) => ok({ apiServerP99Seconds: 0.1 + 2 * f * f, apiServerRequestRate: 100 + 900 * f }), { apiServer: { maxLatencyIncreaseRatio: 100 } });
    await w.drive((ro) => ro.status?.phase === 'Paused');
    const st = w.store.current().status!;
    expect(st.reason).toBe('ProjectionExceedsSLO');
    const proj = st.clusters?.[0]?.projection;
    expect(proj?.verdict).toBe('Fail');
    expect(proj?.projectedRequestRate).toBeCloseTo(1000, 6);
    expect(proj?.message).toContain('projected at 100% of nodes');
    // It stopped before 100 %: the cluster never ran the whole revision.
    expect(st.clusters?.[0]?.stepPercent).toBeLessThan(100);
  });
});
