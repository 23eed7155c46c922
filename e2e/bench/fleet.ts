// `npm run bench:fleet`: the operator's own cost at fleet scale. The real operator process (built dist,
// production node flags) and its real ClusterClients against one stub API server process serving many
// virtual target clusters (e2e/bench/stubapi), the management cluster being the real local control plane
// (the CRD, the rollout's status writes and the kubeconfig Secrets' informer are the real thing).
// For each fleet size: a rollout over every target, then a steady-state window; it measures the
// operator's RSS and CPU (/proc), its reconcile pass durations (its tro_reconcile_duration_seconds
// histogram), the requests per second per target (counted by the stub) and the rollout object's size.
// Writes e2e/bench/results/fleet.json (docs/benchmarks.md's fleet section is generated from it:
// npm run bench:docs) and prints a table.
// Env: TRO_BENCH_FLEET_SIZES (100,300,1000), TRO_BENCH_FLEET_NODES (nodes per cluster, 20),
// TRO_BENCH_STEADY_SECONDS (60), TRO_BENCH_FLEET_CONCURRENCY (the fleet stage's maxConcurrentClusters,
// 100), TRO_BENCH_FLEET_TIMEOUT_SECONDS (per rollout, 1200: the 1,000-cluster rollout took 879 s on 2 shared cores), TRO_OPERATOR_NODE_FLAGS (as bench:operator),
// TRO_BENCH_NOTE (said about the machine in the results), TRO_BENCH_NO_WRITE=1 (print only),
// TRO_BENCH_FLEET_APPEND=1 (add the runs to those of the results file, e.g. a series with other node flags).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DEFAULT_E2E_EXTRA_USERS } from '../controlplane/default-fleet.js';
import { startFleet, type Fleet } from '../controlplane/fleet.js';
import { httpGet } from '../controlplane/net.js';
import { FLEET_INFO_ENV, kubectl, kubectlResult, managementCluster } from '../controlplane/testing.js';
import { OPERATOR_NAMESPACE, operatorNodeFlags, prepareFleet, productionNodeFlags, startOperator, type OperatorProcess } from '../support/operator.js';
import { CLK_TCK, procStat } from '../support/procstat.js';
import { benchEnvironment, REPO_ROOT } from './breakglass-results.js';
import { histogramDelta, passFigures, readHistogram, requestFigures, type HistogramReading, type StubCounts } from './fleet-measure.js';
import { readFleetResults, writeFleetResults, type FleetResults, type FleetRun, type ProcessFigures } from './fleet-results.js';

