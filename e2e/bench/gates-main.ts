// The gates benchmark (`npm run bench:gates`, issue 5): on a real local control plane with the REAL
// operator process (dist/, as `npm test` runs it), it measures
//   (a) detection latency over repeated induced regressions: LIST load starts (the breach) -> the first
//       Fail verdict (the first evaluation whose window saw the load) -> the rollout halted (Paused);
//   (b) false failures during a healthy run with normal noise: the cluster's own background traffic
//       (kube-controller-manager, scheduler, kwok's node heartbeats and leases, CoreDNS, the operator
//       itself) plus a light benign client, at the default thresholds.
// It prints per-run figures and a summary; nothing is asserted (timings on a shared 2-core machine).
//
// Why the operator process and not the reconciler in-process: the figure that matters is what the
// product does, including the work queue's requeue timing, the status writes and the management
// cluster round trips; an in-process loop would measure a harness of ours instead. Timestamps come from
// the operator's own status (lastGate.time, status.history) and from when a poller (every 250 ms) first
// saw each change, on the same machine clock as the load generator.
//
// Environment (defaults in brackets):
//   TRO_E2E_FLEET_INFO          reuse a running fleet (its first target cluster); else a fleet of its own
//                               is started: mgmt (1 node) + bench (50 nodes)
//   TRO_BENCH_PODS [1500]       pause pods added to the target in a namespace of the benchmark's
//   TRO_BENCH_REGRESSIONS [10]  induced regressions in (a); 0 skips (a)
//   TRO_BENCH_LOAD [6]          concurrent LIST clients of a regression
//   TRO_BENCH_INTERVAL [5]      gate interval of (a), seconds
//   TRO_BENCH_HEALTHY_SECONDS [600]  length of (b); e.g. 60 for a quick run; 0 skips (b)
//   TRO_BENCH_HEALTHY_INTERVAL [10]  gate interval of (b), seconds (the API default)
//   TRO_BENCH_BENIGN_RPS [5]    requests per second of the benign client in (b)
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import type { TelemetryRollout } from '../../operator/src/api/types.generated.js';
import { DEFAULT_E2E_EXTRA_USERS, MANAGEMENT_CLUSTER } from '../controlplane/default-fleet.js';
import { queryDNS } from '../controlplane/dns.js';
import { attachFleet, startFleet, type ClusterHandle, type Fleet } from '../controlplane/fleet.js';
import { FLEET_INFO_ENV, createNamespace, kubectl, managementCluster } from '../controlplane/testing.js';
import { detection, gateRollout, RolloutWatcher, type GateRecord } from '../support/gatewatch.js';
import { formatLoadStats, startBenignLoad, startListLoad } from '../support/loadgen.js';
import { ensurePodPopulation } from '../support/population.js';
import { OPERATOR_NAMESPACE, prepareFleet, startOperator, type OperatorProcess } from '../support/operator.js';

const REVISION_LABEL = 'telemetry.rollout.dev/revision';

function envNumber(name: string, fallback: number, allowZero = false): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0 || (v === 0 && !allowZero)) throw new Error(`${name}=${raw}: expected a ${allowZero ? 'non-negative' : 'positive'} number`);
  return v;
}

const cfg = {
  pods: envNumber('TRO_BENCH_PODS', 1500),
  /** 0 skips (a). */
  regressions: Math.floor(envNumber('TRO_BENCH_REGRESSIONS', 10, true)),
  load: Math.floor(envNumber('TRO_BENCH_LOAD', 6)),
  interval: envNumber('TRO_BENCH_INTERVAL', 5),
  /** 0 skips (b). */
  healthySeconds: envNumber('TRO_BENCH_HEALTHY_SECONDS', 600, true),
  healthyInterval: envNumber('TRO_BENCH_HEALTHY_INTERVAL', 10),
  benignRps: envNumber('TRO_BENCH_BENIGN_RPS', 5),
};

