/**
 * Stopping and undoing: the fleet-wide circuit breaker, the start of a rollback, and the rollback
 * itself, which returns touched clusters to the stable revision newest first, one at a time.
 */
import type { ClusterStatus } from '../api/types.generated.js';
import { errorMessage } from '../util/errors.js';
import { REASON } from './conditions.js';
import { isAuthenticationError, isOverloadError } from '../util/errors.js';
import { maybeBreakGlass } from './breakglass.js';
import { markCredentialsInvalid } from './credentials.js';
import { revisionObjects, revisionRefs, sharedObjects } from './desired.js';
import { REVISION_LABEL, type NodeInfo } from './interfaces.js';
import { isActive, isTouched, rolloutCapabilities, type RolloutEvent } from './machine.js';
import { runsCandidate } from './observe.js';
import { recordInventory, refreshBeforeClear } from './inventory.js';
import { iso, since, type Pass } from './pass.js';

/** The fleet-wide circuit breaker: every cluster still moving stops where it is; `why` says what tripped it. */
export function haltFleet(p: Pass, why: string): void {
  for (const c of p.status.clusters ?? []) {
    if (isActive(c.phase)) {
      p.clusterEvent(c, 'Halt');
      c.message = `halted: ${why}`;
    }
  }
}

/** Starts rolling back: the decision is written to status first; the following passes act on it. */
export function startRollback(p: Pass, event: RolloutEvent, reason: string, message: string): void {
  // A gate breach's edge has a target per policy; this is the Rollback one.
  p.rolloutEvent(event, reason, 'Rollback');
  // An edge back to RollingBack (a second cause in the same pass) keeps the phase; the latest cause is
  // still why the rollout rolls back.
  p.status.reason = reason;
  p.status.message = message;
  // Not final any more (a Failed rollout being rolled back): completedAt comes with RolledBack.
  delete p.status.completedAt;
  p.record('Warning', REASON.RollingBack, `rolling back: ${message}`);
}

/** Whether rollback must visit a cluster: it was started, or it still has nodes on the candidate. */
const needsRollback = (c: ClusterStatus): boolean => isTouched(c.phase) || (c.nodesUpdated ?? 0) > 0;

/**
 * Rolls back touched clusters newest first, one at a time: its nodes lose the new revision's label
 * (paced) and fall back to the stable DaemonSet, then the new revision's objects are deleted. A cluster
 * that can only wait (its stop files cannot be cleared yet, it has no client) does not hold up the next
 * one: clusters recover independently.
 */
export async function rollBack(p: Pass): Promise<void> {
  const s = p.status;
  const remaining = [...(s.clusters ?? [])].reverse().filter((x) => needsRollback(x) && x.phase !== 'RolledBack');
  if (remaining.length === 0) {
    p.rolloutEvent('AllClustersRolledBack', s.reason);
    s.completedAt = iso(p.now);
    p.record('Warning', REASON.RolledBack, `rolled back: ${s.message ?? ''}`.trim());
    return;
  }
  // Newest first among the clusters that can be acted on: one whose API server is down (or refuses our
  // credentials) waits, with its agents stopped by break-glass, without holding up the others.
  const actionable = remaining.filter((x) => x.reachable !== false && !x.credentialsInvalidSince);
  if (actionable.length === 0) {
    // Nothing left that can be acted on: wait (observe keeps probing it, and says why on the cluster).
    p.requeue(5000);
    return;
  }
  for (const c of actionable) if ((await rollBackCluster(p, c)) !== 'blocked') return;
}

/** How one cluster's rollback pass ended: moving (relabels, waits for pods), done, or blocked (go on to the next). */
type RollbackOutcome = 'moving' | 'done' | 'blocked';