const SIZES = (process.env.TRO_BENCH_FLEET_SIZES ?? '100,300,1000').split(',').map(Number);
const NODES = Number(process.env.TRO_BENCH_FLEET_NODES ?? 20);
const STEADY = Number(process.env.TRO_BENCH_STEADY_SECONDS ?? 60);
const CONCURRENCY = Number(process.env.TRO_BENCH_FLEET_CONCURRENCY ?? 100);
const TIMEOUT = Number(process.env.TRO_BENCH_FLEET_TIMEOUT_SECONDS ?? 1200);
const READY_DELAY_MS = 2000;
const FLEET_LABEL = 'telemetry.rollout.dev/bench-fleet';
const ROLLOUT = 'bench-fleet';
const NODE = join(REPO_ROOT, 'node_modules', '.bin', 'node');
const HOOK = join(REPO_ROOT, 'operator', 'src', 'cli', 'ts-resolve-hook.ts');
const STAGES = [
  { name: 'canary', clusters: 1, nodeSteps: [50, 100], bakeSeconds: 0, maxConcurrentClusters: 1 },
  { name: 'fleet', percent: 100, nodeSteps: [100], bakeSeconds: 0, maxConcurrentClusters: CONCURRENCY },
];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (b: number) => Math.round((b / 1048576) * 10) / 10;
const log = (msg: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

/** Samples a process every second until stopped: peak/mean RSS and CPU share. */
function sampler(pid: number): { stop(): ProcessFigures } {
  const start = procStat(pid);
  const t0 = Date.now();
  const rss: number[] = [start.rss];
  let last = start;
  const timer = setInterval(() => {
    try {
      last = procStat(pid);
      rss.push(last.rss);
    } catch {
      /* process gone */
    }
  }, 1000);
  return {
    stop() {
      clearInterval(timer);
      try {
        last = procStat(pid);
      } catch {
        /* process gone: its last reading stands */
      }
      const seconds = (Date.now() - t0) / 1000;
      return {
        seconds: Math.round(seconds),
        peakRssMiB: mib(Math.max(...rss)),
        meanRssMiB: mib(rss.reduce((a, b) => a + b, 0) / rss.length),
        cpuPercent: Math.round(((last.cpuTicks - start.cpuTicks) / CLK_TCK / seconds) * 1000) / 10,
      };
    },
  };
}

interface Stub {
  proc: ChildProcess;
  port: number;
  statsPort: number;
  ca: string;
  stats(): Promise<StubCounts & { openWatches: number; unknown: Record<string, number> }>;
  stop(): Promise<void>;
}

async function startStub(clusters: number, dir: string): Promise<Stub> {
  const proc = spawn(NODE, ['--import', HOOK, join(REPO_ROOT, 'e2e', 'bench', 'stubapi', 'main.ts'), String(clusters), String(NODES), dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, TRO_STUB_READY_DELAY_MS: String(READY_DELAY_MS) },
  });
  const first = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout });
    rl.once('line', (l) => resolve(l));
    proc.once('exit', (code) => reject(new Error(`stub API server exited with ${code}`)));
  });
  const info = JSON.parse(first) as { port: number; statsPort: number; ca: string };
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    proc,
    ...info,
    async stats() {
      return JSON.parse((await httpGet(`http://127.0.0.1:${info.statsPort}/stats`, { timeoutMs: 10_000 })).body) as Awaited<ReturnType<Stub['stats']>>;
    },
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

function kubeconfig(name: string, server: string, ca: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': name,
    contexts: [{ name, context: { cluster: name, user: 'telemetry-rollout-operator' } }],
    clusters: [{ name, cluster: { server, 'certificate-authority-data': Buffer.from(ca).toString('base64') } }],
    users: [{ name: 'telemetry-rollout-operator', user: { token: `stub-token-${name}-${'x'.repeat(900)}` } }],
  });
}

/** Replaces the kubeconfig Secrets of the previous size by one per virtual cluster of this one. */
async function writeSecrets(stub: Stub, clusters: number): Promise<void> {
  const mgmt = managementCluster();
  await kubectl(mgmt, ['delete', 'secrets', '-n', OPERATOR_NAMESPACE, '-l', FLEET_LABEL, '--ignore-not-found', '--wait=false']);
  const names = Array.from({ length: clusters }, (_, i) => `c${String(i + 1).padStart(4, '0')}`);
  for (let i = 0; i < names.length; i += 200) {
    const items = names.slice(i, i + 200).map((n) => ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: `${n}-kubeconfig`,
        namespace: OPERATOR_NAMESPACE,
        labels: { [FLEET_LABEL]: String(clusters), 'telemetry.rollout.dev/cluster-name': n },
      },
      stringData: { value: kubeconfig(n, `https://127.0.0.1:${stub.port}/clusters/${n}`, stub.ca) },
    }));
    await kubectl(mgmt, ['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }) });
  }
}

async function reconcileHistogram(op: OperatorProcess): Promise<HistogramReading> {
  return readHistogram(await op.metrics(), 'tro_reconcile_duration_seconds');
}

