// The health gates on the real control plane (issue 5 acceptance), with the REAL operator process
// (dist/, started by e2e/support/operator.ts under least-privilege RBAC) and real load:
//   (1) cluster-wide LISTs without resourceVersion against a target with a pod population, during a
//       node step: the API server p99 gate fails and the rollout rolls back (onFailure Rollback) or
//       pauses (onFailure Pause), with the measured p99 and its bound in status;
//   (2) CoreDNS restarted while its API server is stopped answers SERVFAIL: the CoreDNS gate fails, and
//       the API server being down is reported as unreachable (break-glass), not as a gate verdict;
//   (3) the same gates through a real Prometheus server (PromQL source): Pass lets the rollout progress,
//       the LIST load makes it fail;
//   (4) with Prometheus stopped, the verdict is NoData and the rollout pauses and does not progress.
// Timings (breach -> halt) are printed, never asserted: this machine's two cores are shared.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { TelemetryRollout } from '../operator/src/api/types.generated.js';
import { KubeClusterClient } from '../operator/src/cluster/kubeclient.js';
import { ControlPlaneGateEvaluator } from '../operator/src/gates/evaluator.js';
import { TextEndpointSource } from '../operator/src/gates/scrape.js';
import type { GateContext, ResolvedTarget } from '../operator/src/rollout/interfaces.js';
import { nodesForStep } from '../operator/src/rollout/plan.js';
import { SystemClock } from '#core/clock.js';
import { queryDNS, type DnsAnswer } from './controlplane/dns.js';
import type { ClusterHandle } from './controlplane/fleet.js';
import { createNamespace, dumpOnFailure, eventually, kubectl, kubectlJSON, managementCluster, targetClusters } from './controlplane/testing.js';
import { detection, formatDetection, gateRollout, p99OverBound, RolloutWatcher } from './support/gatewatch.js';
import { ensurePodPopulation } from './support/population.js';
import { OPERATOR_NAMESPACE, TARGET_OPERATOR_USER, prepareFleet, startOperator, type OperatorProcess } from './support/operator.js';
import { prometheusAvailable, startPrometheus, type PrometheusServer } from './support/prometheus.js';
import { GatesE2E } from './support/gatese2e.js';

/**
 * Pods of the population in the target (the default e2e targets have none). LIST cost grows with the
 * object count: ~1500 pause pods make a LIST a few MB, enough for a handful of clients to push the p99
 * over its bound on this machine, and kwok runs them at no cost.
 */
const POPULATION = Number(process.env.TRO_E2E_GATES_PODS ?? 1500);
/** Concurrent LIST clients of the induced regression (measured: p99 0.3-2 s here, from ~0.02 s idle). */
const LOAD_CONCURRENCY = Number(process.env.TRO_E2E_GATES_LOAD ?? 6);
const INTERVAL = 5;
const FAILURE_LIMIT = 2;

let target: ClusterHandle;
let populationNs: string | undefined;
let operator: OperatorProcess | undefined;
let prometheus: PrometheusServer | undefined;
const gw = new GatesE2E(() => target, LOAD_CONCURRENCY);