async function rollBackCluster(p: Pass, c: ClusterStatus): Promise<RollbackOutcome> {
  const ns = p.rollout.spec.collector.namespace;
  const client = p.clients.get(c.name);
  if (!client) {
    c.message = `rollback waiting: cluster unavailable: ${p.unavailable.get(c.name) ?? 'unknown'}`;
    p.requeue(10_000);
    return 'blocked';
  }
  if (c.phase !== 'RollingBack') {
    p.clusterEvent(c, 'RollBack');
    p.record('Warning', REASON.ClusterRollingBack, `${c.name}: rolling back to ${c.previousRevision || 'no collector'}`, c.name);
  }
  try {
    const owned = await client.listCollectorDaemonSets(ns, p.rolloutLabel);
    if (c.previousRevision === undefined) {
      // Never learned (its preflight did not get that far, or a status from an older operator): learn
      // it now. Relabelling and, above all, deleting the shared objects depend on it: "no collector
      // before" must never be assumed of a cluster that runs a stable one.
      c.previousRevision = owned.find((d) => d.stable && d.revision !== p.revision)?.revision ?? '';
    }
    if (!p.deferredRevision && owned.some((d) => d.revision === p.revision && d.stable)) {
      // A finalize that reached this cluster but not every cluster made the candidate stable here: it
      // would take back every node the rollback unlabels. It goes back to covering its own label only.
      for (const obj of revisionObjects(p.rollout, p.revision, false)) await client.apply(obj);
    }
    const nodes = await client.listNodes();
    let left = nodes.filter((n) => n.labels[REVISION_LABEL] === p.revision).length;
    const back = new Set<string>();
    try {
      for (const n of nodes) {
        if (n.labels[REVISION_LABEL] !== p.revision) continue;
        if (!p.takeRelabelToken(c.name)) break;
        await client.setNodeRevision(n.name, c.previousRevision ? c.previousRevision : null);
        back.add(n.name);
        left--;
      }
      delete c.refusedSince;
    } finally {
      // The inventory follows every batch: a break-glass during the rollback goes where agents still run.
      const seen = nodes.map((n): NodeInfo => {
        if (!back.has(n.name)) return n;
        const labels: Record<string, string> = { ...n.labels };
        if (c.previousRevision) labels[REVISION_LABEL] = c.previousRevision;
        else delete labels[REVISION_LABEL];
        return { ...n, labels };
      });
      await recordInventory(p, c, client, seen);
    }
    c.nodesUpdated = left;
    if (left > 0) {
      c.message = `rolling back: ${left} nodes still on ${p.revision}`;
      p.requeue(p.relabelIntervalMs());
      return 'moving';
    }
    // Pods, not the DaemonSet's counters, say whether an agent of the bad revision still runs (the
    // watcher has no DaemonSet; a terminating pod still runs). Its objects go first, so nothing recreates one.
    for (const ref of revisionRefs(ns, p.revision)) await client.delete(ref);
    const running = (await client.listCollectorPods(ns)).filter((pod) => pod.revision === p.revision);
    if (running.length > 0) {
      c.message = `rolling back: waiting for ${running.length} pods of ${p.revision} to stop`;
      p.requeue(p.ctx.pollMs);
      return 'blocked';
    }
    const bg = p.ctx.d.breakGlass;
    // What is owed: the stop status records, and any the ledger holds that status lost (a pass that
    // issued a stop and died before its status write). Only the revision rolled back here, whose pods
    // are gone: another revision's stop stays until its own agents are gone.
    const owed = new Set<string>();
    if (c.breakGlass?.issuedAt && !c.breakGlass.clearedAt) owed.add(c.breakGlass.revision ?? p.revision);
    if (bg?.owed) for (const r of await bg.owed(p.rollout, c.name)) if (r === p.revision) owed.add(r);
    if (owed.size && bg) {
      // The inventory from the live node list first: a node deleted during the outage leaves it (with an
      // event), so clearing does not wait forever on a node that will never answer.
      const notReady = await refreshBeforeClear(p, c, client);
      for (const revision of owed) {
        // Only now, with no agent of the bad revision left, may the stop files go.
        const cleared = await bg.clear(p.rollout, c.name, revision, { notReady });
        if (!cleared.ok) {
          // Not recovered while any (Ready) node still holds our stop file: retried, and the next cluster goes on.
          c.message = cleared.inProgress ? `rolling back: ${cleared.message}` : `rolling back: clearing stop files failed: ${cleared.message}`;
          p.requeue(cleared.inProgress ? 1000 : 10_000);
          return 'blocked';
        }
        if (c.breakGlass?.issuedAt && !c.breakGlass.clearedAt && (c.breakGlass.revision ?? p.revision) === revision) c.breakGlass.clearedAt = iso(p.now);
        p.record('Normal', REASON.BreakGlass, `${c.name}: stop files cleared (${cleared.message})`, c.name);
      }
    }
    if (!c.previousRevision) {
      // There was no collector before this rollout: remove what it added, except the namespace,
      // which config/target-rbac owns (the operator's own ServiceAccount in the target lives there).
      for (const obj of sharedObjects(p.rollout)
        .reverse()
        .filter((o) => o.kind !== 'Namespace')) {
        await client.delete({ apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, namespace: obj.metadata.namespace });
      }
    }
    p.clusterEvent(c, 'RolledBack');
    clearObservations(c);
    c.message = `rolled back to ${c.previousRevision || 'no collector'}`;
    p.record('Normal', REASON.ClusterRolledBack, `${c.name}: ${c.message}`, c.name);
    p.requeue(0);
    return 'done';
  } catch (err) {
    if (isAuthenticationError(err)) markCredentialsInvalid(p, c, errorMessage(err));
    else if (isOverloadError(err)) await refused(p, c, errorMessage(err));
    else c.message = `rollback error: ${errorMessage(err)}`;
    p.requeue(5000);
    // One cluster's failure does not hold up the others' rollback.
    return 'blocked';
  }
}

/**
 * The rollback's own calls are refused (429, 5xx): the API server answers its probe but cannot be
 * acted on. For unreachableAfterSeconds that is the same as unreachable for what matters here (the
 * bad agents cannot be removed through it), so break-glass stops them; a call that goes through again
 * ends the count. Overload while we can still act is the gates' business, not this.
 */
async function refused(p: Pass, c: ClusterStatus, why: string): Promise<void> {
  c.refusedSince ??= iso(p.now);
  const forS = Math.floor(since(p.now, c.refusedSince));
  c.message = `rollback: the API server refuses our calls for ${forS}s: ${why}`;
  if (!runsCandidate(c) || !rolloutCapabilities(p.status.phase).breakGlassArmed) return;
  await maybeBreakGlass(p, c, c.refusedSince, `API server refused the rollback's calls for ${forS}s`);
}

/**
 * Forgets what was observed of a cluster that no longer runs the candidate (rolled back, or reset for a
 * retry): it is not probed any more, so a mark left behind would stay for good (Degraded forever).
 */
export function clearObservations(c: ClusterStatus): void {
  delete c.reachable;
  delete c.unreachableSince;
  delete c.reachableSince;
  delete c.credentialsInvalidSince;
  delete c.refusedSince;
}