/** RSS, heap and external memory from prom-client's default metrics, MiB. */
function memoryOf(text: string): { rssMiB: number; heapUsedMiB: number; heapTotalMiB: number; externalMiB: number } {
  const g = (name: string) => Number(new RegExp(`^${name} ([0-9.e+]+)$`, 'm').exec(text)?.[1] ?? NaN);
  return {
    rssMiB: mib(g('process_resident_memory_bytes')),
    heapUsedMiB: mib(g('nodejs_heap_size_used_bytes')),
    heapTotalMiB: mib(g('nodejs_heap_size_total_bytes')),
    externalMiB: mib(g('nodejs_external_memory_bytes')),
  };
}

/** Removes the rollout (its finalizer too: the operator that would clean up is already stopped). */
async function dropRollout(): Promise<void> {
  const mgmt = managementCluster();
  await kubectlResult(mgmt, ['patch', 'tro', ROLLOUT, '-n', OPERATOR_NAMESPACE, '--type', 'merge', '-p', '{"metadata":{"finalizers":null}}']);
  await kubectlResult(mgmt, ['delete', 'tro', ROLLOUT, '-n', OPERATOR_NAMESPACE, '--ignore-not-found', '--wait=true', '--timeout=60s']);
}

type RolloutView = { status?: { phase?: string; clusters?: Array<{ phase?: string }> } };

async function getRollout(): Promise<{ text: string; obj: RolloutView }> {
  const text = await kubectl(managementCluster(), ['get', 'tro', ROLLOUT, '-n', OPERATOR_NAMESPACE, '-o', 'json']);
  return { text, obj: JSON.parse(text) as RolloutView };
}

