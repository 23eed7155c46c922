/**
 * Moving forward: the first unfinished stage's clusters start (within maxConcurrentClusters), each
 * moves at most one state per pass (preflight, step, bake), and when every cluster has succeeded the
 * candidate becomes the stable revision everywhere.
 */
import type { ClusterStatus, StageSpec } from '../api/types.generated.js';
import { errorMessage } from '../util/errors.js';
import { recordInventory } from './inventory.js';
import { REASON } from './conditions.js';
import { isAuthenticationError } from '../util/errors.js';
import { markCredentialsInvalid } from './credentials.js';
import { revisionObjects, revisionRefs, sharedObjects } from './desired.js';
import { REVISION_LABEL, type ClusterClient } from './interfaces.js';
import { isActive, resumeEvent } from './machine.js';
import { PROBE_CONCURRENCY, iso, type Pass } from './pass.js';
import { mapLimit } from '../breakglass/maplimit.js';
import { runsCandidate } from './observe.js';
import { haltFleet, startRollback } from './rollback.js';
import { bake, beginStep, relabelStep } from './steps.js';

/** Moves the rollout forward: the first unfinished stage, up to maxConcurrentClusters at a time. */
export async function progress(p: Pass): Promise<void> {
  const s = p.status;
  const clusters = s.clusters ?? [];
  const stages = p.rollout.spec.strategy.stages;
  for (let i = 0; i < stages.length; i++) {
    const stage = stages[i] as StageSpec;
    const members = clusters.filter((c) => c.stage === stage.name);
    if (members.every((c) => c.phase === 'Succeeded')) continue;
    if (s.stage !== stage.name) {
      s.stage = stage.name;
      s.stageIndex = i;
      p.record('Normal', REASON.Progressing, `stage ${stage.name} started: ${members.map((c) => c.name).join(', ')}`);
    }
    // Clusters halted by a breach that was later retried resume here.
    for (const c of members) if (c.phase === 'Paused') p.clusterEvent(c, resumeEvent(c));
    let active = members.filter((c) => isActive(c.phase)).length;
    for (const c of members) {
      if (c.phase === 'Pending' && active < stage.maxConcurrentClusters) {
        p.clusterEvent(c, 'Start');
        c.revision = p.revision;
        c.message = 'preflight';
        active++;
        p.record('Normal', REASON.ClusterStarted, `cluster ${c.name} started (stage ${stage.name})`, c.name);
      }
    }
    for (const c of members) {
      if (s.phase !== 'Progressing') return; // a gate breach or failure in this pass stops everything
      if (isActive(c.phase)) await advanceCluster(p, c, stage);
    }
    return;
  }
  await finalize(p);
}

/** Moves one cluster at most one state forward. */
async function advanceCluster(p: Pass, c: ClusterStatus, stage: StageSpec): Promise<void> {
  const client = p.clients.get(c.name);
  // Unreachable, or refusing our credentials: the cluster holds where it is (its message says why).
  if (!client || c.reachable === false || c.credentialsInvalidSince) {
    c.message = client ? c.message : `cluster unavailable: ${p.unavailable.get(c.name) ?? 'unknown'}`;
    p.requeue(5000);
    return;
  }
  try {
    if (c.phase === 'Preflight') await preflight(p, c, client, stage);
    else if (c.phase === 'Progressing') await relabelStep(p, c, client);
    else if (c.phase === 'Baking') await bake(p, c, client, stage);
  } catch (err) {
    if (isAuthenticationError(err)) {
      markCredentialsInvalid(p, c, errorMessage(err));
      p.requeue(5000);
      return;
    }
    // A transient API error: keep the state, say what happened, try again soon.
    c.message = `${c.phase ?? ''} error: ${errorMessage(err)}`;
    p.ctx.d.logger?.warn('cluster step failed', { cluster: c.name, phase: c.phase, error: errorMessage(err) });
    p.requeue(5000);
  }
}

