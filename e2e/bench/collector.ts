// `npm run bench:collector`: what the collector costs the API server, and what one agent costs its node.
//
//   1. On its own kwok cluster (200 nodes, 5 pause pods per node), the frugal (metadata Kubelet, plus the
//      one cluster watcher) and the naive collector, each on 50, 100 and 200 nodes, run by the e2e node
//      runtime (a real agent per Running collector pod). Per step, over a window, AT THE API SERVER:
//      requests/s and response bytes/s (deltas of apiserver_request_total and apiserver_response_sizes_sum,
//      all clients, and minus an idle window without agents), the p99 of non-WATCH requests, and the
//      agents' own requests/s from the API server's audit log (their user only). Then the frugal/naive
//      ratios.
//   2. One node-mode agent in its own process, the collector compiled as for its image (tsc with
//      collector/tsconfig.build.json) and started through its container entry point: RSS and CPU from
//      /proc, idle (interval 3600 s), at a 10 s interval, and held by a stop file.
//
// Env: TRO_BENCH_NODES (default "50,100,200"), TRO_BENCH_WINDOW_SECONDS (default 60),
// TRO_BENCH_PODS_PER_NODE (default 5), TRO_BENCH_AGENT_SECONDS (default 45). Frugal windows are half as long.
// TRO_BENCH_ONLY=agent runs part 2 alone on a 1-node cluster; TRO_BENCH_AGENT_NODE_FLAGS replaces the node
// flags of the image's ENTRYPOINT for the single agent (e.g. "" to compare).
// The figures depend on the machine and on whatever else runs on it: the load average is printed.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { KubernetesObjectApi, type KubeConfig } from '@kubernetes/client-node';
import { DEFAULT_CONFIG, type CollectorConfigInput } from '#collector/config.js';
import type { TelemetryRollout } from '../../operator/src/api/types.generated.js';
import { revisionRefs } from '../../operator/src/rollout/desired.js';
import { revisionOf } from '../../operator/src/rollout/revision.js';
import { startFleet, type ClusterHandle, type Fleet } from '../controlplane/fleet.js';
import { startNodeRuntime, type AgentInfo, type NodeRuntime } from '../noderuntime/index.js';
import { AGENT_USER, agentFootprint, agentNodeFlags, buildCollector, say, sleep, stopChild } from './collector-agent.js';
import {
  AuditReader,
  apiWindow,
  applyCollector,
  arrivals,
  collectorRollout,
  enableAuditLog,
  isClusterWideListOrWatch,
  labelNodes,
  nodeNames,
  scrapeApiServer,
  total,
  type ApiRow,
  type ApiWindow,
} from '../noderuntime/testing.js';
import { textTable } from './table.js';

const COUNTS = (process.env.TRO_BENCH_NODES ?? '50,100,200')
  .split(',')
  .map(Number)
  .filter((n) => n > 0);
const MAX_NODES = Math.max(...COUNTS);
const WINDOW_MS = Number(process.env.TRO_BENCH_WINDOW_SECONDS ?? 60) * 1000;
const PODS_PER_NODE = Number(process.env.TRO_BENCH_PODS_PER_NODE ?? 5);
const NONE = 'none';

const kib = (b: number) => (b / 1024).toFixed(1);
const r1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');

const table = textTable;

/** Rows of the paths agents use: cluster-scope LIST of pods/services/endpoints and GET of a Node. */
const agentPath = (r: ApiRow) =>
  (r.verb === 'LIST' && r.scope === 'cluster' && ['pods', 'services', 'endpoints'].includes(r.resource)) || (r.verb === 'GET' && r.resource === 'nodes');

interface Step {
  mode: 'frugal' | 'naive';
  nodes: number;
  w: ApiWindow;
  agentRequests: number;
  agentWide: number;
}

/**
 * Waits until `pred` holds; after `timeoutMs` goes on anyway (returns false) when `soft`: a saturated
 * cluster (200 naive agents) may never let every agent finish its first lists, and that state is the one
 * to measure.
 */