async function runSize(clusters: number): Promise<FleetRun> {
  const dir = mkdtempSync(join(tmpdir(), 'tro-fleet-'));
  log(`${clusters} clusters × ${NODES} nodes: starting the stub API server`);
  const stub = await startStub(clusters, dir);
  let op: OperatorProcess | undefined;
  try {
    await dropRollout();
    await writeSecrets(stub, clusters);
    op = await startOperator({ identity: `fleet-${clusters}`, env: { LOG_LEVEL: 'info' } });
    const pid = op.proc.pid!;
    await sleep(3000);
    const readyRssMiB = mib(procStat(pid).rss);
    log(`operator ready (RSS ${readyRssMiB} MiB, log ${op.logFile}); applying the rollout`);
    const h0 = await reconcileHistogram(op);
    const c0 = await stub.stats();
    const s1 = sampler(pid);
    const t0 = Date.now();
    const manifest = {
      apiVersion: 'telemetry.rollout.dev/v1alpha1',
      kind: 'TelemetryRollout',
      metadata: { name: ROLLOUT, namespace: OPERATOR_NAMESPACE },
      spec: {
        collector: { image: 'registry.example/collector:bench' },
        targets: { selector: { matchLabels: { [FLEET_LABEL]: String(clusters) } } },
        strategy: { stages: STAGES, nodeRelabelQPS: 20 },
        gates: {
          intervalSeconds: 10,
          windowSeconds: 10,
          scrapeIntervalSeconds: 1,
          coreDNS: { cacheTTLSeconds: 0 },
          apiServer: { maxP99LatencySeconds: 5, maxLatencyIncreaseRatio: 20 },
        },
      },
    };
    await kubectl(managementCluster(), ['apply', '-f', '-'], { input: JSON.stringify(manifest) });
    let outcome = 'Timeout';
    let error: string | undefined;
    let lastReport = 0;
    // The latest histogram reading, so the passes of an operator that dies mid-rollout are still counted up to then.
    let hLast = h0;
    for (;;) {
      if (op.proc.exitCode !== null || op.proc.signalCode !== null) {
        outcome = 'OperatorExited';
        error = op
          .tail(200)
          .split('\n')
          .filter((l) => /heap|memory|error/i.test(l))
          .slice(-3)
          .join(' | ')
          .slice(0, 600);
        break;
      }
      const r = await getRollout().catch(() => undefined);
      const phase = r?.obj.status?.phase;
      if (phase === 'Succeeded' || phase === 'RolledBack' || phase === 'Failed') {
        outcome = phase;
        break;
      }
      if (Date.now() - lastReport > 30_000) {
        lastReport = Date.now();
        hLast = await reconcileHistogram(op).catch(() => hLast);
        const done = r?.obj.status?.clusters?.filter((c) => c.phase === 'Succeeded').length ?? 0;
        log(`  ${Math.round((Date.now() - t0) / 1000)} s: ${phase ?? '(no status)'}, ${done}/${clusters} clusters done, RSS ${mib(procStat(pid).rss)} MiB`);
      }
      if (Date.now() - t0 > TIMEOUT * 1000) {
        error = `the rollout was not over after ${TIMEOUT} s (phase ${phase ?? 'none'})`;
        break;
      }
      await sleep(2000);
    }
    const rolloutSeconds = Math.round((Date.now() - t0) / 1000);
    const rollout = s1.stop();
    const alive = op.proc.exitCode === null && op.proc.signalCode === null;
    const c1 = await stub.stats();
    const h1 = alive ? await reconcileHistogram(op) : hLast;
    const memoryAtEnd = alive ? memoryOf(await op.metrics()) : undefined;
    log(`  rollout ${outcome} after ${rolloutSeconds} s`);
    const run: FleetRun = {
      clusters,
      nodeFlags: operatorNodeFlags().join(' ') || '(none)',
      nodesPerCluster: NODES,
      outcome,
      ...(error ? { error } : {}),
      rolloutSeconds,
      readyRssMiB,
      rollout,
      passesRollout: passFigures(histogramDelta(h0, h1)),
      requestsRollout: requestFigures(c0, c1, clusters, rolloutSeconds),
      objectBytes: 0,
      statusBytes: 0,
      openWatches: c1.openWatches,
      unknownPaths: c1.unknown,
      ...(memoryAtEnd ? { memoryAtEnd } : {}),
    };
    const r = await getRollout();
    run.objectBytes = Buffer.byteLength(JSON.stringify(r.obj));
    run.statusBytes = Buffer.byteLength(JSON.stringify(r.obj.status ?? {}));
    if (alive) {
      // Steady state: the rollout is over; the operator keeps its node watches and periodic passes.
      await sleep(15_000);
      const c2 = await stub.stats();
      const h2 = await reconcileHistogram(op);
      const s2 = sampler(pid);
      log(`  steady state for ${STEADY} s`);
      await sleep(STEADY * 1000);
      run.steady = s2.stop();
      const c3 = await stub.stats();
      run.passesSteady = passFigures(histogramDelta(h2, await reconcileHistogram(op)));
      run.requestsSteady = requestFigures(c2, c3, clusters, run.steady.seconds);
      run.openWatches = c3.openWatches;
      run.unknownPaths = c3.unknown;
    }
    return run;
  } finally {
    await op?.kill('SIGTERM');
    await stub.stop();
    await dropRollout().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

function printTable(r: FleetResults): void {
  const rows = r.runs.map((x) => ({
    clusters: x.clusters,
    outcome: x.outcome,
    'rollout s': x.rolloutSeconds,
    'ready RSS': x.readyRssMiB,
    'peak RSS': Math.max(x.rollout.peakRssMiB, x.steady?.peakRssMiB ?? 0),
    'steady RSS': x.steady?.meanRssMiB ?? '-',
    'pass p50/p99 s': `${x.passesRollout.p50Seconds}/${x.passesRollout.p99Seconds}`,
    'passes >1s': `${x.passesRollout.overOneSecond}/${x.passesRollout.count}`,
    'req/s/cluster rollout': x.requestsRollout.perClusterPerSecond,
    'req/s/cluster steady': x.requestsSteady?.perClusterPerSecond ?? '-',
    'object KiB': Math.round(x.objectBytes / 102.4) / 10,
    'CPU % rollout/steady': `${x.rollout.cpuPercent}/${x.steady?.cpuPercent ?? '-'}`,
  }));
  const cols = Object.keys(rows[0] ?? {});
  const w = cols.map((c) => Math.max(c.length, ...rows.map((row) => String(row[c as keyof typeof row]).length)));
  const line = (vals: string[]) => '  ' + vals.map((v, i) => v.padEnd(w[i]!)).join('  ');
  console.log(`\n=== bench:fleet (shipped limit ${r.shippedLimitMiB} MiB) ===`);
  console.log([line(cols), ...rows.map((row) => line(cols.map((c) => String(row[c as keyof typeof row]))))].join('\n'));
  for (const x of r.runs) {
    console.log(`  ${x.clusters}: node flags ${x.nodeFlags}`);
    if (x.error) console.log(`  ${x.clusters}: ${x.error}`);
    if (x.memoryAtEnd) console.log(`  ${x.clusters}: memory at the rollout's end ${JSON.stringify(x.memoryAtEnd)}`);
    if (Object.keys(x.unknownPaths).length) console.log(`  ${x.clusters}: unknown paths ${JSON.stringify(x.unknownPaths)}`);
    console.log(
      `  ${x.clusters}: requests/s by verb, rollout ${JSON.stringify(x.requestsRollout.byVerbPerSecond)}, steady ${JSON.stringify(x.requestsSteady?.byVerbPerSecond ?? {})}`,
    );
  }
}

/** The memory limit of config/manager/manager.yaml, MiB. */
function shippedLimitMiB(): number {
  const text = readFileSync(join(REPO_ROOT, 'config', 'manager', 'manager.yaml'), 'utf8');
  const m = /limits:\s*\{[^}]*memory:\s*(\d+)Mi/.exec(text);
  if (!m) throw new Error('config/manager/manager.yaml: no memory limit in Mi found');
  return Number(m[1]);
}

async function main(): Promise<void> {
  const results: FleetResults = {
    environment: benchEnvironment(new Date()),
    productionNodeFlags: productionNodeFlags().join(' '),
    shippedLimitMiB: shippedLimitMiB(),
    settings: {
      steadySeconds: STEADY,
      maxConcurrentClusters: CONCURRENCY,
      readyDelayMs: READY_DELAY_MS,
      stages: STAGES.map(
        (s) =>
          `${s.name}: ${'clusters' in s ? `${s.clusters} cluster` : `${s.percent} %`}, nodes ${s.nodeSteps.join('/')} %, ${s.maxConcurrentClusters} at a time`,
      ).join('; '),
    },
    runs: [],
  };
  let fleet: Fleet | undefined;
  if (!process.env[FLEET_INFO_ENV]) {
    log('starting the management cluster');
    fleet = await startFleet({ clusters: [{ name: 'mgmt', nodes: 1 }], extraUsers: DEFAULT_E2E_EXTRA_USERS.map((u) => ({ ...u })) });
    process.env[FLEET_INFO_ENV] = fleet.infoFile;
  }
  try {
    await prepareFleet([]);
    for (const n of SIZES) results.runs.push(await runSize(n));
  } finally {
    await fleet?.stop();
  }
  results.environment.loadAverageEnd = loadavg()[0]!;
  printTable(results);
  if (process.env.TRO_BENCH_NO_WRITE !== '1') {
    // TRO_BENCH_FLEET_APPEND=1: add these runs to the committed ones (e.g. a second series with other node flags).
    // The environment stays the first invocation's (its date and starting load), with the load at this end.
    if (process.env.TRO_BENCH_FLEET_APPEND === '1') {
      const prev = readFleetResults();
      results.runs = [...prev.runs, ...results.runs];
      const note = [prev.environment.note, `Runs with other node flags appended at ${results.environment.date}.`].filter(Boolean).join(' ');
      results.environment = { ...prev.environment, loadAverageEnd: results.environment.loadAverageEnd, note };
    }
    writeFleetResults(results);
    console.log('\nwrote e2e/bench/results/fleet.json (npm run bench:docs regenerates docs/benchmarks.md from it)');
  }
}

await main();
