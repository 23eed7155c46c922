// `npm run bench:operator`: the operator's own footprint.
//   - API requests it makes to each target cluster per minute in steady state, by verb (goal: no LIST,
//     only watches), and while it drives a rollout;
//   - its RSS and CPU while it drives a 3-target rollout and while idle (goals: < 150 MiB, < 5 % of a core).
// It starts its own fleet (management + targets of 20, 60 and 120 nodes by default; env TRO_BENCH_FLEET,
// e.g. `mgmt:3,a:20,b:60,c:120`) or reuses TRO_E2E_FLEET_INFO, runs the real operator process under its
// real RBAC, and prints the figures. Env TRO_BENCH_STEADY_SECONDS sets the steady-state window (180).
// The operator runs with its production node flags (operator/Dockerfile's ENTRYPOINT and the NODE_OPTIONS
// of config/manager/manager.yaml); TRO_OPERATOR_NODE_FLAGS replaces them (e.g. "--max-old-space-size=128"
// for V8 with its optimising compilers) to compare.
import { parseFleetSpec } from '../controlplane/default-fleet.js';
import { DEFAULT_E2E_EXTRA_USERS } from '../controlplane/default-fleet.js';
import { startFleet, type Fleet } from '../controlplane/fleet.js';
import { FLEET_INFO_ENV, kubectl, kubectlJSON, managementCluster, targetClusters } from '../controlplane/testing.js';
import { OPERATOR_NAMESPACE, operatorNodeFlags, prepareFleet, startOperator, type OperatorProcess } from '../support/operator.js';
import { CLK_TCK, procStat } from '../support/procstat.js';

const STEADY = Number(process.env.TRO_BENCH_STEADY_SECONDS ?? 180);

/** Samples a process every second until stopped; reports peak/mean RSS and mean CPU share. */
function sampler(pid: number): { stop(): { peakRssMiB: number; meanRssMiB: number; cpuPercent: number; seconds: number } } {
  const start = procStat(pid);
  const t0 = Date.now();
  const rss: number[] = [start.rss];
  const timer = setInterval(() => {
    try {
      rss.push(procStat(pid).rss);
    } catch {
      /* process gone */
    }
  }, 1000);
  return {
    stop() {
      clearInterval(timer);
      const end = procStat(pid);
      const seconds = (Date.now() - t0) / 1000;
      const mib = (b: number) => Math.round((b / 1048576) * 10) / 10;
      return {
        peakRssMiB: mib(Math.max(...rss)),
        meanRssMiB: mib(rss.reduce((a, b) => a + b, 0) / rss.length),
        cpuPercent: Math.round(((end.cpuTicks - start.cpuTicks) / CLK_TCK / seconds) * 1000) / 10,
        seconds: Math.round(seconds),
      };
    },
  };
}

/** tro_cluster_api_requests_total by cluster and verb, from the operator's /metrics. */
async function requestCounts(op: OperatorProcess): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const m of (await op.metrics()).matchAll(/^tro_cluster_api_requests_total\{([^}]*)\} ([0-9.e+]+)$/gm)) {
    const labels = new Map([...(m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1] ?? '', x[2] ?? '']));
    const key = `${labels.get('cluster') ?? ''}\t${labels.get('verb') ?? ''}`;
    out.set(key, (out.get(key) ?? 0) + Number(m[2]));
  }
  return out;
}

function perMinute(before: Map<string, number>, after: Map<string, number>, seconds: number): Array<{ cluster: string; verb: string; perMinute: number }> {
  const rows: Array<{ cluster: string; verb: string; perMinute: number }> = [];
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d <= 0) continue;
    const [cluster, verb] = k.split('\t') as [string, string];
    rows.push({ cluster, verb, perMinute: Math.round((d / seconds) * 60 * 10) / 10 });
  }
  return rows.sort((a, b) => (a.cluster + a.verb < b.cluster + b.verb ? -1 : 1));
}

function table(rows: Array<Record<string, unknown>>): string {
  if (!rows.length) return '  (none)';
  const cols = Object.keys(rows[0]!);
  const w = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (vals: string[]) => '  ' + vals.map((v, i) => v.padEnd(w[i]!)).join('  ');
  return [line(cols), ...rows.map((r) => line(cols.map((c) => String(r[c]))))].join('\n');
}

