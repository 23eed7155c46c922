// Incident-grade rollback and break-glass on the real control plane (issue 13, "Tests (real parts)"):
// compound faults in the order an outage brings them, with the REAL operator process (dist/, least
// privilege) and real agents on kwok nodes (the node runtime), on the run's shared fleet:
//   (1) a gate trips, the rollback is under way (slowly), the target's API server freezes: every agent
//       of the bad revision stops while the freeze lasts, the cluster-mode watcher included; after the
//       thaw the rollback completes, our stop files are gone and the stable collector runs;
//   (2) a kubeconfig Secret's token is replaced by one with no rights mid-rollout: CredentialsInvalid
//       names the cluster and the Secret, no break-glass, no rollback, the other cluster goes on; mended,
//       it resumes;
//   (3) some nodes cannot be written by the transport: status counts them, the break-glass keeps
//       retrying, the cluster is not reported recovered while a node is unconfirmed; fixed, it is;
//   (4) scenario 1 with the operator SIGKILLed after the gate trip, after the stop files and during the
//       recovery: no stop is issued twice, none is forgotten;
//   (5) two clusters frozen during a bake, one node of the first that the transport cannot write, deleted
//       after the thaw: it leaves the inventory (InventoryChanged), that cluster recovers without it; the
//       other cluster, behind it in the rollback order, recovers while it waits;
//   (6) a person stops every revision by hand during an Auto break-glass: the recovery removes only the
//       operator's stop files, the person's keeps every agent (the stable one too) stopped until cleared.
// Each scenario has its own rollout, its own target namespaces and its own cleanup, and runs alone with
// `-t`. Times are printed as `[report]` lines, never asserted (two shared cores).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { TelemetryRollout } from '../operator/src/api/types.generated.js';
import { nodesForStep } from '../operator/src/rollout/plan.js';
import type { ClusterHandle } from './controlplane/fleet.js';
import { createNamespace, deleteNamespace, dumpOnFailure, eventually, kubectl, managementCluster, targetClusters } from './controlplane/testing.js';
import type { NodeRuntime } from './noderuntime/api.js';
import { startNodeRuntime } from './noderuntime/runtime.js';
import { startErrorStorm, type ErrorStorm } from './support/errorstorm.js';
import type { RolloutWatcher } from './support/gatewatch.js';
import {
  applyRollout,
  clusterOf,
  deleteRollout,
  IncidentTarget,
  incidentRollout,
  patchRolloutSpec,
  report,
  sleep,
  type IncidentRolloutOptions,
} from './support/incident.js';
import { exec, WRAPPER } from './support/cli.js';
import { OPERATOR_NAMESPACE, prepareFleet, startOperator, type OperatorProcess } from './support/operator.js';

const UNREACHABLE_AFTER = 10;
/** How long scenario 1 keeps the API server frozen: the break-glass delay and a minute more. */
const HOLD_MS = (UNREACHABLE_AFTER + 60) * 1000;
/** Relabels per second while a rollback must still be under way when the API server freezes. */
const SLOW_QPS = 0.5;

const work = mkdtempSync(join(tmpdir(), 'tro-incident-'));
/** Node roots of the single target (the node runtime's and the local transport's). */
const nodesDir = join(work, 'nodes');
/** Node roots of the credentials scenario's two targets (no agents run there: only stop files would). */
const pairDir = join(work, 'pair-nodes');

/** The fleet's targets' names: the single target is the last, the pair the first two. */
const targetNames = targetClusters().map((c) => c.name);
const singleName = targetNames[targetNames.length - 1] ?? '';

let runtime: NodeRuntime | undefined;
/** The target of scenarios 1, 3 and 4, with real agents. */
let single: IncidentTarget;
/** The two targets of scenario 2. */
let pair: [IncidentTarget, IncidentTarget];
/**
 * Scenario 5's second cluster (the fleet's first target), its nodes' roots beside the single target's:
 * one rollout has one transport root, and node names differ between clusters.
 */
let beside: IncidentTarget;
let op: OperatorProcess | undefined;
/** Every operator process of the current scenario (restarts included), for the failure log. */
let ops: OperatorProcess[] = [];
const storms: ErrorStorm[] = [];
const watchers: RolloutWatcher[] = [];
const frozen = new Set<ClusterHandle>();
const namespaces: Array<{ cluster: ClusterHandle; name: string }> = [];
/** What a scenario changed in the fleet itself (a deleted node), undone before the targets are reset. */
const restores: Array<() => Promise<void>> = [];

async function startOp(identity: string): Promise<OperatorProcess> {
  op = await startOperator({ identity });
  ops.push(op);
  return op;
}

function freeze(t: IncidentTarget): number {
  t.cluster.pauseApiServer();
  frozen.add(t.cluster);
  return Date.now();
}

function thaw(t: IncidentTarget): void {
  t.cluster.resumeApiServer();
  frozen.delete(t.cluster);
}

async function ownNamespace(t: IncidentTarget, prefix: string): Promise<string> {
  const name = await createNamespace(t.cluster, prefix);
  namespaces.push({ cluster: t.cluster, name });
  return name;
}

/** Sum of the operator's `tro_reconcile_total` (every rollout, every result). */
async function reconciles(o: OperatorProcess): Promise<number> {
  const page = await o.metrics();
  return [...page.matchAll(/^tro_reconcile_total(?:\{[^}]*\})? (\d+(?:\.\d+)?)/gm)].reduce((s, m) => s + Number(m[1]), 0);
}

/**
 * A scenario's body with its cleanup: whatever happened, the API servers are thawed, the storm and the
 * watchers stopped, the operator stopped, the rollout deleted and the targets reset, so the next
 * scenario (or a run with `-t`) starts from the fleet as it was. On failure the operator's log is printed.
 */