function log(line: string): void {
  process.stdout.write(`[bench:gates ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The machine's 1-minute load average, sampled every 10 s: on a shared 2-core machine other work (other
 * test runs, builds) is part of the noise the gate sees, and the figures mean little without it.
 */
const loadSamples: Array<{ at: number; load: number }> = [];
const loadSampler = setInterval(() => loadSamples.push({ at: Date.now(), load: loadavg()[0] ?? 0 }), 10_000);
loadSampler.unref();

function loadBetween(from: number, to: number): string {
  const v = loadSamples.filter((s) => s.at >= from && s.at <= to).map((s) => s.load);
  if (v.length === 0) return 'n/a';
  return `min ${Math.min(...v).toFixed(1)} mean ${(v.reduce((a, b) => a + b, 0) / v.length).toFixed(1)} max ${Math.max(...v).toFixed(1)} (2 cores)`;
}

/** min / median / p90 / max (nearest rank) of seconds, formatted. */
function summary(values: number[]): string {
  if (values.length === 0) return 'n/a';
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] as number;
  return `min ${(s[0] as number).toFixed(1)}s  median ${at(0.5).toFixed(1)}s  p90 ${at(0.9).toFixed(1)}s  max ${(s[s.length - 1] as number).toFixed(1)}s  (n=${s.length})`;
}

const clusterOf = (r: TelemetryRollout, name: string) => r.status?.clusters?.find((c) => c.name === name);

/** The cluster bakes and the last `n` evaluations since its bake (re)started passed. */
function bakingHealthy(cluster: string, n: number) {
  return (r: TelemetryRollout, w: RolloutWatcher): boolean => {
    const c = clusterOf(r, cluster);
    if (r.status?.phase !== 'Progressing' || c?.phase !== 'Baking' || !c.bakeStartedAt) return false;
    const since = w.evaluations(cluster).filter((g) => g.time.getTime() >= Date.parse(c.bakeStartedAt as string));
    return since.length >= n && since.slice(-n).every((g) => g.verdict === 'Pass');
  };
}

async function applyRollout(manifest: Record<string, unknown>): Promise<void> {
  await kubectl(managementCluster(), ['apply', '-f', '-'], { input: JSON.stringify(manifest) });
}

async function deleteRollout(target: ClusterHandle, name: string): Promise<void> {
  await kubectl(managementCluster(), ['delete', 'tro', name, '-n', OPERATOR_NAMESPACE, '--ignore-not-found', '--wait=true']);
  await kubectl(target, ['label', 'nodes', '--all', `${REVISION_LABEL}-`]);
  await kubectl(target, [
    'delete',
    'daemonsets,configmaps',
    '-n',
    'telemetry-system',
    '-l',
    'app.kubernetes.io/managed-by=telemetry-rollout',
    '--ignore-not-found',
  ]);
}

/** One induced regression's figures, seconds from the load start unless said otherwise. */
interface Run {
  run: number;
  outcome: 'halted' | 'halted-nodata' | 'missed';
  p99?: number;
  bound?: number;
  failed?: string;
  /** Load start -> the first Fail verdict, by the operator's timestamp (start of the evaluating pass). */
  firstFail?: number;
  /** Load start -> the first Fail verdict visible in the API. */
  firstFailSeen?: number;
  /** Load start -> the halt, by the operator's history timestamp. */
  halt?: number;
  /** Load start -> the rollout seen Paused. */
  haltSeen?: number;
  /** Evaluations from the first Fail to the halt (failureLimit when consecutive). */
  evaluations?: number;
}

/** (a): `regressions` times: healthy bake -> LIST load -> Paused by the gate -> recover -> retry. */
async function detectionRuns(target: ClusterHandle): Promise<Run[]> {
  const name = 'bench-detect';
  await applyRollout(
    gateRollout({ name, namespace: OPERATOR_NAMESPACE, target: target.name, onFailure: 'Pause', intervalSeconds: cfg.interval, bakeSeconds: 86_400 }),
  );
  const w = new RolloutWatcher(managementCluster().kubeConfig(), OPERATOR_NAMESPACE, name).start();
  const runs: Run[] = [];
  try {
    for (let run = 1; run <= cfg.regressions; run++) {
      await w.waitFor('baking with two passing evaluations', bakingHealthy(target.name, 2), 300_000);
      const load = startListLoad(target.kubeConfig(), { concurrency: cfg.load, durationMs: 180_000, userAgent: 'tro-bench-gates' });
      const t0 = load.startedAt.getTime();
      let outcome: Run['outcome'] = 'missed';
      try {
        const r = await w.waitFor('halted by the gate', (ro) => ro.status?.phase === 'Paused', 150_000);
        outcome = r.status?.reason === 'GateNoData' ? 'halted-nodata' : 'halted';
      } catch (err) {
        log(`run ${run}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
      } finally {
        const stats = await load.stop();
        log(`run ${run}: ${formatLoadStats(stats)}`);
      }
      await w.poll();
      const d = detection(w, target.name, load.startedAt);
      const fail = d.firstFail;
      const secs = (t: number | undefined) => (t === undefined ? undefined : (t - t0) / 1000);
      const rec: Run = { run, outcome };
      if (fail) {
        rec.p99 = fail.measurements['apiServerP99Seconds'];
        rec.bound = fail.thresholds['apiServerP99Seconds'];
        rec.failed = fail.failed.join(',');
        rec.firstFail = secs(fail.time.getTime());
        rec.firstFailSeen = secs(fail.seenAt.getTime());
      }
      if (d.haltEntry?.time) rec.halt = secs(Date.parse(d.haltEntry.time));
      if (d.haltSeenAt) rec.haltSeen = secs(d.haltSeenAt.getTime());
      if (fail && d.haltEntry?.time) {
        const haltAt = Date.parse(d.haltEntry.time);
        rec.evaluations = w.evaluations(target.name).filter((g: GateRecord) => g.time.getTime() >= fail.time.getTime() && g.time.getTime() <= haltAt).length;
      }
      runs.push(rec);
      log(`run ${run}: ${formatRun(rec)}`);
      if (outcome === 'missed') break; // the next runs would measure a rollout in an unknown state
      // Recover: the load is gone; once the gate passes again (it keeps evaluating while paused), retry.
      const stoppedAt = Date.now();
      await w.waitFor(
        'a passing evaluation after the load',
        (_r, ww) => ww.evaluations(target.name).some((g) => g.time.getTime() > stoppedAt && g.verdict === 'Pass'),
        300_000,
      );
      await kubectl(managementCluster(), ['annotate', 'tro', name, '-n', OPERATOR_NAMESPACE, `telemetry.rollout.dev/retry=bench-${run}`, '--overwrite']);
    }
  } finally {
    await w.stop();
    await deleteRollout(target, name);
  }
  return runs;
}

