// `npm run demo [-- --scenario healthy|regression|apiserver-down|dns]`: the whole story on a laptop.
// It builds (first time) and starts a local fleet (a management cluster and three targets of different
// sizes, with kwok nodes and a pod population), installs the CRD, RBAC and kubeconfig Secrets, runs the
// real operator and real collector agents for every collector pod, applies a rollout, shows the live
// tree, and ends with a summary (what happened, nodes exposed, detection time, time to recover). It
// cleans everything up on exit, also on Ctrl-C.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import type { TelemetryRollout } from '../../operator/src/api/types.generated.js';
import { renderRollout } from '../../operator/src/cli/render.js';
import { ALLOW_UNSAFE_ANNOTATION } from '../../operator/src/rollout/preflight.js';
import { DEFAULT_E2E_EXTRA_USERS, parseFleetSpec } from '../controlplane/default-fleet.js';
import { queryDNS } from '../controlplane/dns.js';
import { startFleet, type ClusterHandle, type Fleet } from '../controlplane/fleet.js';
import { FLEET_INFO_ENV, kubectl, kubectlJSON, managementCluster, targetClusters } from '../controlplane/testing.js';
import type { NodeRuntime } from '../noderuntime/api.js';
import { startNodeRuntime } from '../noderuntime/runtime.js';
import { OPERATOR_NAMESPACE, prepareFleet, startOperator, type OperatorProcess } from '../support/operator.js';

/** The scenarios the demo can play. */
export const SCENARIOS = ['healthy', 'regression', 'apiserver-down', 'dns'] as const;
/** One scenario. */
export type Scenario = (typeof SCENARIOS)[number];

/** What the scenario expects the rollout to end as. */
const EXPECTED: Record<Scenario, TelemetryRollout['status'] extends infer S ? (S extends { phase?: infer P } ? P : never) : never> = {
  healthy: 'Succeeded',
  regression: 'RolledBack',
  'apiserver-down': 'RolledBack',
  dns: 'RolledBack',
};

const NAME = 'demo';
const t0 = Date.now();
const say = (msg: string) => process.stdout.write(`[demo ${String(Math.round((Date.now() - t0) / 1000)).padStart(4)}s] ${msg}\n`);

/** The rollout each scenario applies. */
function manifest(scenario: Scenario, targets: ClusterHandle[], nodesDir: string): Record<string, unknown> {
  const naive = scenario === 'regression';
  return {
    apiVersion: 'telemetry.rollout.dev/v1alpha1',
    kind: 'TelemetryRollout',
    metadata: {
      name: NAME,
      namespace: OPERATOR_NAMESPACE,
      // The regression scenario rolls out the incident's pattern on purpose: the preflight would refuse it.
      ...(naive ? { annotations: { [ALLOW_UNSAFE_ANNOTATION]: 'true' } } : {}),
    },
    spec: {
      collector: {
        image: `registry.example/telemetry-collector:${scenario}`,
        config: { intervalSeconds: 10, ...(naive ? { metadata: { mode: 'Naive', naiveRelistSeconds: 2 } } : {}) },
      },
      targets: {
        clusters: targets.map((t) => ({
          name: t.name,
          kubeconfigSecretRef: { name: `${t.name}-kubeconfig` },
          ...(scenario === 'dns' ? { metrics: { coreDNSMetricsURL: t.coreDNSMetricsURL } } : {}),
        })),
      },
      strategy: {
        order: 'LargestFirst',
        nodeRelabelQPS: 20,
        stages: [
          { name: 'canary', clusters: 1, nodeSteps: [10, 50, 100], bakeSeconds: 20 },
          { name: 'fleet', percent: 100, nodeSteps: [50, 100], bakeSeconds: 10, maxConcurrentClusters: 2 },
        ],
      },
      gates: {
        intervalSeconds: 4,
        windowSeconds: 8,
        scrapeIntervalSeconds: 1,
        // 3, not 2: a laptop (or a 2-core CI box running four control planes) is noisy.
        failureLimit: 3,
        onFailure: 'Rollback',
        coreDNS: { cacheTTLSeconds: 5 },
      },
      breakGlass: {
        unreachableAfterSeconds: 15,
        action: 'Auto',
        // The node runtime gives every fake node a directory standing for its root filesystem.
        transport: { type: 'local', local: { rootDir: nodesDir } },
      },
    },
  };
}

async function getRollout(): Promise<TelemetryRollout | undefined> {
  return kubectlJSON<TelemetryRollout>(managementCluster(), ['get', 'tro', NAME, '-n', OPERATOR_NAMESPACE, '-o', 'json']).catch(() => undefined);
}

