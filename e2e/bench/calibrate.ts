// `npm run sim:calibrate`: measures the simulator's API server model on the local control plane and
// rewrites sim/model/calibration.json with what it found.
//
// One cluster (`calib`) of the local control plane grows through a few sizes (TRO_CALIBRATE_NODES,
// default 50,200,500 kwok nodes, with TRO_CALIBRATE_PODS_PER_NODE bare pause pods each, default 5: the
// model's 20 would take 10,000 pods, minutes of pod creation on two shared cores, and a LIST's cost is
// per MiB, which fewer larger steps measure as well). At every size, after a window at rest (requests/s,
// CPU and RSS of the idle cluster, the background the batches are corrected by):
//   - LIST pods and LIST nodes cluster-wide without resourceVersion (from etcd), one at a time;
//   - at the first size, GETs of one pod, one at a time;
//   - at the middle size, LIST pods from 2, 4 and 8 clients back to back (the naive agents' LISTs as
//     concurrency grows: the queueing the model predicts, and the RSS they hold);
//   - at the last size, WATCHes of pods held open.
// Each batch is measured three ways (client latency, the API server's histogram, /proc CPU of
// kube-apiserver and etcd). Then listSecondsPerMiB is fitted through the model itself, the directly
// measured parameters are taken as measured, and calibration.json gets them with their sources, the date
// and measuredPoints (every raw point, the machine's cores and its load average during the run).
//
// Env: TRO_CALIBRATE_NODES, TRO_CALIBRATE_PODS_PER_NODE, TRO_CALIBRATE_OUT (default: the checked-in
// calibration.json), TRO_CALIBRATE_FLEET_INFO=<info file> with TRO_CALIBRATE_CLUSTER=<name> to use a running
// fleet's cluster instead of starting one (its pods go to namespace tro-calibrate, removed at the end;
// nodes it adds stay). Run it under the heavy-run lock: it loads the machine for a few minutes.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { CoreV1Api } from '@kubernetes/client-node';
import { format, resolveConfig } from 'prettier';
import { DEFAULT_MODEL_PATH, loadModel, parseModel, type CalibrationFile, type Model } from '../../sim/model/calibration.js';
import { attachFleet, startFleet, type ClusterHandle, type Fleet } from '../controlplane/fleet.js';
import { waitUntil } from '../controlplane/net.js';
import { createNodes, KUBELET_VERSION } from '../controlplane/nodes.js';
import { ApiClient, background, batch, createPods, holdWatches, logSigma, quantile, type Background, type Batch } from '../support/apicost.js';
import { calibratedFile, fitParameters, predict, type BackgroundPoint, type MeasuredPoint, type Measurements } from './calibrate-fit.js';
import { textTable } from './table.js';

const SIZES = (process.env.TRO_CALIBRATE_NODES ?? '50,200,500')
  .split(',')
  .map(Number)
  .filter((n) => n > 0)
  .sort((a, b) => a - b);
const PODS_PER_NODE = Number(process.env.TRO_CALIBRATE_PODS_PER_NODE ?? 5);
const OUT = process.env.TRO_CALIBRATE_OUT ?? DEFAULT_MODEL_PATH;
const NAMESPACE = 'tro-calibrate';
const MIB = 1048576;

