/**
 * The models of issue 14 and their scenarios, by outcome (never by timing):
 * - CoreDNS fails only once its records expire and cannot be refreshed from a dead API server;
 * - the modelled Prometheus answers the product's gate queries from its last scrapes, runs dry when
 *   scrapes stop, and refuses connections when down; the real PrometheusSource reads it;
 * - a simulated cluster's joining node gets what its label places; a deleted one takes its agent and stop
 *   files with it and leaves the node list;
 * - `prometheus-down`: the gates see NoData and the default NoData policy pauses: no advance past the
 *   canary's first step;
 * - `nodes-churn-during-outage`: nodes deleted during the canary's outage do not wedge the recovery, and
 *   nothing of the bad revision (agents, stop files) is left on the nodes that still exist;
 * - `token-expires-mid-rollout`: a refused token holds its cluster (no advance, no rollback, no
 *   break-glass, a condition naming the Secret and never a credential) until it is renewed; then the
 *   rollout completes by itself.
 * All on the quick fleet.
 */
import { describe, expect, it } from '@jest/globals';
import { PrometheusSource } from '../operator/src/gates/prometheus.js';
import { SimCluster } from './cluster.js';
import { Rng, SimClock } from './engine.js';
import { generateFleet, QUICK_FLEET } from './fleet.js';
import { ApiServerModel, NO_DEMAND } from './model/apiserver.js';
import { loadModel } from './model/calibration.js';
import { CoreDnsModel } from './model/coredns.js';
import { PrometheusModel } from './model/prometheus.js';
import { BAD_IMAGE, behaviourOf, QUICK_HORIZONS, runScenario, type ReplayOptions } from './replay.js';

const model = loadModel();
const quick: ReplayOptions = { seed: 1, model, fleet: generateFleet(QUICK_FLEET, 1), horizons: QUICK_HORIZONS };
const canary = quick.fleet[0]!;

describe('CoreDNS model', () => {
  it('answers service names while the API server is up and for staleServeSeconds after it falls, then SERVFAILs until it is back', () => {
    const dns = new CoreDnsModel(model, 100, 0);
    const stale = model.coredns.staleServeSeconds;
    let t = 0;
    const step = (up: boolean) => dns.step((t += 2000), 2, up);
    for (let i = 0; i < 10; i++) expect(step(true).servfailPerSecond).toBe(0);
    // Down: the cached records carry it through the stale window...
    const downAt = t;
    while (t + 2000 - downAt <= stale * 1000) expect(step(false).servfailPerSecond).toBe(0);
    // ...then service names fail (outside names, through the forward plugin, still resolve).
    const failing = step(false);
    expect(failing.servfailPerSecond).toBeCloseTo(failing.requestsPerSecond * model.coredns.serviceLookupFraction, 6);
    expect(failing.servfailPerSecond).toBeLessThan(failing.requestsPerSecond);
    // Back: the watch refreshes everything at once.
    expect(step(true).servfailPerSecond).toBe(0);
  });

  it("renders a /metrics page whose SERVFAIL share the product's CoreDNS signal reads", async () => {
    const { coreDNSSignals } = await import('../operator/src/gates/signals.js');
    const { parsePrometheusText } = await import('../operator/src/gates/promtext.js');
    const dns = new CoreDnsModel(model, 100, 0);
    dns.step(2000, 2, true);
    const before = parsePrometheusText(dns.metricsText());
    let t = 2000;
    for (let i = 0; i < 60; i++) dns.step((t += 2000), 2, false);
    const after = parsePrometheusText(dns.metricsText());
    const r = coreDNSSignals(before, after, (t - 2000) / 1000);
    // 120 s down, the first 30 s served from the cache: 90/120 of the window at the service-name share.
    const expected = ((120 - model.coredns.staleServeSeconds) / 120) * model.coredns.serviceLookupFraction;
    expect(r.values.coreDNSErrorRatio).toBeGreaterThan(expected * 0.9);
    expect(r.values.coreDNSErrorRatio).toBeLessThan(expected * 1.1);
    expect(r.values.coreDNSP99Seconds).toBeGreaterThan(0);
  });
});