function formatRun(r: Run): string {
  const f = (v: number | undefined, d = 1) => (v === undefined ? '-' : v.toFixed(d));
  return `${r.outcome}; first Fail: p99 ${f(r.p99, 3)}s > bound ${f(r.bound, 3)}s [${r.failed ?? '-'}]; load -> first Fail ${f(r.firstFail)}s (seen ${f(r.firstFailSeen)}s); load -> halted ${f(r.halt)}s (seen ${f(r.haltSeen)}s); first Fail -> halt ${r.firstFail !== undefined && r.halt !== undefined ? (r.halt - r.firstFail).toFixed(1) : '-'}s over ${r.evaluations ?? '-'} evaluations`;
}

/** (b)'s figures. */
interface Healthy {
  seconds: number;
  start: number;
  end: number;
  evaluations: GateRecord[];
  halts: number;
  benign: string;
}

/** (b): a rollout baking for `healthySeconds` with normal noise; every verdict is counted. */
async function healthyRun(target: ClusterHandle, namespace: string): Promise<Healthy> {
  const name = 'bench-healthy';
  // CoreDNS is gated too here: its metrics URL is given and the benign client resolves names as pods do.
  await applyRollout(
    gateRollout({
      name,
      namespace: OPERATOR_NAMESPACE,
      target: target.name,
      onFailure: 'Pause',
      intervalSeconds: cfg.healthyInterval,
      windowSeconds: 30,
      bakeSeconds: 86_400,
      metrics: { coreDNSMetricsURL: target.coreDNSMetricsURL },
    }),
  );
  const w = new RolloutWatcher(managementCluster().kubeConfig(), OPERATOR_NAMESPACE, name).start();
  const benign = await startBenignLoad(target.kubeConfig(), { namespace, ratePerSecond: cfg.benignRps, durationMs: (cfg.healthySeconds + 300) * 1000 });
  const dns = { stop: false, answers: {} as Record<string, number> };
  const names = ['kubernetes.default.svc.cluster.local', `load-00.${namespace}.svc.cluster.local`, `absent.${namespace}.svc.cluster.local`];
  const resolver = (async () => {
    for (let i = 0; !dns.stop; i++) {
      const a = await queryDNS({ ...target.dns, name: names[i % names.length] as string, timeoutMs: 2000 }).catch(() => undefined);
      const k = a?.rcodeName ?? 'timeout';
      dns.answers[k] = (dns.answers[k] ?? 0) + 1;
      await sleep(1000 / cfg.benignRps);
    }
  })();
  try {
    await w.waitFor('baking', (r) => clusterOf(r, target.name)?.phase === 'Baking', 300_000);
    const start = Date.now();
    const end = start + cfg.healthySeconds * 1000;
    while (Date.now() < end) {
      await sleep(Math.min(60_000, end - Date.now()));
      const evs = w.evaluations(target.name).filter((g) => g.time.getTime() >= start);
      const count = (v: string) => evs.filter((g) => g.verdict === v).length;
      log(
        `healthy run: ${Math.round((Date.now() - start) / 1000)}/${cfg.healthySeconds}s: ${evs.length} evaluations: Pass ${count('Pass')}, Fail ${count('Fail')}, NoData ${count('NoData')}; load average ${(loadavg()[0] ?? 0).toFixed(1)}`,
      );
    }
    await w.poll();
    const evaluations = w.evaluations(target.name).filter((g) => g.time.getTime() >= start && g.time.getTime() <= end);
    const halts = w.phases().filter((p) => p.seenAt.getTime() >= start && p.phase === 'Paused').length;
    const stats = await benign.stop();
    dns.stop = true;
    await resolver;
    return {
      seconds: cfg.healthySeconds,
      start,
      end,
      evaluations,
      halts,
      benign: `${formatLoadStats(stats, 'benign client')}; DNS answers ${JSON.stringify(dns.answers)}`,
    };
  } finally {
    dns.stop = true;
    await resolver;
    await benign.stop();
    await w.stop();
    await deleteRollout(target, name);
  }
}