async function main(): Promise<void> {
  let fleet: Fleet | undefined;
  if (!process.env[FLEET_INFO_ENV]) {
    const spec = parseFleetSpec(process.env.TRO_BENCH_FLEET ?? 'mgmt:3,small:20,medium:60,large:120');
    fleet = await startFleet({ clusters: spec, extraUsers: DEFAULT_E2E_EXTRA_USERS.map((u) => ({ ...u })) });
    process.env[FLEET_INFO_ENV] = fleet.infoFile;
  }
  let op: OperatorProcess | undefined;
  try {
    const targets = targetClusters();
    await prepareFleet(targets);
    op = await startOperator({ identity: 'bench' });
    const pid = op.proc.pid!;
    const name = 'bench-operator';
    const manifest = {
      apiVersion: 'telemetry.rollout.dev/v1alpha1',
      kind: 'TelemetryRollout',
      metadata: { name, namespace: OPERATOR_NAMESPACE },
      spec: {
        collector: { image: 'registry.example/collector:bench' },
        targets: { clusters: targets.map((t) => ({ name: t.name, kubeconfigSecretRef: { name: `${t.name}-kubeconfig` } })) },
        strategy: {
          stages: [
            { name: 'canary', clusters: 1, nodeSteps: [1, 10, 50, 100], bakeSeconds: 0 },
            { name: 'rest', percent: 100, nodeSteps: [25, 100], bakeSeconds: 0, maxConcurrentClusters: 2 },
          ],
          nodeRelabelQPS: 20,
        },
        gates: {
          intervalSeconds: 10,
          windowSeconds: 10,
          scrapeIntervalSeconds: 1,
          coreDNS: { cacheTTLSeconds: 0 },
          apiServer: { maxP99LatencySeconds: 5, maxLatencyIncreaseRatio: 20 },
        },
      },
    };
    const before = await requestCounts(op);
    const s1 = sampler(pid);
    const t0 = Date.now();
    await kubectl(managementCluster(), ['apply', '-f', '-'], { input: JSON.stringify(manifest) });
    for (;;) {
      const r = await kubectlJSON<{ status?: { phase?: string } }>(managementCluster(), ['get', 'tro', name, '-n', OPERATOR_NAMESPACE, '-o', 'json']);
      if (r.status?.phase === 'Succeeded') break;
      if (r.status?.phase === 'RolledBack' || r.status?.phase === 'Failed') throw new Error(`rollout ended ${r.status.phase}`);
      if (Date.now() - t0 > 900_000) throw new Error('rollout did not finish in 15 min');
      await new Promise((r) => setTimeout(r, 1000));
    }
    const rolloutSeconds = (Date.now() - t0) / 1000;
    const during = s1.stop();
    const afterRollout = await requestCounts(op);

    // Steady state: the rollout is done; the operator keeps its watches and periodic resyncs.
    await new Promise((r) => setTimeout(r, 15_000));
    const steadyStart = await requestCounts(op);
    const s2 = sampler(pid);
    await new Promise((r) => setTimeout(r, STEADY * 1000));
    const idle = s2.stop();
    const steadyEnd = await requestCounts(op);

    const sizes = targets.map((t) => `${t.name}=${t.nodes}`).join(', ');
    console.log(`\n=== bench:operator (targets ${sizes}; steady window ${STEADY}s; node flags ${operatorNodeFlags().join(' ') || '(none)'}) ===`);
    console.log(`\nRollout of ${targets.length} targets: ${Math.round(rolloutSeconds)} s`);
    console.log(
      `Operator while driving the rollout: peak RSS ${during.peakRssMiB} MiB, mean RSS ${during.meanRssMiB} MiB, CPU ${during.cpuPercent}% of a core (${during.seconds} s)`,
    );
    console.log(
      `Operator idle (steady state):       peak RSS ${idle.peakRssMiB} MiB, mean RSS ${idle.meanRssMiB} MiB, CPU ${idle.cpuPercent}% of a core (${idle.seconds} s)`,
    );
    console.log(`\nAPI requests per minute during the rollout, by cluster and verb:\n${table(perMinute(before, afterRollout, rolloutSeconds))}`);
    const steadyRows = perMinute(steadyStart, steadyEnd, idle.seconds);
    console.log(`\nAPI requests per minute in steady state, by cluster and verb:\n${table(steadyRows)}`);
    const lists = steadyRows.filter((r) => r.verb === 'list' && r.cluster !== 'management');
    console.log(`\nLIST requests to targets in steady state: ${lists.length ? lists.map((r) => `${r.cluster} ${r.perMinute}/min`).join(', ') : 'none'}`);
    await kubectl(managementCluster(), ['delete', 'tro', name, '-n', OPERATOR_NAMESPACE, '--ignore-not-found']);
  } finally {
    await op?.kill('SIGTERM');
    await fleet?.stop();
  }
}

await main();