describe('Prometheus model', () => {
  /** A Prometheus over one API server and one CoreDNS, stepped by hand, read through the product's source. */
  function rig() {
    const clock = new SimClock();
    const api = new ApiServerModel(model, 200, clock.nowMs());
    const dns = new CoreDnsModel(model, 200, clock.nowMs());
    const state = { apiUp: true };
    const prom = new PrometheusModel(model, { apiserver: () => (state.apiUp ? api.metricsText() : undefined), coredns: () => dns.metricsText() });
    const advance = async (seconds: number): Promise<void> => {
      for (let s = 0; s < seconds; s += 1) {
        const now = clock.nowMs() + 1000;
        await clock.runUntil(now);
        api.step(now, 1, NO_DEMAND);
        dns.step(now, 1, state.apiUp);
        if (now % prom.intervalMs === 0) prom.scrape(now);
      }
    };
    const fetchImpl = (async (input: string | URL) => {
      const url = new URL(input);
      if (!prom.up) throw new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
      const a = prom.query(url.searchParams.get('query') ?? '', clock.nowMs());
      return new Response(JSON.stringify(a.body), { status: a.status });
    }) as typeof fetch;
    const source = new PrometheusSource({ url: 'http://prometheus.test:9090', windowSeconds: 30, fetch: fetchImpl, clock });
    return { clock, prom, state, advance, source };
  }

  it("answers the product's default gate queries from its scrapes", async () => {
    const { advance, source, prom } = rig();
    await advance(60);
    expect(prom.scrapes.apiserver).toBeGreaterThanOrEqual(3);
    const m = await source.measure();
    expect(m.kind).toBe('ok');
    if (m.kind !== 'ok') return;
    expect(m.values.apiServerRequestRate).toBeGreaterThan(0);
    expect(m.values.apiServerP99Seconds).toBeGreaterThan(0);
    expect(m.values.apiServerErrorRatio).toBe(0);
    expect(m.values.coreDNSErrorRatio).toBe(0);
  });

  it('runs dry when the API server stops being scraped (two samples needed in the window), while CoreDNS still is', async () => {
    const { advance, source, state } = rig();
    await advance(60);
    state.apiUp = false;
    await advance(60);
    const m = await source.measure();
    expect(m.kind).toBe('ok');
    if (m.kind !== 'ok') return;
    expect(m.values.apiServerRequestRate).toBeUndefined();
    expect(m.values.apiServerP99Seconds).toBeUndefined();
    // CoreDNS is scraped still, and its records have expired by now: SERVFAILs.
    expect(m.values.coreDNSErrorRatio).toBeGreaterThan(0);
  });

  it('down, refuses connections: the source reports no data (never unreachable: that is for the API server)', async () => {
    const { advance, source, prom } = rig();
    await advance(60);
    prom.up = false;
    const m = await source.measure();
    expect(m.kind).toBe('nodata');
    if (m.kind === 'nodata') expect(m.message).toContain('ECONNREFUSED');
  });
});

describe('SimCluster node churn', () => {
  it('a joining node gets the pod its label places; a deleted node leaves the node list with its agent and stop files, and its name no longer resolves', async () => {
    const clock = new SimClock();
    const ready = { ...model, cluster: { ...model.cluster, notReadyFraction: 0 } };
    const c = new SimCluster('k', 10, { clock, rng: new Rng(1), model: ready, behaviourOf, spare: 5 });
    c.applyDirect({
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'agent-r1', namespace: 'ns', labels: { 'telemetry.rollout.dev/collector-revision': 'r1', 'telemetry.rollout.dev/rollout': 'x' } },
      spec: { template: { spec: { containers: [{ name: 'c', image: BAD_IMAGE }] } } },
    });
    // A client call completes once virtual time has moved past its latency.
    const settle = async <T>(p: Promise<T>): Promise<T> => {
      await clock.runUntil(clock.nowMs() + 5000);
      return p;
    };
    const i = c.addNode();
    const name = (await settle(c.listNodes())).map((n) => n.name).find((n) => c.nodeIndex(n) === i)!;
    expect(c.liveNodes).toBe(11);
    // Unlabelled, it gets nothing (the DaemonSet is not the stable one); labelled, it gets the pod.
    await clock.runUntil(clock.nowMs() + 600_000);
    expect(c.runningOn(i)).toBeUndefined();
    await settle(c.setNodeRevision(name, 'r1'));
    await clock.runUntil(clock.nowMs() + 600_000);
    expect(c.runningOn(i)).toBe('r1');
    expect(c.activeOn(i, 'list-everything')).toBe(true);
    c.writeStop(i, 'stop', 'r1');
    expect(c.activeOn(i, 'list-everything')).toBe(false);
    c.removeNode(i);
    expect(c.liveNodes).toBe(10);
    expect(c.nodeIndex(name)).toBeUndefined();
    expect(c.runningOn(i)).toBeUndefined();
    expect(c.stopFiles(i)).toEqual([]);
    expect(c.activeAgents('r1')).toBe(0);
    // It ran the bad agent: that stays counted.
    expect(c.wasExposed(i, 'list-everything')).toBe(true);
    expect((await settle(c.listNodes())).map((n) => n.name)).not.toContain(name);
  });
});