function printResults(target: ClusterHandle, runs: Run[], detectWindow: [number, number], healthy: Healthy | undefined): void {
  const out: string[] = ['', '==================== gates benchmark: results ===================='];
  out.push(
    `command: npm run bench:gates  (${Object.entries(cfg)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')})`,
  );
  out.push(
    `target ${target.name}: ${target.nodes} nodes + ${cfg.pods} pause pods; real operator process; default thresholds (API server p99 1 s and x1.5 of the step's baseline with a 0.1 s floor, errors 1 %, APF 1/s; CoreDNS errors 1 %, p99 0.25 s), failureLimit 2`,
  );
  out.push(
    '',
    `(a) detection latency over ${runs.length} induced regressions (${cfg.load} clients LISTing pods/services/endpoints cluster-wide without resourceVersion; gate interval ${cfg.interval}s):`,
  );
  runs.forEach((r) => out.push(`  run ${String(r.run).padStart(2)}: ${formatRun(r)}`));
  const halted = runs.filter((r) => r.outcome === 'halted');
  const pick = (f: (r: Run) => number | undefined) => halted.map(f).filter((v): v is number => v !== undefined);
  out.push(
    `  halted by a Fail verdict: ${halted.length}/${runs.length}; halted by NoData: ${runs.filter((r) => r.outcome === 'halted-nodata').length}; missed: ${runs.filter((r) => r.outcome === 'missed').length}`,
    `  load start -> first Fail verdict (operator time): ${summary(pick((r) => r.firstFail))}`,
    `  load start -> first Fail verdict (seen in API):  ${summary(pick((r) => r.firstFailSeen))}`,
    `  load start -> rollout halted (operator time):    ${summary(pick((r) => r.halt))}`,
    `  load start -> rollout halted (seen in API):      ${summary(pick((r) => r.haltSeen))}`,
    `  first Fail -> halted (operator time):            ${summary(pick((r) => (r.halt !== undefined && r.firstFail !== undefined ? r.halt - r.firstFail : undefined)))}`,
    `  machine load average during (a): ${loadBetween(detectWindow[0], detectWindow[1])}`,
  );
  if (healthy) {
    const evs = healthy.evaluations;
    const count = (v: string) => evs.filter((g) => g.verdict === v).length;
    const judged = evs.filter((g) => g.verdict !== 'NoData' && !/apiServerP99Seconds not judged/.test(g.message)).length;
    const p99s = evs.map((g) => g.measurements['apiServerP99Seconds']).filter((v): v is number => v !== undefined);
    const bounds = [...new Set(evs.map((g) => g.thresholds['apiServerP99Seconds']).filter((v): v is number => v !== undefined))];
    out.push(
      '',
      `(b) healthy run of ${healthy.seconds}s, gate interval ${cfg.healthyInterval}s, default thresholds, normal noise (${healthy.benign}):`,
      `  evaluations ${evs.length}: Pass ${count('Pass')}, Fail ${count('Fail')}, NoData ${count('NoData')}  ->  false Fail rate ${evs.length ? ((100 * count('Fail')) / evs.length).toFixed(1) : '-'} %, NoData rate ${evs.length ? ((100 * count('NoData')) / evs.length).toFixed(1) : '-'} %`,
      `  rollout halted (Paused) during the run: ${healthy.halts} time(s)`,
      `  machine load average during (b): ${loadBetween(healthy.start, healthy.end)}`,
      `  evaluations whose p99 had enough samples (>= 20) to be judged: ${judged}/${evs.length}; p99 bound(s): ${bounds.map((b) => `${b}s`).join(', ') || '-'}`,
      `  measured p99: ${p99s.length ? `min ${Math.min(...p99s).toFixed(3)}s median ${[...p99s].sort((a, b) => a - b)[Math.floor(p99s.length / 2)]?.toFixed(3)}s max ${Math.max(...p99s).toFixed(3)}s` : '-'}`,
    );
    for (const g of evs.filter((e) => e.verdict !== 'Pass')) out.push(`  ${g.verdict} at ${g.time.toISOString()}: ${g.message}`);
  }
  out.push('==================================================================', '');
  process.stdout.write(out.join('\n'));
}