function scenario(name: string, targets: () => IncidentTarget[], dumpClusters: string[], body: () => Promise<void>): () => Promise<void> {
  return dumpOnFailure(
    async () => {
      const t0 = Date.now();
      let outcome = 'failed';
      try {
        await body();
        outcome = 'passed';
      } catch (err) {
        for (const o of ops) process.stderr.write(`\n===== operator ${o.identity} (${o.logFile}), last lines\n${o.tail(80)}\n`);
        throw err;
      } finally {
        const body = Date.now();
        for (const c of frozen) c.resumeApiServer();
        frozen.clear();
        for (const s of storms.splice(0)) await s.stop().catch(() => undefined);
        for (const w of watchers.splice(0)) await w.stop();
        await op?.kill('SIGTERM');
        op = undefined;
        ops = [];
        await deleteRollout(name);
        for (const r of restores.splice(0)) await r().catch((err: unknown) => process.stderr.write(`incident cleanup: ${String(err)}\n`));
        for (const t of targets()) await t.reset();
        for (const ns of namespaces.splice(0)) await deleteNamespace(ns.cluster, ns.name).catch(() => undefined);
        report(`${name}: ${outcome} in ${((body - t0) / 1000).toFixed(1)} s (+ ${((Date.now() - body) / 1000).toFixed(1)} s cleanup)`);
      }
    },
    // Only the clusters of the scenario (the others' events say nothing about it); names are known before
    // the targets are (the fleet is attached when the file loads).
    { clusters: [managementCluster().name, ...dumpClusters] },
  );
}

/** What {@link stableThenBadTripped} leaves: a rollout rolling back the bad revision, slowly. */
interface Tripped {
  w: RolloutWatcher;
  nodes: string[];
  /** The node the cluster-mode watchers run on; never labelled for the bad revision. */
  pin: string;
  stable: string;
  bad: string;
  /** The nodes the bad revision reached (its first step). */
  onBad: string[];
  /** The bad revision's strategy (to change its pace). */
  strategy: Record<string, unknown>;
}

/**
 * Scenario 1 up to the gate trip: a stable revision on every node of the single target, then the bad
 * one (the Naive collector) on half of them with its watcher pinned to the last node, relabelling slowed
 * down, and an error storm that trips the error-ratio gate: resolves once the rollout is RollingBack.
 * `afterTrip` runs then (scenario 4 kills the operator there); this resolves once the rollback has
 * relabelled a first node back, i.e. it is under way.
 */
async function stableThenBadTripped(name: string, identity: string, afterTrip: () => Promise<void> = async () => undefined): Promise<Tripped> {
  const t = single;
  const nodes = await t.nodeNames();
  const pin = nodes[nodes.length - 1] as string;
  // The watcher (a Deployment pod, no tolerations) can only go to the pinned node, which the bad
  // revision's first step never reaches (nodes are labelled in name order): only a stop that follows
  // the watcher's pod, not the revision label, stops it.
  await t.pinUntoleratedPodsTo(pin);
  const stormNs = await ownNamespace(t, `${name}-storm`);
  await startOp(identity);
  const base: Pick<IncidentRolloutOptions, 'name' | 'targets' | 'rootDir' | 'unreachableAfterSeconds'> = {
    name,
    targets: [t.name],
    rootDir: nodesDir,
    unreachableAfterSeconds: UNREACHABLE_AFTER,
  };
  const w = await applyRollout(incidentRollout({ ...base, tag: `${name}-stable`, nodeSteps: [100], bakeSeconds: 0 }));
  watchers.push(w);
  const ok = await w.waitFor('the stable revision on every node', (r) => r.status?.phase === 'Succeeded', 240_000);
  const stable = ok.status?.revision as string;

  const badSpec = incidentRollout({ ...base, tag: `${name}-bad`, naive: true, nodeSteps: [50, 100], bakeSeconds: 600 }).spec as Record<string, unknown>;
  await patchRolloutSpec(name, { collector: badSpec.collector, strategy: badSpec.strategy });
  const baking = await w.waitFor(
    'the bad revision baking its first step',
    (r) => r.status?.revision !== stable && r.status?.phase === 'Progressing' && clusterOf(r, t.name)?.phase === 'Baking',
    240_000,
  );
  const bad = baking.status?.revision as string;
  const onBad = await t.labelled(bad);
  expect(onBad).toHaveLength(nodesForStep(50, nodes.length));
  expect(onBad).not.toContain(pin);
  await eventually(
    `${onBad.length} node agents of the bad revision running, and its watcher on ${pin}`,
    async () => {
      const a = await t.agentsOf(bad);
      const watcher = a.find((x) => x.mode === 'cluster');
      return a.filter((x) => x.mode === 'node' && !x.stopped).length === onBad.length && watcher?.node === pin && !watcher.stopped;
    },
    180_000,
  );

  const strategy = badSpec.strategy as Record<string, unknown>;
  await patchRolloutSpec(name, { strategy: { ...strategy, nodeRelabelQPS: SLOW_QPS } });
  const storm = await startErrorStorm(t.cluster, stormNs);
  storms.push(storm);
  let halted: TelemetryRollout;
  try {
    halted = await w.waitFor('the gate trips: RollingBack', (r) => r.status?.phase === 'RollingBack', 120_000);
  } finally {
    const s = await storm.stop();
    report(`${name}: error storm ${s.requests} creates, ${s.serverErrors} answered 5xx, ${s.other} other`);
  }
  expect(halted.status?.reason).toBe('GateFailed');
  expect(clusterOf(halted, t.name)?.lastGate?.failed).toContain('apiServerErrorRatio');
  await afterTrip();
  await eventually('the rollback under way: a first node relabelled back', async () => (await t.labelled(bad)).length < onBad.length, 120_000);
  return { w, nodes, pin, stable, bad, onBad, strategy };
}