async function waitAgents(rt: NodeRuntime, what: string, pred: (a: AgentInfo[]) => boolean, timeoutMs = 300_000, soft = false): Promise<boolean> {
  const t0 = Date.now();
  for (;;) {
    // A saturated worker may answer late (the runtime gives up after 60 s): that is "not yet".
    const agents = await rt.agents().catch((err: unknown) => {
      say(`agents(): ${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    });
    if (agents && pred(agents)) return true;
    if (Date.now() - t0 > timeoutMs) {
      if (!soft) throw new Error(`timed out waiting for ${what}`);
      say(`not all there after ${timeoutMs / 1000} s: ${what}; measuring anyway`);
      return false;
    }
    await sleep(2000);
  }
}

async function deleteRevision(c: ClusterHandle, rollout: TelemetryRollout, revision: string): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(c.kubeConfig());
  for (const ref of revisionRefs(rollout.spec.collector.namespace ?? 'telemetry-system', revision)) {
    await api.delete({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } }).catch(() => undefined);
  }
}

/**
 * TRO_BENCH_ONLY=agent: part 2 alone, on a 1-node cluster (a few minutes instead of the whole bench),
 * for iterating on the agent's footprint.
 */
async function agentOnly(): Promise<void> {
  await withBenchFleet(1, false, async (b) => {
    const footprint = await agentFootprint({
      buildDir: await b.built,
      c: b.c,
      admin: b.admin,
      node: b.nodes[0] ?? '',
      tmp: b.tmp,
      children: b.children,
      setRuntime: b.setRuntime,
    });
    console.log(
      `\nOne node-mode agent in its own process (compiled as in the image, ${['node', ...agentNodeFlags()].join(' ')}, real API server, kubelet /pods from the runtime; goal ≤ 64 MiB RSS, ≤ 2 % of a core; load average ${loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}):\n${table(footprint)}`,
    );
  });
}

/** What one bench run holds; {@link withBenchFleet} releases all of it, whatever happens. */
interface BenchRun {
  fleet: Fleet;
  c: ClusterHandle;
  admin: KubeConfig;
  /** Node names, sorted. */
  nodes: string[];
  /** The audit log of the agents' user, when asked for. */
  audit: AuditReader | undefined;
  /** Directory of the fake node roots. */
  tmp: string;
  /** The compiled collector, built while the fleet starts. */
  built: Promise<string>;
  /** Agent processes to stop at the end. */
  children: ChildProcess[];
  /** The node runtime to stop at the end (undefined once the caller stopped it). */
  setRuntime: (r: NodeRuntime | undefined) => void;
}

/**
 * Builds the collector while a one-cluster fleet (`nodes` kwok nodes with the pod population) starts,
 * runs `body`, and then stops agents, runtime and fleet and removes every temp directory.
 */
async function withBenchFleet(nodes: number, audited: boolean, body: (b: BenchRun) => Promise<void>): Promise<void> {
  let fleet: Fleet | undefined;
  let rt: NodeRuntime | undefined;
  let buildDir: string | undefined;
  const tmp = mkdtempSync(path.join(tmpdir(), 'tro-bench-nodes-'));
  const children: ChildProcess[] = [];
  try {
    const built = buildCollector().then((d) => (buildDir = d));
    built.catch(() => undefined);
    fleet = await startFleet({
      clusters: [{ name: 'bench', nodes, podsPerNode: PODS_PER_NODE }],
      extraUsers: [{ name: AGENT_USER, groups: ['system:masters'] }],
    });
    const c = fleet.cluster('bench');
    const admin = c.kubeConfig();
    const audit = audited ? new AuditReader(await enableAuditLog(fleet, 'bench', [AGENT_USER])) : undefined;
    await body({ fleet, c, admin, nodes: await nodeNames(admin), audit, tmp, built, children, setRuntime: (r) => (rt = r) });
  } finally {
    for (const ch of children) await stopChild(ch).catch(() => undefined);
    await rt?.stop().catch(() => undefined);
    await fleet?.stop().catch((err: unknown) => say(`fleet stop: ${String(err)}`));
    rmSync(tmp, { recursive: true, force: true });
    if (buildDir) rmSync(buildDir, { recursive: true, force: true });
  }
}

// ---- main -------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const t0 = Date.now();
  await withBenchFleet(MAX_NODES, true, async ({ c, admin, nodes, audit: auditLog, tmp, built, children, setRuntime }) => {
    const audit = auditLog as AuditReader;
    await labelNodes(admin, nodes, NONE);
    const runtime = await startNodeRuntime({ kubeConfig: c.kubeConfig(AGENT_USER), runtimeKubeConfig: admin, rootDir: tmp, workers: 2 });
    setRuntime(runtime);

    const measure = async (windowMs = WINDOW_MS): Promise<{ w: ApiWindow; agentRequests: number; agentWide: number }> => {
      await audit.read();
      const s0 = await scrapeApiServer(c);
      await sleep(windowMs);
      const s1 = await scrapeApiServer(c);
      const ev = arrivals(await audit.read()).filter(
        (e) =>
          e.userAgent.startsWith('telemetry-collector/') && Date.parse(e.requestReceivedTimestamp) >= s0.at && Date.parse(e.requestReceivedTimestamp) <= s1.at,
      );
      return { w: apiWindow(s0, s1), agentRequests: ev.length, agentWide: ev.filter(isClusterWideListOrWatch).length };
    };

    say(`idle window (no agents, ${MAX_NODES} nodes, ${MAX_NODES * PODS_PER_NODE} population pods)`);
    const idle = await measure();
    const steps: Step[] = [];
    const modes: Array<{ mode: Step['mode']; config: CollectorConfigInput; minRequests: number }> = [
      { mode: 'frugal', config: {}, minRequests: 1 },
      // The incident had no watcher; the naive agents list on their own.
      { mode: 'naive', config: { metadata: { mode: 'Naive' }, clusterWatcher: { enabled: false } }, minRequests: 6 },
    ];
    const workerRss: Array<{ mode: string; rss: number[] }> = [];
    const unsettled: string[] = [];
    for (const m of modes) {
      const rollout = collectorRollout(`bench-${m.mode}`, m.config);
      const rev = revisionOf(rollout.spec.collector);
      await applyCollector(admin, rollout, rev, false);
      let labelled = 0;
      for (const count of COUNTS) {
        await labelNodes(admin, nodes.slice(labelled, count), rev);
        labelled = count;
        const settled = await waitAgents(
          runtime,
          `${count} ${m.mode} agents past their first requests`,
          (a) =>
            a.filter((x) => x.mode === 'node' && x.revision === rev && x.apiRequests >= m.minRequests).length === count &&
            a.filter((x) => x.mode === 'node').length === count,
          240_000,
          true,
        );
        if (!settled) unsettled.push(`${m.mode} ${count}`);
        await sleep(5000);
        say(`${m.mode} on ${count} nodes: window`);
        // Frugal agents send steadily (lease renewals, a Node GET per 300 s each): half a window is enough.
        // Naive ones relist every 30 s: a whole window spans two relists of every agent.
        const r = await measure(m.mode === 'frugal' ? WINDOW_MS / 2 : WINDOW_MS);
        steps.push({ mode: m.mode, nodes: count, ...r });
        if (count === MAX_NODES) workerRss.push({ mode: m.mode, rss: await runtime.workerRss().catch(() => []) });
      }
      await labelNodes(admin, nodes, NONE);
      await deleteRevision(c, rollout, rev);
      await waitAgents(runtime, `${m.mode} agents gone`, (a) => a.length === 0);
    }
    const finalAgents = await runtime.agents();
    await runtime.stop();
    setRuntime(undefined);

    // One agent in its own process.
    const footprint = await agentFootprint({ buildDir: await built, c, admin, node: nodes[0] ?? '', tmp, children, setRuntime });

    // ---- report ----
    const per = (n: number, w: ApiWindow) => n / w.seconds;
    const rows = steps.map((s) => {
      const all = total(s.w);
      const ap = total(s.w, agentPath);
      const idleAll = total(idle.w);
      const idleAp = total(idle.w, agentPath);
      return {
        mode: s.mode,
        nodes: s.nodes,
        'agent req/s (audit)': r1(per(s.agentRequests, s.w)),
        'agent cluster-wide LIST+WATCH/s': r1(per(s.agentWide, s.w)),
        'server req/s': r1(per(all.requests, s.w)),
        'Δ req/s vs idle': r1(per(all.requests, s.w) - per(idleAll.requests, idle.w)),
        'server KiB/s': kib(per(all.bytes, s.w)),
        'Δ KiB/s vs idle': kib(per(all.bytes, s.w) - per(idleAll.bytes, idle.w)),
        'agent-path KiB/s': kib(per(ap.bytes, s.w) - per(idleAp.bytes, idle.w)),
        'p99 ms (non-WATCH)': r1(s.w.p99Seconds * 1000),
      };
    });
    const ratios = COUNTS.map((n): Record<string, string | number> => {
      const f = steps.find((s) => s.mode === 'frugal' && s.nodes === n);
      const v = steps.find((s) => s.mode === 'naive' && s.nodes === n);
      if (!f || !v) return { nodes: n };
      const fb = per(total(f.w, agentPath).bytes, f.w) - per(total(idle.w, agentPath).bytes, idle.w);
      const vb = per(total(v.w, agentPath).bytes, v.w) - per(total(idle.w, agentPath).bytes, idle.w);
      const ratio = (a: number, b: number) => (b > 0 ? (a / b).toExponential(2) : '-');
      return {
        nodes: n,
        'agent req/s frugal/naive': ratio(per(f.agentRequests, f.w), per(v.agentRequests, v.w)),
        'agent-path bytes/s frugal/naive': ratio(Math.max(fb, 0), vb),
        'server req/s frugal/naive': ratio(per(total(f.w).requests, f.w), per(total(v.w).requests, v.w)),
        'p99 frugal/naive': ratio(f.w.p99Seconds, v.w.p99Seconds),
      };
    });
    const idleAll = total(idle.w);
    console.log(
      `\n=== bench:collector (cluster of ${MAX_NODES} kwok nodes, ${PODS_PER_NODE} pause pods per node; windows ${WINDOW_MS / 1000} s; load average ${loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}) ===`,
    );
    console.log(
      `\nIdle (no agents): ${r1(per(idleAll.requests, idle.w))} req/s, ${kib(per(idleAll.bytes, idle.w))} KiB/s, p99 ${r1(idle.w.p99Seconds * 1000)} ms (kwok heartbeats, controllers)`,
    );
    console.log(
      `\nAt the API server, per mode and number of nodes running the collector (frugal = metadata Kubelet + one cluster watcher; naive = the incident pattern, relist ${DEFAULT_CONFIG.metadata.naiveRelistSeconds} s):\n${table(rows)}`,
    );
    console.log(`\nFrugal/naive:\n${table(ratios)}`);
    console.log(
      `\nOne node-mode agent in its own process (compiled as in the image, ${['node', ...agentNodeFlags()].join(' ')}, real API server, kubelet /pods from the runtime; goal ≤ 64 MiB RSS, ≤ 2 % of a core):\n${table(footprint)}`,
    );
    if (unsettled.length) console.log(`\nNot every agent had finished its first requests when these windows started (saturated): ${unsettled.join(', ')}`);
    for (const { mode, rss } of workerRss)
      console.log(`Node runtime with ${MAX_NODES} ${mode} agents: worker RSS ${rss.map((b) => `${(b / 1048576).toFixed(0)} MiB`).join(', ')}`);
    console.log(`\nWhere the bytes went (top 6 verb/resource/scope by response bytes, KiB/s, all clients):`);
    for (const st of steps) {
      const top = [...st.w.rows]
        .sort((a, b) => b.bytes - a.bytes)
        .slice(0, 6)
        .map((r) => `${r.verb} ${r.resource || '-'} ${r.scope || '-'} ${kib(r.bytes / st.w.seconds)} (${r1(r.requests / st.w.seconds)} req/s)`);
      console.log(`  ${st.mode} ${st.nodes}: ${top.join('; ')}`);
    }
    console.log(
      `\nNote: frugal node agents GET their own Node at start and then every 300 s; a window right after they started sees only the cluster watcher's Lease renewals. Steady state adds nodes/300 GET/s: ${COUNTS.map((n) => `${n} nodes +${(n / 300).toFixed(2)}/s`).join(', ')}.`,
    );
    console.log(
      `\nColumns: "agent req/s" counts the agents' requests as the API server received them (audit log, agents' user only); "server" columns are deltas of apiserver_request_total / apiserver_response_sizes_sum over all clients; "Δ vs idle" subtracts the idle window; "agent-path KiB/s" is the response bytes of cluster-scope LIST pods/services/endpoints and GET nodes minus idle (the API server gzips large responses, so these are bytes on the wire). ${finalAgents.length} agents left at the end. Total ${Math.round((Date.now() - t0) / 1000)} s.`,
    );
  });
}

(process.env.TRO_BENCH_ONLY === 'agent' ? agentOnly() : main()).then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:collector failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