describe('model scenarios (quick fleet)', () => {
  it('prometheus-down: the gates see no data, the default policy pauses, and the rollout does not advance past the bad step', async () => {
    const r = await runScenario('prometheus-down', quick);
    const c = r.checks!;
    expect(c.prometheusDownSeconds).not.toBeNull();
    // Before Prometheus fell, the gates read it (the source was in use, not the API server's /metrics).
    expect(c.prometheusScrapes).toBeGreaterThan(0);
    expect(c.firstGateNoDataAfterDownSeconds).not.toBeNull();
    expect(
      r.warnings.some((w) => w.reason === 'GateNoData' && w.message.includes('Prometheus at http://prometheus.') && w.message.includes('ECONNREFUSED')),
    ).toBe(true);
    // onNoData defaults to Pause: after failureLimit NoData verdicts in a row the rollout pauses.
    expect(r.warnings.some((w) => w.reason === 'GateNoData' && /no gate data on .* 2 times in a row.*paused/.test(w.message))).toBe(true);
    expect(String(c.phasesAfterDown).split(',')).toContain('Paused');
    // The gates never saw the regression; they did not let it advance either.
    expect(c.gateFailedEvents).toBe(0);
    expect(c.stepMaxAfterPrometheusDown).toBe(c.stepAtPrometheusDown);
    expect(c.clustersStartedMaxAfterPrometheusDown).toBe(1);
    expect(c.clustersWithBadRevisionMax).toBe(1);
    expect(r.exposedNodes).toBeLessThanOrEqual(Math.ceil(canary.nodes * 0.01) + 1);
    // With the calibrated model the quick canary bears its first step's bad agents (1 % of its nodes):
    // no outage, so no break-glass; the rollout stays Paused (onNoData: Pause) with just those agents
    // running until a person acts. (On the full fleet the 7,500-node canary falls, and break-glass stops them.)
    expect(r.finalPhase).toBe('Paused');
    expect(r.clustersCrashed).toBe(0);
    expect(r.badAgentsActiveAtEnd).toBe(c.badPodsAtPrometheusDown);
  }, 60_000);

  it('nodes-churn-during-outage: deleted nodes do not wedge the recovery, and nothing of the bad revision is left on the nodes that remain', async () => {
    const r = await runScenario('nodes-churn-during-outage', quick);
    const c = r.checks!;
    expect(c.canary).toBe(canary.name);
    // The outage: the canary's API server fell (or was killed 30 s after the first bad agent ran), and
    // 5 % of its nodes were replaced during it.
    expect(r.clusters.find((x) => x.name === canary.name)?.crashes).toBeGreaterThan(0);
    expect(c.canaryNodesReplacedInBurst).toBe(Math.ceil(canary.nodes * 0.05));
    expect(c.exposedNodesDeletedInBurst).toBeGreaterThan(0);
    expect(c.nodesJoined).toBe(c.nodesLeft);
    expect(r.finalPhase).toBe('RolledBack');
    expect(c.exposedNodesStillExisting).toBeGreaterThan(0);
    expect(c.exposedExistingNodesRunningUnstopped).toBe(0);
    expect(c.exposedExistingNodesRunningAny).toBe(0);
    expect(c.existingNodesWithStopFiles).toBe(0);
    expect(c.badPodsAtEnd).toBe(0);
    expect(r.badAgentsActiveAtEnd).toBe(0);
    // Only the canary ran the bad revision.
    expect(r.clusters.filter((x) => x.exposed > 0).map((x) => x.name)).toEqual([canary.name]);
    // CoreDNS: the canary's outage shows as SERVFAILs, less than the downtime by at least one stale window.
    const st = r.clusters.find((x) => x.name === canary.name)!;
    expect(st.dnsFailSeconds).toBeGreaterThan(0);
    expect(st.dnsFailSeconds).toBeLessThanOrEqual(st.downSeconds - model.coredns.staleServeSeconds);
    expect(r.clustersWithDnsFailures).toBe(1);
    expect(r.series[canary.name]!.some((p) => p.servfail > 0)).toBe(true);
  }, 60_000);

  it('nodes-churn-during-outage is deterministic: the same seed gives the same result', async () => {
    const a = await runScenario('nodes-churn-during-outage', quick);
    const b = await runScenario('nodes-churn-during-outage', quick);
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
  }, 60_000);

  // The hold is not counted against the step: the progress deadline and the NoData streak resume after
  // the renewal (before that fix, found here, the first pass after renewal rolled the fleet back).
  it('token-expires-mid-rollout: a refused token holds its cluster (no advance, no rollback, no break-glass) with a condition naming the Secret; renewed, the rollout completes without a person', async () => {
    const r = await runScenario('token-expires-mid-rollout', quick);
    const c = r.checks!;
    expect(c.cluster).not.toBeNull();
    expect(c.labelledNodesAtRefusal).toBeGreaterThan(0);
    expect(c.labelledNodesMaxWhileRefused).toBe(c.labelledNodesAtRefusal);
    expect(c.rolloutPhasesWhileRefused).toBe('Progressing');
    expect(c.rollbackEventsWhileRefused).toBe(0);
    expect(c.breakGlassEvents).toBe(0);
    expect(c.credentialsInvalidConditionSeen).toBe(true);
    expect(c.credentialsInvalidConditionMessage).toContain(`Secret default/${String(c.cluster)}-kubeconfig`);
    expect(c.credentialsInvalidEvents).toBe(1);
    // Renewed: the cluster is accepted again by itself.
    expect(c.credentialsAcceptedEvents).toBe(1);
    expect(c.messagesWithCredentials).toBe(0);
    expect(r.exposedNodes).toBe(0);
    expect(c.rollbackEvents).toBe(0);
    expect(c.pausedAfterRenewal).toBeNull();
    expect(c.retriesByPerson).toBe(0);
    expect(r.finalPhase).toBe('Succeeded');
    expect(r.completeSeconds).not.toBeNull();
  }, 60_000);
});