/** After a thaw: the rollback completed, no stop file left, only the stable collector runs. */
async function expectRecovered(name: string, k: Tripped): Promise<TelemetryRollout> {
  const t = single;
  const done = await k.w.waitFor('RolledBack', (r) => r.status?.phase === 'RolledBack', 240_000);
  expect(done.status?.reason).toBe('GateFailed');
  const c = clusterOf(done, t.name);
  expect(c?.phase).toBe('RolledBack');
  expect(c?.breakGlass).toMatchObject({ revision: k.bad, nodesFailed: 0, nodesTimedOut: 0 });
  expect(c?.breakGlass?.clearedAt).toBeDefined();
  // Our stop files are gone (nothing else wrote any here).
  expect([...t.stopFilesOn(k.nodes).keys()]).toEqual([]);
  expect(await t.labelled(k.bad)).toEqual([]);
  expect(await t.labelled(k.stable)).toEqual(k.nodes);
  await eventually(
    `${name}: no agent of the bad revision, the stable collector running on every node`,
    async () => {
      const bad = await t.agentsOf(k.bad);
      const stable = (await t.agentsOf(k.stable)).filter((a) => a.mode === 'node' && !a.stopped);
      return bad.length === 0 && stable.length === k.nodes.length;
    },
    120_000,
  );
  return done;
}