/** Preflight: inventory, the previous revision, cleanup of superseded revisions, checks, objects, baseline. */
async function preflight(p: Pass, c: ClusterStatus, client: ClusterClient, stage: StageSpec): Promise<void> {
  const ro = p.rollout;
  const ns = ro.spec.collector.namespace;
  const nodes = await client.listNodes();
  c.nodesTotal = nodes.length;
  await recordInventory(p, c, client, nodes);
  if (!(await breakGlassChecked(p, c))) return;
  // The stable revision first: a rollback that visits this cluster later (an abort, or a refusal
  // below) must know what to return to, and must not take a stable collector's shared objects away.
  const owned = await client.listCollectorDaemonSets(ns, p.rolloutLabel);
  const stable = owned.find((d) => d.stable && d.revision !== p.revision);
  c.previousRevision = stable?.revision ?? '';
  const target = p.target(c.name);
  for (const check of p.ctx.d.options?.preflight ?? []) {
    const refusal = target ? await check(ro, target, nodes, client) : undefined;
    if (refusal) {
      p.clusterEvent(c, 'PreflightRefused');
      c.message = `preflight refused: ${refusal}`;
      p.record('Warning', REASON.PreflightFailed, c.message, c.name);
      const onCandidate = (p.status.clusters ?? []).filter((x) => runsCandidate(x)).map((x) => x.name);
      if (onCandidate.length) {
        // Earlier clusters run the candidate the rollout cannot finish: they go back to the stable revision.
        haltFleet(p, `preflight refused on ${c.name}`);
        startRollback(p, 'PreflightRefusedMidRollout', REASON.PreflightFailed, `${c.name}: ${c.message}; rolling back ${onCandidate.join(', ')}`);
        return;
      }
      p.rolloutEvent('PreflightRefused', REASON.PreflightFailed);
      p.status.message = `${c.name}: ${c.message}`;
      p.status.completedAt = iso(p.now);
      return;
    }
  }
  // A revision that is neither stable nor current was superseded mid-rollout: hand its nodes back.
  let busy = false;
  for (const n of nodes) {
    const r = n.labels[REVISION_LABEL];
    if (r && r !== p.revision && r !== c.previousRevision) {
      if (!p.takeRelabelToken(c.name)) {
        busy = true;
        break;
      }
      await client.setNodeRevision(n.name, c.previousRevision ? c.previousRevision : null);
    }
  }
  if (busy) {
    c.message = 'preflight: returning nodes of a superseded revision';
    p.requeue(p.relabelIntervalMs());
    return;
  }
  for (const d of owned) {
    if (d.revision !== p.revision && d.revision !== c.previousRevision) for (const ref of revisionRefs(ns, d.revision)) await client.delete(ref);
  }
  for (const obj of [...sharedObjects(ro), ...revisionObjects(ro, p.revision, false)]) await client.apply(obj);
  await beginStep(p, c, client, stage, 0);
}

/** All clusters succeeded: the new revision becomes stable everywhere and older ones are removed. */
async function finalize(p: Pass): Promise<void> {
  const s = p.status;
  const ns = p.rollout.spec.collector.namespace;
  // Two rounds over the fleet. The candidate becomes stable on every cluster first; older revisions are
  // deleted only once that holds everywhere. A cluster that cannot be reached in between (and a rollback
  // that follows) then still finds the revision it rolls back to in place on every other cluster.
  const stable = await eachCluster(p, async (client) => {
    for (const obj of revisionObjects(p.rollout, p.revision, true)) await client.apply(obj);
  });
  const pending =
    stable.length > 0
      ? stable
      : await eachCluster(p, async (client) => {
          for (const d of await client.listCollectorDaemonSets(ns, p.rolloutLabel)) {
            if (d.revision !== p.revision) for (const ref of revisionRefs(ns, d.revision)) await client.delete(ref);
          }
        });
  if (pending.length) {
    s.message = `all clusters on ${p.revision}; finishing ${stable.length ? 'making it stable' : 'cleanup'} on ${pending.join(', ')}`;
    p.requeue(10_000);
    return;
  }
  p.rolloutEvent('AllClustersSucceeded', REASON.Succeeded);
  s.completedAt = iso(p.now);
  p.record('Normal', REASON.Succeeded, `revision ${p.revision} is on every node of ${s.clusters?.length ?? 0} clusters`);
}

/**
 * Runs `fn` on every cluster's client, {@link PROBE_CONCURRENCY} clusters at a time (one after
 * another, the pass that finishes a rollout grew with the fleet: a few requests per cluster, in series);
 * returns the clusters where it could not (no client, or an error), in rollout order. `fn` only touches
 * its own cluster, so the clusters' order of completion changes nothing.
 */
async function eachCluster(p: Pass, fn: (client: ClusterClient) => Promise<void>): Promise<string[]> {
  const outcomes = await mapLimit(p.status.clusters ?? [], PROBE_CONCURRENCY, async (c): Promise<string | undefined> => {
    const client = p.clients.get(c.name);
    if (!client) return c.name;
    try {
      await fn(client);
      return undefined;
    } catch (err) {
      return `${c.name} (${errorMessage(err)})`;
    }
  });
  return outcomes.filter((o): o is string => o !== undefined);
}

/** How often a failed transport check is repeated while the cluster waits in Preflight. */
const CHECK_RETRY_MS = 30_000;

/**
 * The break-glass transport proven at the cluster's preflight, from the inventory just recorded (ssh:
 * connection, host keys, key, sudo, a writable stop directory), so a broken kill switch is found now
 * rather than during the outage that needs it. A failure holds the cluster in Preflight (and says what
 * failed) until it passes: with action Auto the rollout relies on it. Manual, or no transport, skips it.
 */
async function breakGlassChecked(p: Pass, c: ClusterStatus): Promise<boolean> {
  const actuator = p.ctx.d.breakGlass;
  if (p.rollout.spec.breakGlass.action !== 'Auto' || !actuator?.check || !actuator.available(p.rollout)) return true;
  const result = await actuator.check(p.rollout, c.name);
  if (result === undefined) return true;
  const wasOk = c.breakGlassCheck?.ok;
  c.breakGlassCheck = { checkedAt: iso(p.now), ok: result.ok, message: result.message };
  if (result.ok) {
    if (wasOk === false) p.record('Normal', REASON.BreakGlass, `${c.name}: break-glass transport check passed: ${result.message}`, c.name);
    return true;
  }
  c.message = `preflight waits: break-glass transport check failed (fix it, or set breakGlass.action: Manual): ${result.message}`;
  if (wasOk !== false) p.record('Warning', REASON.BreakGlass, `${c.name}: ${c.message}`, c.name);
  p.requeue(CHECK_RETRY_MS);
  return false;
}