const t0 = Date.now();
const say = (s: string) => process.stderr.write(`[calibrate +${((Date.now() - t0) / 1000).toFixed(0)}s] ${s}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const table = textTable;

function point(verb: MeasuredPoint['verb'], resource: MeasuredPoint['resource'], nodes: number, pods: number, concurrency: number, b: Batch): MeasuredPoint {
  const objects = resource === 'pods' ? (verb === 'GET' ? 1 : pods) : verb === 'GET' ? 1 : nodes;
  const ms = (x: number) => Number(x.toPrecision(4));
  return {
    verb,
    resource,
    nodes,
    pods,
    objects,
    concurrency,
    requests: b.latencies.length,
    bytes: Math.round(b.bytes),
    wireBytes: Math.round(b.wireBytes),
    p50: ms(quantile(b.latencies, 0.5)),
    p99: ms(quantile(b.latencies, 0.99)),
    logSigma: ms(logSigma(b.latencies)),
    serverMean: ms(b.serverMeanSeconds),
    apiserverCpu: ms(b.apiserverCpuPerRequest),
    etcdCpu: ms(b.etcdCpuPerRequest),
    rssBeforeMiB: Math.round(b.rssBefore / MIB),
    rssPeakMiB: Math.round(b.rssPeak / MIB),
  };
}

async function nodeNames(c: ClusterHandle): Promise<string[]> {
  const list = await c.kubeConfig().makeApiClient(CoreV1Api).listNode();
  return list.items.map((n) => n.metadata?.name ?? '').filter((n) => n !== '');
}

async function ensureNamespace(c: ClusterHandle): Promise<void> {
  const core = c.kubeConfig().makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NAMESPACE } } }).catch((err: unknown) => {
    if ((err as { code?: number }).code !== 409) throw err;
  });
  await waitUntil(
    `ServiceAccount ${NAMESPACE}/default`,
    async () => {
      await core.readNamespacedServiceAccount({ name: 'default', namespace: NAMESPACE });
      return true;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
}

async function measure(): Promise<Measurements> {
  const loadAverageStart = loadavg();
  const cores = cpus().length;
  let fleet: Fleet | undefined;
  let owned = false;
  let api: ApiClient | undefined;
  let c: ClusterHandle | undefined;
  try {
    if (process.env.TRO_CALIBRATE_FLEET_INFO) {
      fleet = attachFleet(process.env.TRO_CALIBRATE_FLEET_INFO);
      c = fleet.cluster(process.env.TRO_CALIBRATE_CLUSTER ?? fleet.clusters[0]?.name ?? '');
      say(`using cluster ${c.name} of ${process.env.TRO_CALIBRATE_FLEET_INFO}`);
    } else {
      say(`starting a one-cluster fleet (${SIZES[0]} nodes)`);
      fleet = await startFleet({ clusters: [{ name: 'calib', nodes: SIZES[0] ?? 50 }], log: (l) => say(l) });
      owned = true;
      c = fleet.cluster('calib');
    }
    const index = fleet.clusters.indexOf(c);
    const kc = c.kubeConfig();
    await ensureNamespace(c);
    api = new ApiClient(c);
    const points: MeasuredPoint[] = [];
    const backgrounds: BackgroundPoint[] = [];
    let watch: Measurements['watch'];
    let pods = 0;
    const middle = SIZES[Math.floor((SIZES.length - 1) / 2)];
    for (const size of SIZES) {
      say(`${size} nodes: creating nodes and ${size * PODS_PER_NODE} pods`);
      await createNodes(kc, c.name, index, size, 300_000);
      const names = await nodeNames(c);
      const running = await createPods(kc, NAMESPACE, names, pods, size * PODS_PER_NODE, { parallel: 8, timeoutMs: 180_000 });
      pods = size * PODS_PER_NODE;
      if (running < pods) say(`${size} nodes: only ${running} of ${pods} pods Running after 180 s; measuring anyway`);
      const total = pods;
      await sleep(3000);
      const bg: Background = await background(c, 8000);
      const nodesNow = names.length;
      backgrounds.push({
        nodes: nodesNow,
        pods: total,
        requestsPerSecond: Number(bg.requestsPerSecond.toPrecision(4)),
        apiserverCpuPerSecond: Number(bg.apiserverCpu.toPrecision(3)),
        etcdCpuPerSecond: Number(bg.etcdCpu.toPrecision(3)),
        rssMiB: Math.round(bg.rss / MIB),
        latencyBuckets: bg.latencyBuckets.filter(([le]) => Number.isFinite(le)).map(([le, n]) => [le, Math.round(n)]),
        observations: Math.round(bg.latencyBuckets.find(([le]) => !Number.isFinite(le))?.[1] ?? 0),
      });
      say(
        `${size} nodes: at rest ${bg.requestsPerSecond.toFixed(1)} req/s, kube-apiserver ${bg.apiserverCpu.toFixed(2)} cores, RSS ${(bg.rss / MIB).toFixed(0)} MiB`,
      );
      if (size === SIZES[0]) {
        const path = `/api/v1/namespaces/${NAMESPACE}/pods/p-00000`;
        for (let i = 0; i < 5; i++) await api.get(path); // warm the connection and the path
        const b = await batch(api, { path, verb: 'GET', resource: 'pods', concurrency: 1, perClient: 60, bg });
        points.push(point('GET', 'pods', nodesNow, total, 1, b));
      }
      for (const [resource, path] of [
        ['pods', '/api/v1/pods'],
        ['nodes', '/api/v1/nodes'],
      ] as const) {
        await api.get(path); // the first LIST of a size warms etcd's and the server's caches
        const b = await batch(api, { path, verb: 'LIST', resource, concurrency: 1, perClient: 5, bg });
        points.push(point('LIST', resource, nodesNow, total, 1, b));
        say(`${size} nodes: LIST ${resource} ${(b.bytes / MIB).toFixed(2)} MiB, p50 ${(quantile(b.latencies, 0.5) * 1000).toFixed(0)} ms one at a time`);
      }
      if (size === middle) {
        for (const concurrency of [2, 4, 8]) {
          const b = await batch(api, { path: '/api/v1/pods', verb: 'LIST', resource: 'pods', concurrency, perClient: 2, bg });
          points.push(point('LIST', 'pods', nodesNow, total, concurrency, b));
          say(`${size} nodes: LIST pods from ${concurrency} clients, p50 ${(quantile(b.latencies, 0.5) * 1000).toFixed(0)} ms`);
        }
      }
      if (size === SIZES[SIZES.length - 1]) {
        const w = await holdWatches(api, '/api/v1/pods', 50, 10_000, bg);
        watch = {
          pods: total,
          watches: 50,
          seconds: 10,
          establishP50: Number(w.establishP50.toPrecision(3)),
          apiserverCpuPerWatchSecond: Number(w.apiserverCpuPerWatchSecond.toPrecision(3)),
        };
      }
    }

    const ms: Measurements = {
      date: new Date().toISOString().slice(0, 10),
      cores,
      loadAverageStart: loadAverageStart.map((x) => Number(x.toFixed(2))),
      loadAverageEnd: loadavg().map((x) => Number(x.toFixed(2))),
      durationSeconds: Math.round((Date.now() - t0) / 1000),
      controlPlane: `kube-apiserver ${KUBELET_VERSION}, kwok nodes, ${PODS_PER_NODE} bare pause pods per node`,
      background: backgrounds,
      points,
      ...(watch ? { watch } : {}),
    };
    return ms;
  } finally {
    api?.close();
    if (fleet) {
      if (owned) await fleet.stop().catch((err: unknown) => say(`fleet stop: ${String(err)}`));
      else
        await c
          ?.kubeConfig()
          .makeApiClient(CoreV1Api)
          .deleteNamespace({ name: NAMESPACE })
          .catch(() => undefined);
    }
  }
}

/** The source string of every apiserver entry of a calibration file. */
function sourcesOf(file: CalibrationFile): Record<string, string> {
  return Object.fromEntries(Object.entries(file.apiserver).map(([k, e]) => [k, e.source]));
}

/** Fits the parameters to `ms`, rewrites the calibration file and prints the table. */
async function write(before: Model, ms: Measurements): Promise<void> {
  const cores = ms.cores;
  const points = ms.points;
  const backgrounds = ms.background;
  const watch = ms.watch;
  const file = JSON.parse(readFileSync(OUT, 'utf8')) as CalibrationFile & Record<string, unknown>;
  const fitted = fitParameters(before, ms, sourcesOf(file));
  const next = calibratedFile(file, fitted, ms);
  const after: Model = parseModel(next as unknown as CalibrationFile);
  const tmp = `${OUT}.tmp`;
  // Formatted as the repository's prettier check wants it, so a run leaves a clean diff.
  writeFileSync(tmp, await format(JSON.stringify(next), { ...(await resolveConfig(OUT)), filepath: OUT }));
  renameSync(tmp, OUT);

  const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  console.log(
    `\n=== sim:calibrate (${cores} cores, load average ${ms.loadAverageStart.join(' ')} at the start, ${ms.loadAverageEnd.join(' ')} at the end; ${ms.durationSeconds} s) ===\n`,
  );
  console.log(
    table(
      points.map((p) => ({
        verb: p.verb,
        resource: p.resource,
        nodes: p.nodes,
        pods: p.pods,
        clients: p.concurrency,
        n: p.requests,
        MiB: f(p.bytes / MIB, 2),
        'wire KiB': f(p.wireBytes / 1024),
        'p50 ms': f(p.p50 * 1000),
        'p99 ms': f(p.p99 * 1000),
        'server mean ms': f(p.serverMean * 1000),
        'apiserver CPU ms': f(p.apiserverCpu * 1000),
        'etcd CPU ms': f(p.etcdCpu * 1000),
        'RSS MiB before/peak': `${p.rssBeforeMiB}/${p.rssPeakMiB}`,
        'model before ms': f(predict(before, p, cores) * 1000),
        'model after ms': f(predict(after, p, cores) * 1000),
      })),
    ),
  );
  console.log(
    `\nAt rest:\n${table(
      backgrounds.map(({ latencyBuckets, ...b }) => ({
        ...b,
        'share ≤5/25/50 ms': [0.005, 0.025, 0.05].map((le) => f((latencyBuckets.find(([x]) => x === le)?.[1] ?? 0) / Math.max(1, b.observations), 2)).join('/'),
      })),
    )}`,
  );
  if (watch) console.log(`\nWATCH: ${JSON.stringify(watch)}`);
  console.log(
    `\nParameters (apiserver):\n${table(
      Object.entries(fitted).map(([k, v]) => ({ parameter: k, before: String(before.apiserver[k as keyof Model['apiserver']]), after: String(v.value) })),
    )}`,
  );
  console.log(`\nWrote ${OUT}.`);
}

async function main(): Promise<void> {
  const before = loadModel(OUT);
  if (process.argv.includes('--refit')) {
    // The points of the last run, fitted again (after a change to the model or to the fit).
    const file = JSON.parse(readFileSync(OUT, 'utf8')) as { measuredPoints?: Measurements };
    if (!file.measuredPoints) throw new Error(`${OUT}: no measuredPoints to refit`);
    await write(before, file.measuredPoints);
    return;
  }
  await write(before, await measure());
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`sim:calibrate failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