describe('incidents: compound faults during a rollout', () => {
  beforeAll(async () => {
    const targets = targetClusters();
    if (targets.length < 2) throw new Error('the incident scenarios need two target clusters (the default e2e fleet has three)');
    const last = targets[targets.length - 1] as ClusterHandle;
    await prepareFleet(targets);
    runtime = await startNodeRuntime({ kubeConfig: last.kubeConfig(), rootDir: nodesDir });
    single = new IncidentTarget(last, nodesDir, runtime);
    pair = [new IncidentTarget(targets[0] as ClusterHandle, pairDir), new IncidentTarget(targets[1] as ClusterHandle, pairDir)];
    beside = new IncidentTarget(targets[0] as ClusterHandle, nodesDir);
    // Whatever earlier files of the run left on these clusters.
    for (const t of [single, ...pair]) await t.reset();
  }, 300_000);

  afterAll(async () => {
    for (const c of frozen) c.resumeApiServer();
    await op?.kill('SIGTERM');
    await runtime?.stop();
    rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it(
    '(1) gate trips, rollback under way, API server frozen: every agent of the bad revision stops, the watcher included; thawed: rolled back, stop files gone, stable runs',
    scenario(
      'inc-freeze',
      () => [single],
      [singleName],
      async () => {
        const name = 'inc-freeze';
        const t = single;
        const k = await stableThenBadTripped(name, 'inc-freeze');
        const before = await t.agentsOf(k.bad);

        const frozenAt = freeze(t);
        let nodeAgentsStoppedAt: number | undefined;
        let watcherStoppedAt: number | undefined;
        /** Node agents seen running again after all had stopped (a stop that did not hold). */
        const restarted = new Set<string>();
        let atEnd: Awaited<ReturnType<IncidentTarget['agentsOf']>>;
        let during: TelemetryRollout | undefined;
        try {
          while (Date.now() < frozenAt + HOLD_MS) {
            const a = await t.agentsOf(k.bad);
            const running = a.filter((x) => x.mode === 'node' && !x.stopped);
            if (running.length === 0) nodeAgentsStoppedAt ??= Date.now();
            else if (nodeAgentsStoppedAt !== undefined) running.forEach((x) => restarted.add(x.node));
            if (a.some((x) => x.mode === 'cluster' && x.stopped)) watcherStoppedAt ??= Date.now();
            await sleep(250);
          }
          atEnd = await t.agentsOf(k.bad);
          during = await k.w.poll();
        } finally {
          thaw(t);
        }
        const secs = (at: number | undefined) => (at === undefined ? 'never' : `${((at - frozenAt) / 1000).toFixed(1)} s`);
        const nodeAgents = before.filter((a) => a.mode === 'node').length;
        report(
          `${name} (local transport, ${k.nodes.length}-node target, bad revision on ${k.onBad.length} nodes, ${nodeAgents} of its node agents left when frozen + its watcher, RollingBack at ${SLOW_QPS} relabels/s): API server frozen → every node agent stopped in ${secs(nodeAgentsStoppedAt)}, the watcher in ${secs(watcherStoppedAt)} (unreachableAfterSeconds ${UNREACHABLE_AFTER}, frozen ${HOLD_MS / 1000} s)`,
        );

        // While frozen: every node agent of the bad revision stopped and stayed stopped, by stop files that
        // name that revision, and the operator says so; the rollout went on rolling back.
        expect(atEnd.filter((a) => a.mode === 'node' && !a.stopped).map((a) => a.node)).toEqual([]);
        expect([...restarted]).toEqual([]);
        for (const a of atEnd.filter((x) => x.mode === 'node')) {
          expect(t.stopFiles(a.node).map((f) => f.content?.revision)).toContain(k.bad);
        }
        const c = clusterOf(during, t.name);
        expect(during?.status?.phase).toBe('RollingBack');
        expect(c?.reachable).toBe(false);
        expect(c?.breakGlass).toMatchObject({ revision: k.bad, nodesFailed: 0, nodesTimedOut: 0 });
        expect(c?.breakGlass?.issuedAt).toBeDefined();
        expect(c?.breakGlass?.clearedAt).toBeUndefined();

        // Thawed: the rollback finishes at full pace, the stop files go, the stable collector runs.
        await patchRolloutSpec(name, { strategy: { ...k.strategy, nodeRelabelQPS: 50 } });
        const done = await expectRecovered(name, k);
        const reasons = (done.status?.history ?? []).map((h) => h.reason);
        const order = ['RollingBack', 'ClusterUnreachable', 'BreakGlass', 'ClusterRolledBack', 'RolledBack'].map((r) => reasons.indexOf(r));
        report(`${name}: history ${reasons.join(' ')}`);
        expect(order.every((i) => i >= 0)).toBe(true);

        // Last, so everything above is checked whatever the outcome here: the watcher of the bad revision
        // (on a node the revision label never reached) was stopped too.
        const watcher = atEnd.find((a) => a.mode === 'cluster');
        expect({ node: watcher?.node, stoppedWhileFrozen: watcher?.stopped ?? false }).toEqual({ node: k.pin, stoppedWhileFrozen: true });
      },
    ),
    480_000,
  );
  it(
    '(2) a kubeconfig token with no rights mid-rollout: CredentialsInvalid names the cluster and the Secret, no break-glass, no rollback, the other cluster goes on; mended, it resumes',
    scenario(
      'inc-credentials',
      () => pair,
      targetNames.slice(0, 2),
      async () => {
        const name = 'inc-credentials';
        const [x, y] = pair;
        const secret = `${x.name}-kubeconfig`;
        // A token the API server accepts (it authenticates a ServiceAccount) and that has no rights:
        // /readyz answers it, every resource call is refused with 403.
        const ns = await ownNamespace(x, 'inc-nobody');
        await kubectl(x.cluster, ['create', 'serviceaccount', 'nobody', '-n', ns]);
        const token = (await kubectl(x.cluster, ['create', 'token', 'nobody', '-n', ns, '--duration', '1h'])).trim();
        const original = Buffer.from(
          await kubectl(managementCluster(), ['get', 'secret', secret, '-n', OPERATOR_NAMESPACE, '-o', 'jsonpath={.data.value}']),
          'base64',
        ).toString('utf8');
        const kc = parseYaml(original) as { users: Array<{ user: Record<string, unknown> }> };
        for (const u of kc.users) u.user = { token };
        const setSecret = (value: string) =>
          kubectl(managementCluster(), ['apply', '-f', '-'], {
            input: JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: secret, namespace: OPERATOR_NAMESPACE }, stringData: { value } }),
          });

        await startOp('inc-credentials');
        const w = await applyRollout(
          incidentRollout({ name, targets: [x.name, y.name], tag: name, nodeSteps: [10, 50, 100], bakeSeconds: 0, maxConcurrentClusters: 2, rootDir: pairDir }),
        );
        watchers.push(w);
        await w.waitFor(`${x.name} baking its first step`, (r) => clusterOf(r, x.name)?.phase === 'Baking' && clusterOf(r, x.name)?.step === 0, 180_000);

        let refused: TelemetryRollout;
        try {
          await setSecret(stringifyYaml(kc));
          refused = await w.waitFor(
            `CredentialsInvalid on ${x.name}`,
            (r) => r.status?.conditions?.some((c) => c.type === 'CredentialsInvalid' && c.status === 'True') === true,
            120_000,
          );
          const held = clusterOf(refused, x.name);
          const other = clusterOf(refused, y.name);
          report(
            `${name}: ${x.name} refused at step ${(held?.step ?? 0) + 1} (${held?.phase}); ${y.name} then at step ${(other?.step ?? 0) + 1} (${other?.phase})`,
          );
          // The refusal came mid-rollout: the other cluster still had steps to go.
          expect(other?.phase).not.toBe('Succeeded');
          const labelledWhenRefused = (await x.labelled(refused.status?.revision as string)).length;
          // The other cluster goes on to the end while this one holds.
          const goneOn = await w.waitFor(`${y.name} succeeds while ${x.name} holds`, (r) => clusterOf(r, y.name)?.phase === 'Succeeded', 180_000);
          const cond = goneOn.status?.conditions?.find((c) => c.type === 'CredentialsInvalid');
          report(`${name}: condition while refused: ${cond?.reason}: ${cond?.message}`);
          expect(cond).toMatchObject({ status: 'True', reason: 'CredentialsInvalid' });
          expect(cond?.message).toContain(x.name);
          expect(cond?.message).toContain(secret);
          expect(cond?.message).not.toContain(y.name);
          const xs = clusterOf(goneOn, x.name);
          expect(xs?.credentialsInvalidSince).toBeDefined();
          expect(xs?.step).toBe(held?.step);
          expect(xs?.phase).toBe(held?.phase);
          expect(xs?.reachable).not.toBe(false);
          expect(await x.labelled(goneOn.status?.revision as string)).toHaveLength(labelledWhenRefused);
          // No break-glass and no fleet rollback: a refused token is not an outage.
          expect(goneOn.status?.phase).toBe('Progressing');
          expect(xs?.breakGlass).toBeUndefined();
          expect(clusterOf(goneOn, y.name)?.breakGlass).toBeUndefined();
          const nodes = [...(await x.nodeNames()), ...(await y.nodeNames())];
          expect([...x.stopFilesOn(nodes).keys()]).toEqual([]);
          const reasons = (goneOn.status?.history ?? []).map((h) => h.reason);
          for (const r of ['RollingBack', 'BreakGlass', 'ClusterUnreachable', 'GateFailed']) expect(reasons).not.toContain(r);
          // The Secret's content appears nowhere: not in status, not in events.
          const events = await kubectl(managementCluster(), ['get', 'events', '-n', OPERATOR_NAMESPACE, '-o', 'json']);
          expect(events).toContain('CredentialsInvalid');
          for (const text of [JSON.stringify(goneOn.status), events]) {
            expect(text).not.toContain(token);
            expect(text).not.toContain(token.slice(-20));
          }
        } finally {
          await setSecret(original);
        }

        // Mended: the cluster goes on by itself and the rollout finishes.
        const mended = await w.waitFor(
          'credentials accepted again',
          (r) => r.status?.conditions?.some((c) => c.type === 'CredentialsInvalid' && c.status === 'False') === true,
          120_000,
        );
        expect(clusterOf(mended, x.name)?.credentialsInvalidSince).toBeUndefined();
        const done = await w.waitFor('Succeeded', (r) => r.status?.phase === 'Succeeded', 240_000);
        expect(clusterOf(done, x.name)?.phase).toBe('Succeeded');
        expect(await x.labelled(done.status?.revision as string)).toEqual(await x.nodeNames());
        expect((done.status?.history ?? []).map((h) => h.reason)).toContain('CredentialsAccepted');
      },
    ),
    480_000,
  );
  it(
    '(3) nodes the transport cannot write: status counts them, break-glass keeps retrying, the cluster is not reported recovered while a node is unconfirmed; fixed, it is',
    scenario(
      'inc-unwritable',
      () => [single],
      [singleName],
      async () => {
        const name = 'inc-unwritable';
        const t = single;
        const bgOf = (r: TelemetryRollout | undefined) => clusterOf(r, t.name)?.breakGlass;
        const failing = (r: TelemetryRollout | undefined) => (bgOf(r)?.failingNodes ?? []).map((f) => f.node).sort();
        await startOp('inc-unwritable');
        const w = await applyRollout(
          incidentRollout({
            name,
            targets: [t.name],
            tag: name,
            nodeSteps: [50, 100],
            bakeSeconds: 600,
            rootDir: nodesDir,
            unreachableAfterSeconds: UNREACHABLE_AFTER,
          }),
        );
        watchers.push(w);
        const baking = await w.waitFor('the first step baking', (r) => clusterOf(r, t.name)?.phase === 'Baking', 180_000);
        const rev = baking.status?.revision as string;
        const nodes = await t.nodeNames();
        const onRev = await t.labelled(rev);
        await eventually(
          `${onRev.length} node agents running`,
          async () => (await t.agentsOf(rev)).filter((a) => a.mode === 'node' && !a.stopped).length === onRev.length,
          180_000,
        );
        // Three nodes the transport cannot write to: two are fixed during the outage, one only after it.
        const fixedDuring = onRev.slice(0, 2);
        const fixedAfter = onRev.slice(2, 3);
        const broken = [...fixedDuring, ...fixedAfter];
        for (const n of broken) t.breakNode(n);
        const running = async () =>
          (await t.agentsOf(rev))
            .filter((a) => a.mode === 'node' && !a.stopped)
            .map((a) => a.node)
            .sort();

        const frozenAt = freeze(t);
        try {
          // Attempts run in the background: the counts are the attempt's own once it is no longer in progress.
          const first = await w.waitFor('the first break-glass attempt done', (r) => (bgOf(r)?.attempts ?? 0) >= 1 && bgOf(r)?.inProgress !== true, 90_000);
          report(`${name}: attempt 1 ${((Date.now() - frozenAt) / 1000).toFixed(1)} s after the freeze: ${bgOf(first)?.message}`);
          expect(bgOf(first)).toMatchObject({
            revision: rev,
            nodesTargeted: onRev.length,
            nodesStopped: onRev.length - broken.length,
            nodesFailed: broken.length,
            nodesPending: broken.length,
          });
          // Each node that refused is named, with why.
          expect(failing(first)).toEqual([...broken].sort());
          for (const f of bgOf(first)?.failingNodes ?? []) expect(f.message).not.toBe('');
          // The agents of the writable nodes stop; those of the broken nodes cannot, and are not reported stopped.
          await eventually(
            'every agent but those of the broken nodes stopped',
            async () => JSON.stringify(await running()) === JSON.stringify(broken),
            60_000,
            250,
          );

          const retried = await w.waitFor('two more attempts done', (r) => (bgOf(r)?.attempts ?? 0) >= 3 && bgOf(r)?.inProgress !== true, 90_000);
          expect(bgOf(retried)).toMatchObject({ nodesStopped: onRev.length - broken.length, nodesFailed: broken.length });
          expect(failing(retried)).toEqual([...broken].sort());
          expect(bgOf(retried)?.issuedAt).toBe(bgOf(first)?.issuedAt);
          expect(retried.status?.phase).toBe('BreakGlass');

          for (const n of fixedDuring) t.fixNode(n);
          const better = await w.waitFor(
            'the fixed nodes confirmed by a retry',
            (r) => bgOf(r)?.nodesFailed === fixedAfter.length && bgOf(r)?.inProgress !== true,
            120_000,
          );
          report(`${name}: after fixing ${fixedDuring.length} nodes: ${bgOf(better)?.message}`);
          expect(bgOf(better)).toMatchObject({ nodesTargeted: onRev.length, nodesStopped: onRev.length - fixedAfter.length, nodesFailed: fixedAfter.length });
          expect(bgOf(better)?.attempts ?? 0).toBeGreaterThan(bgOf(retried)?.attempts ?? 0);
          // Only the node still refusing is named now.
          expect(failing(better)).toEqual(fixedAfter);
          await eventually('the agents of the fixed nodes stopped', async () => JSON.stringify(await running()) === JSON.stringify(fixedAfter), 60_000, 250);
        } finally {
          thaw(t);
        }

        // Back, with one node still unconfirmed: the rollback takes the revision's pods away, but the
        // cluster must not be reported recovered (rolled back, stop files cleared) while that node's
        // stop file can be neither confirmed nor removed.
        await eventually(
          'the revision gone from the nodes and its agents gone',
          async () => (await t.labelled(rev)).length === 0 && (await t.agentsOf(rev)).length === 0,
          180_000,
        );
        // The cluster says why it waits, naming the node whose stop file cannot be removed.
        const blocked = await w.waitFor(
          `the failed clear naming ${fixedAfter.join(', ')}`,
          (r) => /clearing stop files failed/.test(clusterOf(r, t.name)?.message ?? ''),
          120_000,
        );
        for (const n of fixedAfter) expect(clusterOf(blocked, t.name)?.message).toContain(n);
        for (const n of fixedDuring) expect(clusterOf(blocked, t.name)?.message).not.toContain(n);
        const holdUntil = Date.now() + 20_000;
        while (Date.now() < holdUntil) {
          const r = await w.poll();
          if (r) {
            expect(clusterOf(r, t.name)?.phase).not.toBe('RolledBack');
            expect(r.status?.phase).not.toBe('RolledBack');
            expect(bgOf(r)?.clearedAt).toBeUndefined();
          }
          await sleep(500);
        }
        report(`${name}: while ${fixedAfter.join(', ')} stays unwritable: ${w.latest?.status?.phase}, ${clusterOf(w.latest, t.name)?.message}`);

        for (const n of fixedAfter) t.fixNode(n);
        const done = await w.waitFor('RolledBack once every node is confirmed', (r) => r.status?.phase === 'RolledBack', 120_000);
        expect(clusterOf(done, t.name)?.phase).toBe('RolledBack');
        expect(bgOf(done)?.clearedAt).toBeDefined();
        expect([...t.stopFilesOn(nodes).keys()]).toEqual([]);
      },
    ),
    480_000,
  );
  it(
    '(4) scenario 1 with the operator SIGKILLed after the gate trip, after the stop files and during the recovery: it finishes; no stop issued twice, none forgotten',
    scenario(
      'inc-restarts',
      () => [single],
      [singleName],
      async () => {
        const name = 'inc-restarts';
        // A restarted pod keeps its name, so the new process takes its own Lease back at once.
        const identity = 'inc-restarts';
        const t = single;
        const crash = async (point: string): Promise<void> => {
          await op?.kill('SIGKILL');
          report(`${name}: operator SIGKILLed ${point}`);
          await startOp(identity);
        };
        const k = await stableThenBadTripped(name, identity, () => crash('after the gate trip'));
        const bgOf = (r: TelemetryRollout | undefined) => clusterOf(r, t.name)?.breakGlass;

        const frozenAt = freeze(t);
        let issuedAt: string;
        let files: Map<string, string>;
        try {
          const issued = await k.w.waitFor('break-glass issued', (r) => bgOf(r)?.issuedAt !== undefined && bgOf(r)?.revision === k.bad, 90_000);
          issuedAt = bgOf(issued)?.issuedAt as string;
          await eventually(
            'every node agent of the bad revision stopped',
            async () => (await t.agentsOf(k.bad)).filter((a) => a.mode === 'node' && !a.stopped).length === 0,
            60_000,
            250,
          );
          report(`${name}: every node agent stopped ${((Date.now() - frozenAt) / 1000).toFixed(1)} s after the freeze`);
          files = t.issuedAt(k.nodes, k.bad);
          expect(files.size).toBeGreaterThan(0);
          expect(new Set(files.values())).toEqual(new Set([issuedAt]));

          // Killed once the files are on the nodes AND their issuedAt is in status (the status write follows
          // the writes within one pass; a kill between the two is not aimed at here).
          await crash('after the stop files, the API server still frozen');
          const restarted = op as OperatorProcess;
          await eventually('three passes of the restarted operator', async () => (await reconciles(restarted)) >= 3, 90_000, 500);
          const later = await k.w.poll();
          expect(clusterOf(later, t.name)?.reachable).toBe(false);
          expect(bgOf(later)).toMatchObject({ revision: k.bad, issuedAt, attempts: 1, nodesFailed: 0 });
          // The same files, not written again.
          expect(t.issuedAt(k.nodes, k.bad)).toEqual(files);
          expect((await t.agentsOf(k.bad)).filter((a) => a.mode === 'node' && !a.stopped)).toEqual([]);
        } finally {
          thaw(t);
        }

        const atThaw = (await t.labelled(k.bad)).length;
        await eventually('the recovery under way: a node relabelled back after the thaw', async () => (await t.labelled(k.bad)).length < atThaw, 120_000);
        // Still under way: the stop files are still there when the operator dies.
        expect(t.issuedAt(k.nodes, k.bad).size).toBeGreaterThan(0);
        await crash('during the recovery');
        await patchRolloutSpec(name, { strategy: { ...k.strategy, nodeRelabelQPS: 50 } });
        const done = await expectRecovered(name, k);
        expect(bgOf(done)).toMatchObject({ revision: k.bad, issuedAt, attempts: 1 });
        const issues = (done.status?.history ?? []).filter((h) => h.reason === 'BreakGlass' && /stop files on/.test(h.message ?? ''));
        report(`${name}: break-glass history: ${issues.map((h) => h.message).join(' | ')}`);
      },
    ),
    480_000,
  );
  it(
    '(5) two clusters frozen during a bake, a node the transport cannot write deleted after the thaw: it leaves the inventory, its cluster recovers without it, no stop file of ours left; the other cluster is not held up',
    scenario(
      'inc-node-gone',
      () => [single, beside],
      [singleName, targetNames[0] ?? ''],
      async () => {
        const name = 'inc-node-gone';
        const a = single;
        const b = beside;
        const bgOf = (r: TelemetryRollout | undefined) => clusterOf(r, a.name)?.breakGlass;
        await startOp(name);
        // B listed first, A second: the rollback goes newest first, so A (the one that will wait) comes
        // before B, and B recovers only if a cluster that can only wait does not hold up the next.
        const w = await applyRollout(
          incidentRollout({
            name,
            targets: [b.name, a.name],
            tag: name,
            nodeSteps: [50, 100],
            bakeSeconds: 600,
            maxConcurrentClusters: 2,
            rootDir: nodesDir,
            unreachableAfterSeconds: UNREACHABLE_AFTER,
          }),
        );
        watchers.push(w);
        const baking = await w.waitFor(
          'both clusters baking their first step',
          (r) => clusterOf(r, a.name)?.phase === 'Baking' && clusterOf(r, b.name)?.phase === 'Baking',
          180_000,
        );
        const rev = baking.status?.revision as string;
        const onRev = await a.labelled(rev);
        await eventually(
          `${onRev.length} node agents running on ${a.name}`,
          async () => (await a.agentsOf(rev)).filter((x) => x.mode === 'node' && !x.stopped).length === onRev.length,
          180_000,
        );
        // One node of A whose stop directory the transport can neither write nor clear, for good: it is
        // not fixed, it is deleted (a VM that died in the outage).
        const victim = onRev[0] as string;
        a.breakNode(victim);
        restores.push(async () => a.fixNode(victim));
        const running = async () =>
          (await a.agentsOf(rev))
            .filter((x) => x.mode === 'node' && !x.stopped)
            .map((x) => x.node)
            .sort();

        // Both API servers freeze: both clusters get stop files, and both must recover after the thaw; B
        // can recover only if A, ahead of it in the rollback order and stuck on its victim, lets it.
        const bBg = (r: TelemetryRollout | undefined) => clusterOf(r, b.name)?.breakGlass;
        const frozenAt = freeze(a);
        freeze(b);
        try {
          const first = await w.waitFor(
            'the first attempts on A and B done',
            (r) => (bgOf(r)?.attempts ?? 0) >= 1 && bgOf(r)?.inProgress !== true && (bBg(r)?.attempts ?? 0) >= 1 && bBg(r)?.inProgress !== true,
            90_000,
          );
          report(`${name}: attempt 1 on ${a.name} ${((Date.now() - frozenAt) / 1000).toFixed(1)} s after the freeze: ${bgOf(first)?.message}`);
          expect(bgOf(first)).toMatchObject({ revision: rev, nodesFailed: 1, nodesPending: 1 });
          expect((bgOf(first)?.failingNodes ?? []).map((f) => f.node)).toEqual([victim]);
          expect(bBg(first)).toMatchObject({ revision: rev, nodesFailed: 0, nodesTimedOut: 0, nodesPending: 0 });
          expect(bBg(first)?.failingNodes).toBeUndefined();
          await eventually(
            `every node agent on ${a.name} stopped but ${victim}'s`,
            async () => JSON.stringify(await running()) === JSON.stringify([victim]),
            60_000,
            250,
          );
        } finally {
          thaw(a);
          thaw(b);
        }
        const thawedAt = Date.now();

        // Back: A's rollback reaches the clear, which fails on the victim (named) and is retried.
        const blocked = await w.waitFor(
          `${a.name} waiting on ${victim}`,
          (r) => /clearing stop files failed/.test(clusterOf(r, a.name)?.message ?? ''),
          180_000,
        );
        report(
          `${name}: ${a.name} ${((Date.now() - thawedAt) / 1000).toFixed(1)} s after the thaw: ${clusterOf(blocked, a.name)?.message}; ${b.name} then ${clusterOf(blocked, b.name)?.phase}`,
        );
        expect(clusterOf(blocked, a.name)?.message).toContain(victim);
        expect(bgOf(blocked)?.clearedAt).toBeUndefined();
        // Meanwhile B, behind A in the rollback order, rolls back to the end and its stop files go: A
        // waiting does not delay it (A cannot recover before its victim is deleted, below).
        const bDone = await w.waitFor(`${b.name} rolled back while ${a.name} waits`, (r) => clusterOf(r, b.name)?.phase === 'RolledBack', 120_000);
        report(
          `${name}: ${b.name} rolled back ${((Date.now() - thawedAt) / 1000).toFixed(1)} s after ${a.name}'s thaw, ${a.name} still ${clusterOf(bDone, a.name)?.phase}`,
        );
        expect(clusterOf(bDone, a.name)?.phase).not.toBe('RolledBack');
        expect(bgOf(bDone)?.clearedAt).toBeUndefined();
        expect(bBg(bDone)?.clearedAt).toBeDefined();
        expect(await b.labelled(rev)).toEqual([]);
        expect([...b.stopFilesOn(await b.nodeNames()).keys()]).toEqual([]);

        // The victim is gone for good: it leaves the inventory and A recovers without it.
        restores.unshift(await a.deleteNode(victim));
        const deletedAt = Date.now();
        const done = await w.waitFor(`${a.name} recovered once ${victim} left the inventory`, (r) => r.status?.phase === 'RolledBack', 120_000);
        report(`${name}: ${a.name} rolled back ${((Date.now() - deletedAt) / 1000).toFixed(1)} s after ${victim} was deleted`);
        expect(clusterOf(done, a.name)?.phase).toBe('RolledBack');
        expect(bgOf(done)?.clearedAt).toBeDefined();
        const history = done.status?.history ?? [];
        const at = (pred: (h: (typeof history)[number]) => boolean) => history.findIndex(pred);
        const changed = at((h) => h.reason === 'InventoryChanged' && (h.message ?? '').includes(victim));
        expect(history[changed]?.message).toContain(a.name);
        // In that order: B rolled back, then (the victim deleted) it left A's inventory, then A rolled back.
        const bBack = at((h) => h.reason === 'ClusterRolledBack' && (h.message ?? '').startsWith(`${b.name}:`));
        const aBack = at((h) => h.reason === 'ClusterRolledBack' && (h.message ?? '').startsWith(`${a.name}:`));
        expect({ bBack: bBack >= 0, changed: changed >= 0, aBack: aBack >= 0 }).toEqual({ bBack: true, changed: true, aBack: true });
        expect(bBack).toBeLessThan(changed);
        expect(changed).toBeLessThan(aBack);
        const left = await a.nodeNames();
        expect(left).not.toContain(victim);
        expect([...a.stopFilesOn(left, 'auto').keys()]).toEqual([]);
        expect(await a.labelled(rev)).toEqual([]);
        expect(await a.agentsOf(rev)).toEqual([]);
      },
    ),
    480_000,
  );
  it(
    "(6) a person stops every revision by hand during an Auto break-glass: the recovery removes only the operator's stop files; the person's keeps every agent stopped, the stable one included, until that person clears it",
    scenario(
      'inc-manual-all',
      () => [single],
      [singleName],
      async () => {
        const name = 'inc-manual-all';
        const t = single;
        const rt = runtime as NodeRuntime;
        const bgOf = (r: TelemetryRollout | undefined) => clusterOf(r, t.name)?.breakGlass;
        const nodeAgents = async (rev: string) => (await t.agentsOf(rev)).filter((x) => x.mode === 'node');
        const nodes = await t.nodeNames();
        await startOp(name);
        const base: Pick<IncidentRolloutOptions, 'name' | 'targets' | 'rootDir' | 'unreachableAfterSeconds'> = {
          name,
          targets: [t.name],
          rootDir: nodesDir,
          unreachableAfterSeconds: UNREACHABLE_AFTER,
        };
        const w = await applyRollout(incidentRollout({ ...base, tag: `${name}-stable`, nodeSteps: [100], bakeSeconds: 0 }));
        watchers.push(w);
        const ok = await w.waitFor('the stable revision on every node', (r) => r.status?.phase === 'Succeeded', 240_000);
        const stable = ok.status?.revision as string;
        const badSpec = incidentRollout({ ...base, tag: `${name}-bad`, nodeSteps: [50, 100], bakeSeconds: 600 }).spec as Record<string, unknown>;
        await patchRolloutSpec(name, { collector: badSpec.collector, strategy: badSpec.strategy });
        const baking = await w.waitFor(
          'the bad revision baking its first step',
          (r) => r.status?.revision !== stable && clusterOf(r, t.name)?.phase === 'Baking',
          240_000,
        );
        const bad = baking.status?.revision as string;
        const onBad = await t.labelled(bad);
        await eventually(
          'one running node agent per node: the bad revision on its nodes, the stable one on the others',
          async () =>
            (await nodeAgents(bad)).filter((x) => !x.stopped).length === onBad.length &&
            (await nodeAgents(stable)).filter((x) => !x.stopped).length === nodes.length - onBad.length,
          180_000,
        );
        // While healthy, the person exports the inventory (every node, whatever it runs).
        const invFile = join(work, `${name}-inventory.json`);
        const exported = await exec(WRAPPER, ['--kubeconfig', managementCluster().kubeconfigPath, 'inventory', 'export', t.name, '--file', invFile]);
        expect({ code: exported.code, stderr: exported.stderr }).toEqual({ code: 0, stderr: '' });
        const byHand = (args: string[]) =>
          exec(WRAPPER, ['break-glass', t.name, '--inventory', invFile, '--revision', '*', '--local-root', nodesDir, '-o', 'json', ...args]);
        // Whatever happens, the person's stop goes with the scenario (reset removes the stop directories too).
        restores.push(async () => void (await byHand(['--clear'])));

        const frozenAt = freeze(t);
        try {
          const issued = await w.waitFor(
            "the operator's stop confirmed on every node of the bad revision",
            (r) => bgOf(r)?.revision === bad && (bgOf(r)?.attempts ?? 0) >= 1 && bgOf(r)?.inProgress !== true && bgOf(r)?.nodesPending === 0,
            90_000,
          );
          expect(bgOf(issued)).toMatchObject({ nodesFailed: 0, nodesTimedOut: 0 });
          // The person stops every revision on every node, with no API server.
          const t0 = Date.now();
          const r = await byHand(['--scope', 'all', '--reason', 'e2e incident: stop everything', '--rollout', `${OPERATOR_NAMESPACE}/${name}`]);
          expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
          expect(JSON.parse(r.stdout)).toMatchObject({
            action: 'issue',
            cluster: t.name,
            result: { nodesTargeted: nodes.length, nodesStopped: nodes.length, nodesFailed: 0 },
          });
          await eventually(
            'every agent stopped, the stable ones included',
            async () => {
              const all = await rt.agents();
              return all.length > 0 && all.every((x) => x.stopped);
            },
            60_000,
            250,
          );
          report(
            `${name}: manual-all on ${nodes.length} nodes + every agent stopped in ${((Date.now() - t0) / 1000).toFixed(1)} s (${((t0 - frozenAt) / 1000).toFixed(1)} s after the freeze)`,
          );
          // Two issuers, two files: the operator's for its revision, the person's for every revision.
          for (const n of onBad)
            expect(t.stopFiles(n).map((f) => `${f.file} ${f.issuer} ${f.content?.revision}`)).toEqual([`auto-${bad} auto ${bad}`, 'manual-all manual *']);
        } finally {
          thaw(t);
        }

        // Recovered: the operator's files are gone, the person's are not.
        const done = await w.waitFor('RolledBack', (r) => r.status?.phase === 'RolledBack', 240_000);
        expect(bgOf(done)?.clearedAt).toBeDefined();
        expect([...t.stopFilesOn(nodes, 'auto').keys()]).toEqual([]);
        const manualLeft = [...t.stopFilesOn(nodes)].map(([n, files]) => `${n}: ${files.map((f) => f.file).join(' ')}`);
        expect(manualLeft).toEqual(nodes.map((n) => `${n}: manual-all`));
        expect(await t.labelled(stable)).toEqual(nodes);
        await eventually(
          'only the stable collector left, on every node, and every agent of it stopped',
          async () => {
            const all = await rt.agents();
            return all.every((x) => x.revision === stable && x.stopped) && all.filter((x) => x.mode === 'node').length === nodes.length;
          },
          120_000,
        );
        // And they stay stopped.
        for (const until = Date.now() + 5000; Date.now() < until; await sleep(500)) {
          expect((await rt.agents()).filter((x) => !x.stopped).map((x) => `${x.node} ${x.revision} ${x.mode}`)).toEqual([]);
        }

        // The person clears their stop: the agents run again.
        const cleared = await byHand(['--clear']);
        expect({ code: cleared.code, stderr: cleared.stderr }).toEqual({ code: 0, stderr: '' });
        expect([...t.stopFilesOn(nodes).keys()]).toEqual([]);
        await eventually(
          'every stable node agent running again',
          async () => {
            const s = await nodeAgents(stable);
            return s.length === nodes.length && s.every((x) => !x.stopped);
          },
          60_000,
          250,
        );
      },
    ),
    480_000,
  );
});