/** Runs the benchmark; resolves with the process exit code. */
export async function main(): Promise<number> {
  const t0 = Date.now();
  let fleet: Fleet | undefined;
  let owned = false;
  const reuse = process.env[FLEET_INFO_ENV];
  if (reuse && existsSync(reuse)) {
    fleet = attachFleet(reuse);
    log(`reusing the fleet of ${reuse}`);
  } else {
    fleet = await startFleet({
      clusters: [
        { name: MANAGEMENT_CLUSTER, nodes: 1 },
        { name: 'bench', nodes: 50 },
      ],
      extraUsers: DEFAULT_E2E_EXTRA_USERS.map((u) => ({ ...u })),
    });
    owned = true;
    process.env[FLEET_INFO_ENV] = fleet.infoFile;
  }
  const target = fleet.clusters.find((c) => c.name !== MANAGEMENT_CLUSTER);
  if (!target) throw new Error('the fleet has no target cluster');
  let operator: OperatorProcess | undefined;
  let namespace: string | undefined;
  let runs: Run[] = [];
  let healthy: Healthy | undefined;
  const detectWindow: [number, number] = [Date.now(), Date.now()];
  let code = 0;
  try {
    await prepareFleet([target]);
    namespace = await createNamespace(target, 'bench-gates');
    const tp = Date.now();
    await ensurePodPopulation(target.kubeConfig(), namespace, { pods: cfg.pods });
    log(`${target.name}: ${cfg.pods} pods available in ${namespace} after ${((Date.now() - tp) / 1000).toFixed(0)}s`);
    operator = await startOperator({ identity: 'op-bench' });
    if (cfg.regressions > 0) {
      log(`(a) ${cfg.regressions} induced regressions`);
      detectWindow[0] = Date.now();
      runs = await detectionRuns(target);
      detectWindow[1] = Date.now();
    }
    if (cfg.healthySeconds > 0) {
      log(`(b) healthy run of ${cfg.healthySeconds}s`);
      healthy = await healthyRun(target, namespace);
    }
  } catch (err) {
    code = 1;
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    if (operator) log(`operator log tail:\n${operator.tail(40)}`);
  } finally {
    if (detectWindow[1] < detectWindow[0]) detectWindow[1] = Date.now();
    printResults(target, runs, detectWindow, healthy);
    await operator?.kill('SIGTERM');
    if (namespace) await kubectl(target, ['delete', 'namespace', namespace, '--wait=false']).catch(() => undefined);
    if (owned) await fleet.stop();
    log(`done in ${((Date.now() - t0) / 60_000).toFixed(1)} min`);
  }
  return code;
}