/**
 * The summary printed at the end, computed from status (history timestamps). Detection is measured
 * from the fault (or, for a bad collector, from its first node step) to the moment the operator acted
 * (break-glass or the start of the rollback); recovery from then to the end of the rollback.
 */
export function summarize(ro: TelemetryRollout | undefined, scenario: Scenario, faultAt?: Date): string[] {
  const st = ro?.status;
  const hist = st?.history ?? [];
  const secs = (a?: string, b?: string) => (a && b ? `${Math.round((Date.parse(b) - Date.parse(a)) / 100) / 10} s` : 'n/a');
  const from = faultAt?.toISOString() ?? hist.find((h) => h.reason === 'StepStarted')?.time;
  const acted = hist.find((h) => (h.reason === 'BreakGlass' || h.reason === 'RollingBack') && (!from || Date.parse(h.time) >= Date.parse(from)))?.time;
  const total = (st?.clusters ?? []).reduce((s, c) => s + (c.nodesTotal ?? 0), 0);
  // Nodes that ran the new revision at the worst moment: the largest step any cluster baked.
  const exposed = Math.max(0, ...hist.filter((h) => h.reason === 'StepBaking').map((h) => Number(/: (\d+)\//.exec(h.message ?? '')?.[1] ?? 0)));
  return [
    `scenario:        ${scenario}`,
    `outcome:         ${st?.phase ?? 'unknown'}${st?.reason ? ` (${st.reason})` : ''} — expected ${EXPECTED[scenario]}`,
    `what happened:   ${st?.message ?? ''}`,
    `nodes exposed:   ${exposed} of ${total} nodes ran the new revision at most`,
    `detection time:  ${acted ? `${secs(from, acted)} (${faultAt ? 'fault' : 'first node step'} → the operator acted)` : 'nothing detected'}`,
    `time to recover: ${acted && st?.completedAt ? `${secs(acted, st.completedAt)} (acted → rolled back)` : 'n/a'}`,
    `total time:      ${secs(st?.startedAt, st?.completedAt)}`,
  ];
}

/** Drives the scenario's fault while the rollout runs. */
async function injectFault(
  scenario: Scenario,
  largest: ClusterHandle,
  ro: TelemetryRollout | undefined,
  state: { done: boolean; faultAt?: Date },
): Promise<void> {
  if (state.done || !ro?.status?.clusters?.length) return;
  const canary = ro.status.clusters[0]!;
  // apiserver-down strikes once half the canary runs the new revision; dns at the first step.
  if (canary.phase !== 'Baking' || (canary.step ?? 0) < (scenario === 'dns' ? 0 : 1)) return;
  state.done = true;
  if (scenario === 'apiserver-down') {
    say(`FAULT: freezing ${largest.name}'s kube-apiserver (SIGSTOP), as an overloaded server looks; break-glass must stop the agents without it`);
    largest.pauseApiServer();
    state.faultAt = new Date();
    await waitFor('break-glass', async () => (await getRollout())?.status?.phase === 'BreakGlass', 120_000).catch(() => undefined);
    say(`FAULT over: ${largest.name}'s kube-apiserver resumes (SIGCONT)`);
    largest.resumeApiServer();
  } else if (scenario === 'dns') {
    // Simulated: workloads' lookups start failing during the canary (names CoreDNS cannot answer come
    // back SERVFAIL), next to normal lookups. The real cause in the incident, an overloaded API server
    // behind a restarting CoreDNS, is exercised in e2e/gates.e2e.test.ts and e2e/controlplane.e2e.test.ts.
    say(`FAULT: lookups through ${largest.name}'s CoreDNS start failing (simulated SERVFAILs) during the canary step`);
    state.faultAt = new Date();
    let failed = 0;
    let ok = 0;
    const until = Date.now() + 90_000;
    while (Date.now() < until) {
      for (const name of ['kubernetes.default.svc.cluster.local', 'api.payments.telemetry-demo.example']) {
        const r = await queryDNS({ host: largest.dns.host, port: largest.dns.port, name, timeoutMs: 500 }).catch(() => undefined);
        if (r?.rcodeName === 'NOERROR') ok++;
        else failed++;
      }
      if ((ok + failed) % 200 === 0 && (await getRollout())?.status?.phase !== 'Progressing') break;
      await new Promise((res) => setTimeout(res, 10));
    }
    say(`  ${failed} failed and ${ok} good lookups`);
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function main(argv: string[]): Promise<number> {
  const o = new Command('demo')
    .option('--scenario <name>', `one of ${SCENARIOS.join(', ')}`, 'regression')
    .option('--fleet <spec>', 'management + targets as name:nodes[:podsPerNode]', 'mgmt:3,small:20:4,medium:60:4,large:150:8')
    .option('--timeout <seconds>', 'give up after this long', '900')
    .option('--quiet', 'print the tree only when the phase or a step changes')
    .parse(argv)
    .opts<{ scenario: string; fleet: string; timeout: string; quiet?: boolean }>();
  if (!SCENARIOS.includes(o.scenario as Scenario)) {
    console.error(`demo: unknown scenario ${JSON.stringify(o.scenario)}: use one of ${SCENARIOS.join(', ')}`);
    return 2;
  }
  const scenario = o.scenario as Scenario;
  const work = mkdtempSync(join(tmpdir(), 'tro-demo-'));
  const nodesDir = join(work, 'nodes');
  let fleet: Fleet | undefined;
  let op: OperatorProcess | undefined;
  const runtimes: NodeRuntime[] = [];
  const cleanup = async () => {
    say('cleaning up: operator, agents, fleet');
    await op?.kill('SIGTERM').catch(() => undefined);
    for (const r of runtimes) await r.stop().catch(() => undefined);
    await fleet?.stop().catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  };
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    say('interrupted: cleaning up (Ctrl-C again to exit at once)');
    void cleanup().then(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    say(`scenario ${scenario}: starting a local fleet ${o.fleet} (the first run builds the control plane from the Go module proxy: ~8 min)`);
    fleet = await startFleet({ clusters: parseFleetSpec(o.fleet), extraUsers: DEFAULT_E2E_EXTRA_USERS.map((u) => ({ ...u })), log: (l) => say(l) });
    process.env[FLEET_INFO_ENV] = fleet.infoFile;
    const targets = targetClusters();
    say('installing the CRD and RBAC in the management cluster, the target role in each target, and kubeconfig Secrets');
    await prepareFleet(targets);
    say('starting the collector node runtime (one real agent per collector pod kwok runs) and the operator');
    for (const t of targets) runtimes.push(await startNodeRuntime({ kubeConfig: t.kubeConfig(), rootDir: nodesDir }));
    op = await startOperator({ identity: 'demo' });
    const largest = [...targets].sort((a, b) => b.nodes - a.nodes)[0]!;
    say(`applying rollout ${NAME}: ${scenario === 'regression' ? 'the Naive collector (the December 2024 incident pattern)' : 'a frugal collector'}`);
    await kubectl(managementCluster(), ['apply', '-f', '-'], { input: JSON.stringify(manifest(scenario, targets, nodesDir)) });

    const deadline = Date.now() + Number(o.timeout) * 1000;
    const fault: { done: boolean; faultAt?: Date } = { done: scenario === 'healthy' || scenario === 'regression' };
    let last = '';
    let ro: TelemetryRollout | undefined;
    const color = process.stdout.isTTY && !process.env.NO_COLOR;
    for (;;) {
      ro = await getRollout();
      const tree = ro ? renderRollout(ro, { color, now: new Date() }) : '(waiting for the rollout)';
      const key = o.quiet ? `${ro?.status?.phase}|${(ro?.status?.clusters ?? []).map((c) => `${c.phase}:${c.step}`).join(',')}` : tree;
      if (key !== last) {
        if (process.stdout.isTTY && !o.quiet) process.stdout.write('\x1b[2J\x1b[H');
        process.stdout.write(`${tree}\n`);
        last = key;
      }
      const phase = ro?.status?.phase;
      if (phase === 'Succeeded' || phase === 'RolledBack' || phase === 'Failed') break;
      if (Date.now() > deadline) throw new Error(`the rollout did not finish within ${o.timeout} s (phase ${phase ?? 'none'})`);
      await injectFault(scenario, largest, ro, fault);
      await new Promise((r) => setTimeout(r, 1000));
    }
    if (scenario === 'apiserver-down') {
      const agents = (await Promise.all(runtimes.map((r) => r.agents()))).flat();
      say(`agents of the bad revision still running after recovery: ${agents.filter((a) => a.revision === ro?.status?.revision && !a.stopped).length}`);
    }
    process.stdout.write(`\n===== summary =====\n${summarize(ro, scenario, fault.faultAt).join('\n')}\n`);
    return ro?.status?.phase === EXPECTED[scenario] ? 0 : 1;
  } catch (err) {
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    if (op) console.error(`--- operator log (tail) ---\n${op.tail(30)}`);
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (!interrupted) await cleanup();
  }
}

process.exitCode = await main(process.argv);