describe('health gates on the real control plane', () => {
  beforeAll(async () => {
    target = targetClusters()[0] as ClusterHandle;
    await prepareFleet([target]);
    populationNs = await createNamespace(target, 'gates-population');
    const t = Date.now();
    await ensurePodPopulation(target.kubeConfig(), populationNs, { pods: POPULATION });
    gw.report(`${target.name}: ${POPULATION} pods running in ${populationNs} after ${((Date.now() - t) / 1000).toFixed(0)} s`);
    operator = await startOperator({ identity: 'op-gates' });
  }, 420_000);

  afterAll(async () => {
    // Whatever failed: no load, no Prometheus, no operator, no rollout, no label, no population left.
    for (const l of gw.loads.splice(0)) await l.stop();
    for (const w of gw.watchers.splice(0)) await w.stop();
    await prometheus?.stop();
    target?.resumeApiServer();
    await operator?.kill('SIGTERM');
    for (const name of [...gw.rollouts]) await gw.cleanupRollout(name).catch((err: unknown) => gw.report(`cleanup ${name}: ${String(err)}`));
    if (populationNs) {
      await kubectl(target, ['delete', 'namespace', populationNs, '--wait=true', '--timeout=180s']).catch((err: unknown) =>
        gw.report(`delete ${populationNs}: ${String(err)}`),
      );
    }
  }, 420_000);

  it.each([
    ['Rollback', 'RolledBack'],
    ['Pause', 'Paused'],
  ] as const)(
    '(1) LIST load during a node step fails the API server p99 gate: onFailure %s ends %s',
    (onFailure, phase) =>
      dumpOnFailure(
        async () => {
          const name = `gates-list-${onFailure.toLowerCase()}`;
          const w = await gw.createRollout({ name, onFailure, intervalSeconds: INTERVAL, failureLimit: FAILURE_LIMIT });
          // Given a rollout sitting in its first node step (600 s bake) with the gate passing.
          await w.waitFor('first step baking with two passing evaluations', gw.bakingHealthy(2), 180_000);
          const revision = w.latest?.status?.revision as string;
          const stepNodes = nodesForStep(10, target.nodes);
          expect(await gw.labelled(revision)).toBe(stepNodes);

          // When clients LIST pods, services and endpoints cluster-wide without resourceVersion.
          const load = gw.startLoad();
          let halted: TelemetryRollout;
          try {
            halted = await w.waitFor('the rollout halted by the gate', (r) => ['RollingBack', 'RolledBack', 'Paused'].includes(r.status?.phase ?? ''), 180_000);
          } finally {
            if (onFailure === 'Rollback') await gw.stopLoad(load);
          }
          // Then the gate failed on the measured p99, failureLimit times in a row, and the rollout acted.
          const d = detection(w, target.name, load.startedAt);
          gw.report(`${name}: ${formatDetection(d, INTERVAL)}`);
          gw.report(
            `${name}: evaluations since the load: ${w
              .evaluations(target.name)
              .filter((g) => g.time >= load.startedAt)
              .map(
                (g) =>
                  `${g.verdict}(p99 ${g.measurements['apiServerP99Seconds']?.toFixed(3) ?? '-'}/${g.thresholds['apiServerP99Seconds']?.toFixed(3) ?? '-'}, n=${g.consecutiveFailures})`,
              )
              .join(' ')}`,
          );
          expect(d.breach).toBeDefined();
          expect(d.breach?.verdict).toBe('Fail');
          expect(d.breach?.failed).toContain('apiServerP99Seconds');
          expect(d.haltEntry?.message).toContain(`gate failed on ${target.name} ${FAILURE_LIMIT} times in a row`);

          const atHalt = gw.clusterOf(halted)?.lastGate;
          expect(atHalt?.verdict).toBe('Fail');
          expect(atHalt?.consecutiveFailures).toBeGreaterThanOrEqual(FAILURE_LIMIT);
          const measured = atHalt?.measurements?.['apiServerP99Seconds'];
          const bound = atHalt?.thresholds?.['apiServerP99Seconds'];
          expect(typeof measured).toBe('number');
          expect(typeof bound).toBe('number');
          expect(measured as number).toBeGreaterThan(bound as number);
          expect(atHalt?.message).toMatch(/apiServerP99Seconds [\d.]+ > [\d.]+/);

          if (onFailure === 'Rollback') {
            const done = await w.waitFor('RolledBack', (r) => r.status?.phase === 'RolledBack', 180_000);
            expect(done.status?.phase).toBe(phase);
            expect(done.status?.reason).toBe('GateFailed');
            const last = gw.clusterOf(done)?.lastGate;
            // The count stops where it acted: exactly failureLimit consecutive failures.
            expect(last?.consecutiveFailures).toBe(FAILURE_LIMIT);
            expect(last?.verdict).toBe('Fail');
            expect(gw.clusterOf(done)?.phase).toBe('RolledBack');
            expect(await gw.labelled(revision)).toBe(0);
          } else {
            try {
              // Still under load: the gate keeps failing, the nodes keep the revision (paused, not reverted).
              const paused = await w.waitFor('Paused by the gate', (r) => r.status?.phase === phase, 60_000);
              expect(paused.status?.reason).toBe('GateFailed');
              expect(paused.status?.conditions?.find((c) => c.type === 'Paused')).toMatchObject({ status: 'True', reason: 'GateFailed' });
              expect(gw.clusterOf(paused)?.phase).toBe('Paused');
              expect(await gw.labelled(revision)).toBe(stepNodes);
            } finally {
              await gw.stopLoad(load);
            }
          }
          const events = await kubectl(managementCluster(), [
            'get',
            'events',
            '-n',
            OPERATOR_NAMESPACE,
            '--field-selector',
            `reason=GateFailed,involvedObject.name=${name}`,
            '-o',
            'name',
          ]);
          expect(events.trim()).not.toBe('');
          await gw.cleanupRollout(name);
        },
        { clusters: [managementCluster().name, targetClusters()[0]?.name ?? ''] },
      )(),
    480_000,
  );

  it(
    '(2) CoreDNS restarted while its API server is stopped answers SERVFAIL: the CoreDNS gate fails; the API server is unreachable, not a verdict',
    dumpOnFailure(
      async () => {
        // Why the evaluator directly and not through a rollout: with the API server SIGSTOPped the
        // reconciler's /readyz probe fails first, and an unreachable API server is the break-glass signal,
        // never a gate verdict (docs/concepts.md). So the verdict the CoreDNS signal alone gives is observed with the
        // real ControlPlaneGateEvaluator over the real CoreDNS /metrics, and the full default source of a
        // target with coreDNSMetricsURL (API server through the operator's KubeClusterClient + CoreDNS) is
        // checked to report exactly that unreachability. Keeping the API server up instead would not make
        // CoreDNS fail for real: a synced CoreDNS answers from its cache.
        const mgmt = managementCluster();
        const manifest = gateRollout({
          name: 'gates-coredns',
          namespace: OPERATOR_NAMESPACE,
          target: target.name,
          metrics: { coreDNSMetricsURL: target.coreDNSMetricsURL },
        });
        // Server-side dry run: the API's own defaults fill the spec, and nothing is created.
        const rollout = await kubectlJSON<TelemetryRollout>(mgmt, ['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(manifest) });
        const resolved: ResolvedTarget = {
          name: target.name,
          secretName: `${target.name}-kubeconfig`,
          secretKey: 'value',
          metrics: { coreDNSMetricsURL: target.coreDNSMetricsURL },
        };
        const client = new KubeClusterClient(target.name, target.kubeConfig(TARGET_OPERATOR_USER), { timeoutMs: 3000, probeTimeoutMs: 2000 });
        const clock = new SystemClock();
        const full = new ControlPlaneGateEvaluator({ clock });
        const dnsSource = new TextEndpointSource(target.coreDNSMetricsURL, { clock });
        const dnsOnly = new ControlPlaneGateEvaluator({ clock, sources: { source: () => dnsSource } });
        const ctx: GateContext = { rollout, target: resolved, client, fraction: 0.1, consecutiveFailures: 0 };
        const ask = (n: number) =>
          Promise.all(
            Array.from({ length: n }, (_, i) =>
              queryDNS({ ...target.dns, name: i % 2 ? 'kubernetes.default.svc.cluster.local' : `svc-${i}.default.svc.cluster.local`, timeoutMs: 2000 }).catch(
                () => undefined,
              ),
            ),
          );
        const tally = (answers: Array<DnsAnswer | undefined>) =>
          answers.reduce<Record<string, number>>((t, a) => ({ ...t, [a?.rcodeName ?? 'timeout']: (t[a?.rcodeName ?? 'timeout'] ?? 0) + 1 }), {});
        const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
        try {
          // Given a healthy CoreDNS answering (NOERROR for the kubernetes Service, NXDOMAIN for absent ones).
          await Promise.all([full.evaluate(ctx), dnsOnly.evaluate(ctx)]); // first scrapes: the baselines
          await ask(60);
          await pause(1200);
          const [healthyFull, healthyDns] = await Promise.all([full.evaluate(ctx), dnsOnly.evaluate(ctx)]);
          gw.report(
            `healthy: full gate ${healthyFull.verdict} (${healthyFull.message}); CoreDNS gate ${healthyDns.verdict} ${JSON.stringify(healthyDns.measurements)}`,
          );
          expect(healthyDns.verdict).toBe('Pass');
          expect(healthyDns.measurements?.['coreDNSErrorRatio']).toBe(0);
          expect(healthyFull.verdict).toBe('Pass');

          // When the API server stops and CoreDNS restarts, it cannot sync: Kubernetes names get SERVFAIL.
          target.pauseApiServer();
          expect((await client.probe()).reachable).toBe(false); // what the reconciler checks first
          await target.restartCoreDNS();
          const restarted = await dnsOnly.evaluate(ctx); // a new process: new baseline, no verdict yet
          expect(restarted.verdict).toBe('NoData');
          // Right after its start CoreDNS waits (up to 5 s) for a sync that cannot happen, answering nothing;
          // then it answers SERVFAIL for the cluster's names. Ask until enough SERVFAILs came back.
          const answers: Array<DnsAnswer | undefined> = [];
          const deadline = Date.now() + 60_000;
          while ((tally(answers)['SERVFAIL'] ?? 0) < 60 && Date.now() < deadline) answers.push(...(await ask(20)));
          const rcodes = tally(answers);
          await pause(1200);
          const [failing, fullWhileDown] = await Promise.all([dnsOnly.evaluate(ctx), full.evaluate(ctx)]);
          gw.report(
            `API server stopped, CoreDNS restarted: answers ${JSON.stringify(rcodes)}; CoreDNS gate ${failing.verdict}: ${failing.message}; full gate ${fullWhileDown.verdict} (unreachable=${String(fullWhileDown.unreachable)}): ${fullWhileDown.message}`,
          );
          expect(rcodes['SERVFAIL'] ?? 0).toBeGreaterThan(20);
          // Then the CoreDNS gate fails on its error ratio, with the measurement and the bound in the result.
          expect(failing.verdict).toBe('Fail');
          expect(failing.failed).toContain('coreDNSErrorRatio');
          expect(failing.measurements?.['coreDNSErrorRatio']).toBeGreaterThan(failing.thresholds?.['coreDNSErrorRatio'] ?? 1);
          expect(failing.thresholds?.['coreDNSErrorRatio']).toBe(rollout.spec.gates.coreDNS.maxErrorRatio);
          // And the target's full gate does not turn the outage into a Fail or plain NoData: it is unreachable.
          expect(fullWhileDown.unreachable).toBe(true);
          expect(fullWhileDown.message).toMatch(/unreachable/);
        } finally {
          target.resumeApiServer();
          await client.close();
        }
        // Recovery: CoreDNS syncs once the API server is back and answers again (after its cache lets go of
        // the SERVFAILs it holds for a few seconds).
        await target.waitCoreDNSReady(90_000);
        const after = await eventually(
          'NOERROR from CoreDNS again',
          async () => {
            const a = await queryDNS({ ...target.dns, name: 'kubernetes.default.svc.cluster.local', timeoutMs: 2000 });
            return a.rcodeName === 'NOERROR' ? a : undefined;
          },
          60_000,
          1000,
        );
        expect(after.addresses.length).toBeGreaterThan(0);
      },
      { clusters: [targetClusters()[0]?.name ?? ''] },
    ),
    300_000,
  );

  describe('through a real Prometheus server (PromQL source)', () => {
    const name = 'gates-prometheus';
    let w: RolloutWatcher;
    let revision: string;

    beforeAll(async () => {
      if (!prometheusAvailable()) throw new Error('prometheus is not installed: apt-get install prometheus (.ci/run does)');
      // Scrape every second (timeout 1 s) and judge 10 s windows: several points per rate() even when an
      // overloaded API server makes a scrape miss.
      prometheus = await startPrometheus({ targets: [target], scrapeIntervalSeconds: 1 });
      await prometheus.waitForTargets();
      gw.report(`prometheus ${prometheus.url} scraping ${target.name}'s kube-apiserver and CoreDNS`);
    }, 120_000);

    afterAll(async () => {
      await prometheus?.stop();
      if (gw.rollouts.includes(name)) await gw.cleanupRollout(name);
    }, 120_000);

    const queriesServed = async (): Promise<number> => {
      const page = await (await fetch(`${prometheus?.url}/metrics`)).text();
      return [...page.matchAll(/^prometheus_http_requests_total\{[^}]*handler="\/api\/v1\/query"[^}]*\} (\d+)/gm)].reduce((s, m) => s + Number(m[1]), 0);
    };

    it(
      '(3) PromQL verdicts Pass and the rollout progresses; the LIST load makes the gate Fail',
      dumpOnFailure(async () => {
        const before = await queriesServed();
        w = await gw.createRollout({
          name,
          onFailure: 'Pause',
          intervalSeconds: INTERVAL,
          windowSeconds: 10,
          scrapeIntervalSeconds: 1,
          failureLimit: FAILURE_LIMIT,
          metrics: { prometheusURL: prometheus?.url as string },
        });
        const first = await w.waitFor('first step baking with two passing PromQL evaluations', gw.bakingHealthy(2), 180_000);
        revision = first.status?.revision as string;
        const pass = gw.clusterOf(first)?.lastGate;
        gw.report(`PromQL Pass: ${JSON.stringify(pass?.measurements)} thresholds ${JSON.stringify(pass?.thresholds)}`);
        expect(pass?.verdict).toBe('Pass');
        for (const signal of ['apiServerP99Seconds', 'apiServerErrorRatio', 'apiServerRequestRate', 'apfRejectionsPerSecond'])
          expect(typeof pass?.measurements?.[signal]).toBe('number');
        // The operator asked Prometheus (it has no other way to these values: the target has no CoreDNS URL and
        // a Prometheus source never reads the API server itself).
        expect(await queriesServed()).toBeGreaterThan(before);

        // Progress: the bake is cut short by a promote, and the next step still needs a passing verdict.
        await kubectl(managementCluster(), ['annotate', 'tro', name, '-n', OPERATOR_NAMESPACE, 'telemetry.rollout.dev/promote=step2', '--overwrite']);
        const second = await w.waitFor(
          'second step baking with a passing evaluation',
          (r, ww) => gw.clusterOf(r)?.step === 1 && gw.bakingHealthy(1)(r, ww),
          180_000,
        );
        expect(second.status?.phase).toBe('Progressing');
        expect(await gw.labelled(revision)).toBe(nodesForStep(50, target.nodes));

        const load = gw.startLoad();
        let halted: TelemetryRollout;
        try {
          halted = await w.waitFor('paused by the PromQL gate', (r) => r.status?.phase === 'Paused', 180_000);
        } finally {
          await gw.stopLoad(load);
        }
        const d = detection(w, target.name, load.startedAt);
        gw.report(`${name}: ${formatDetection(d, INTERVAL)}`);
        expect(halted.status?.reason).toBe('GateFailed');
        const g = gw.clusterOf(halted)?.lastGate;
        expect(g?.verdict).toBe('Fail');
        expect(g?.consecutiveFailures).toBeGreaterThanOrEqual(FAILURE_LIMIT);
        expect(d.breach?.verdict).toBe('Fail');
        expect(d.breach && p99OverBound(d.breach)).toBe(true);
        expect(gw.clusterOf(halted)?.step).toBe(1);
      }),
      480_000,
    );

    it(
      '(4) with Prometheus stopped the verdict is NoData: the rollout pauses and does not progress',
      dumpOnFailure(async () => {
        expect(w).toBeDefined();
        // Recover from (3): the load is gone; once the gate passes again a retry resumes the rollout.
        await w.waitFor('a passing evaluation after the load', (r) => gw.clusterOf(r)?.lastGate?.verdict === 'Pass', 180_000);
        await kubectl(managementCluster(), ['annotate', 'tro', name, '-n', OPERATOR_NAMESPACE, 'telemetry.rollout.dev/retry=after-load', '--overwrite']);
        await w.waitFor('progressing again', (r) => r.status?.phase === 'Progressing' && gw.clusterOf(r)?.phase === 'Baking', 120_000);

        await prometheus?.stop();
        const paused = await w.waitFor('paused for lack of data', (r) => r.status?.phase === 'Paused', 120_000);
        expect(paused.status?.reason).toBe('GateNoData');
        expect(paused.status?.conditions?.find((c) => c.type === 'Paused')).toMatchObject({ status: 'True', reason: 'GateNoData' });
        const g = gw.clusterOf(paused)?.lastGate;
        gw.report(`Prometheus stopped: ${g?.verdict} x${g?.consecutiveFailures}: ${g?.message}`);
        expect(g?.verdict).toBe('NoData');
        expect(g?.consecutiveFailures).toBeGreaterThanOrEqual(FAILURE_LIMIT);
        expect(g?.message).toContain('Prometheus at');
        const step = gw.clusterOf(paused)?.step;
        const nodes = await gw.labelled(revision);

        // Even a promote (end the bake now) must not move it, over several gate intervals.
        await kubectl(managementCluster(), ['annotate', 'tro', name, '-n', OPERATOR_NAMESPACE, 'telemetry.rollout.dev/promote=while-nodata', '--overwrite']);
        await new Promise((r) => setTimeout(r, 4 * INTERVAL * 1000));
        const still = await w.poll();
        expect(still?.status?.phase).toBe('Paused');
        expect(still?.status?.reason).toBe('GateNoData');
        expect(gw.clusterOf(still as TelemetryRollout)?.step).toBe(step);
        expect(gw.clusterOf(still as TelemetryRollout)?.lastGate?.verdict).toBe('NoData');
        expect(await gw.labelled(revision)).toBe(nodes);
        const noData = w.evaluations(target.name).filter((e) => e.time.getTime() >= Date.parse(g?.time ?? ''));
        expect(noData.every((e) => e.verdict === 'NoData')).toBe(true);
        await gw.cleanupRollout(name);
      }),
      480_000,
    );
  });
});
