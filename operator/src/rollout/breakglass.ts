/**
 * Break-glass in the rollout: when a target running the candidate has been unreachable for
 * unreachableAfterSeconds, Auto writes the stop files (once per revision) through the actuator; Manual,
 * or no transport, only reports what a person should run.
 */
import type { BreakGlassStatus, ClusterStatus } from '../api/types.generated.js';
import { REASON } from './conditions.js';
import { rolloutCapabilities } from './machine.js';
import { mapLimit } from '../breakglass/maplimit.js';
import { iso, PROBE_CONCURRENCY, since, type Pass } from './pass.js';
import { haltFleet } from './rollback.js';

/**
 * After success (breakGlass.afterSuccess): Manual reports (the BreakGlassNeeded condition, a Warning
 * event, the metric) and Auto stops the revision's agents on that cluster, without the fleet-wide
 * reactions of a rollout under way (no halt, no rollback: there is no older revision to go back to).
 */
export async function breakGlassAfterSuccess(p: Pass, c: ClusterStatus): Promise<void> {
  const policy = p.rollout.spec.breakGlass.afterSuccess;
  if (policy === 'Auto') return maybeBreakGlass(p, c, c.unreachableSince, 'API server unreachable after success', false);
  const bg = p.rollout.spec.breakGlass;
  const down = since(p.now, c.unreachableSince);
  if (down < bg.unreachableAfterSeconds) {
    p.requeue((bg.unreachableAfterSeconds - down) * 1000);
    return;
  }
  const msg = `API server unreachable for ${Math.floor(down)}s after success, with ${p.revision} on ${c.nodesUpdated ?? 0} nodes; breakGlass.afterSuccess is Manual: if the agents are the cause, run kubectl tro break-glass ${p.rollout.metadata?.name ?? ''} --cluster ${c.name}`;
  // The event once per outage (the message's seconds change every pass).
  if (!c.message?.includes('breakGlass.afterSuccess is Manual')) p.record('Warning', REASON.BreakGlass, msg, c.name);
  c.message = msg;
  p.requeue(Math.min(30_000, bg.unreachableAfterSeconds * 1000));
}

/**
 * The clusters with an open incident of the current revision: the candidate runs there and its API
 * server is (or was, and the stop files are still in place) unreachable, or refuses the rollback. While
 * there are any, a new revision waits (see the reconciler): break-glass must stay armed for them.
 */
export function openIncident(clusters: readonly ClusterStatus[]): string[] {
  return clusters
    .filter((c) => (c.nodesUpdated ?? 0) > 0 && c.phase !== 'RolledBack')
    .filter((c) => c.reachable === false || c.refusedSince !== undefined || (c.breakGlass?.issuedAt !== undefined && c.breakGlass.clearedAt === undefined))
    .map((c) => c.name);
}

/**
 * A new revision (a spec change) waits while an incident of the current one is open: superseding would
 * forget the current revision's clusters, and the stop files it owes them, and plan anew, which waits
 * for every target to answer. The clusters running the candidate that are not marked yet are probed
 * now (the edit may land before any pass saw the outage). Sets `p.revision` back to the current one.
 */
export async function deferRevisionDuringIncident(p: Pass): Promise<void> {
  const current = p.status.revision;
  if (!current || current === p.revision) return;
  const clusters = p.status.clusters ?? [];
  const open = new Set(openIncident(clusters));
  const unmarked = clusters.filter((c) => (c.nodesUpdated ?? 0) > 0 && c.phase !== 'RolledBack' && !open.has(c.name));
  await mapLimit(unmarked, PROBE_CONCURRENCY, async (c) => {
    const probe = await p.clients.get(c.name)?.probe();
    if (probe && !probe.reachable) open.add(c.name);
  });
  if (open.size === 0) return;
  p.deferredRevision = { revision: p.revision, clusters: [...open].sort() };
  p.revision = current;
}

/** Whether a cluster needs break-glass and has no confirmed stop (the BreakGlassNeeded condition). */
export function breakGlassNeeded(p: Pass, c: ClusterStatus): boolean {
  if (c.reachable !== false || (c.nodesUpdated ?? 0) === 0 || c.phase === 'RolledBack') return false;
  if (rolloutCapabilities(p.status.phase).afterSuccessPolicy && p.rollout.spec.breakGlass.afterSuccess === 'Off') return false;
  if (since(p.now, c.unreachableSince) < p.rollout.spec.breakGlass.unreachableAfterSeconds) return false;
  const b = c.breakGlass;
  return !(b?.revision === p.revision && b.issuedAt && !b.clearedAt && !b.inProgress && confirmed(b, c));
}

/**
 * Issues break-glass for an unreachable cluster running the candidate, when it is due. `fleet` (a
 * rollout under way) also halts the fleet and moves the rollout's phase; after success it does not.
 */
export async function maybeBreakGlass(p: Pass, c: ClusterStatus, from = c.unreachableSince, why = 'API server unreachable', fleet = true): Promise<void> {
  const bg = p.rollout.spec.breakGlass;
  const down = since(p.now, from);
  if (down < bg.unreachableAfterSeconds) {
    p.requeue((bg.unreachableAfterSeconds - down) * 1000);
    return;
  }
  const prev = c.breakGlass?.revision === p.revision && c.breakGlass.issuedAt && !c.breakGlass.clearedAt ? c.breakGlass : undefined;
  if (prev && confirmed(prev, c)) return;
  if (prev && !prev.inProgress) {
    // Some node did not confirm (failed, timed out, or the whole attempt failed): send again, backing off.
    const wait = retryDelaySeconds(prev.attempts ?? 1) - since(p.now, prev.lastAttemptAt ?? prev.issuedAt);
    if (wait > 0) {
      p.requeue(wait * 1000);
      return;
    }
  }
  const actuator = p.ctx.d.breakGlass;
  if (bg.action !== 'Auto' || !actuator?.available(p.rollout)) {
    const how = `kubectl tro break-glass ${p.rollout.metadata?.name ?? ''} --cluster ${c.name}`;
    const msg = `${why} for ${Math.floor(down)}s with ${p.revision} on ${c.nodesUpdated ?? 0} nodes: break-glass needed (${bg.action === 'Auto' ? 'no transport configured' : 'action is Manual'}); run: ${how}`;
    if (c.message !== msg) p.record('Warning', REASON.BreakGlass, msg, c.name);
    c.message = msg;
    return;
  }
  if (fleet) haltFleet(p, `break-glass on ${c.name}`);
  // The actuator returns at once: the nodes are written in the background (inProgress), and a later
  // pass reads the outcome. An attempt counts when it starts; the wait between attempts backs off.
  const result = await actuator.issue(p.rollout, c.name, p.revision, `${why} for ${Math.floor(down)}s`, {
    ...(prev?.issuedAt ? { issuedAt: prev.issuedAt } : {}),
  });
  const started = !prev?.inProgress;
  const attempts = (prev?.attempts ?? 0) + (started ? 1 : 0);
  const lastAttemptAt = started ? iso(p.now) : (prev.lastAttemptAt ?? iso(p.now));
  c.breakGlass = { ...result, revision: p.revision, issuedAt: prev?.issuedAt ?? result.issuedAt ?? iso(p.now), lastAttemptAt, attempts };
  if (!result.inProgress) delete c.breakGlass.inProgress;
  if (result.inProgress && prev) {
    // While an attempt runs, the previous one's failures are still the latest known.
    if (prev.failingNodes?.length) c.breakGlass.failingNodes = prev.failingNodes;
    c.breakGlass.nodesFailed = prev.nodesFailed ?? 0;
    c.breakGlass.nodesTimedOut = prev.nodesTimedOut ?? 0;
  }
  if (!c.breakGlass.failingNodes?.length) delete c.breakGlass.failingNodes;
  if (fleet) p.clusterEvent(c, 'BreakGlassIssued');
  const ok = !result.inProgress && confirmed(c.breakGlass, c);
  const counts = `stop files on ${result.nodesStopped ?? 0}/${result.nodesTargeted ?? 0} nodes`;
  c.message = result.inProgress
    ? `break-glass (${why} for ${Math.floor(down)}s): ${result.message ?? counts}${attempts > 1 ? `, attempt ${attempts}` : ''}`
    : `break-glass: ${counts} (${result.nodesFailed ?? 0} failed, ${result.nodesTimedOut ?? 0} timed out)${attempts > 1 ? `, attempt ${attempts}` : ''}${ok ? '' : `; retrying in ${retryDelaySeconds(attempts)}s`}${result.message && !ok ? `: ${result.message}` : ''}`;
  const before = p.status.phase;
  if (fleet) p.rolloutEvent('BreakGlassIssued', REASON.BreakGlass);
  if (p.status.phase === 'BreakGlass') {
    delete p.status.completedAt;
    p.status.reason = REASON.BreakGlass;
    p.status.message = `${c.name}: ${c.message}`;
  } else if (before === 'RollingBack' && !prev) {
    // The rollback goes on for the clusters it can reach; its reason stays the one that started it.
    p.status.message = `${p.status.message ?? 'rolling back'}; ${c.name}: ${c.message}`;
  }
  if (result.inProgress) p.requeue(IN_PROGRESS_POLL_MS);
  else if (!ok) p.requeue(retryDelaySeconds(attempts) * 1000);
  // The start, and any outcome that changes how many nodes confirmed, goes into history (a long outage
  // must not flush it with identical retries).
  if (!prev || (!result.inProgress && (prev.nodesStopped !== result.nodesStopped || ok))) p.record('Warning', REASON.BreakGlass, c.message, c.name);
}

/** How often a pass looks at an attempt under way (the attempt itself never waits for a pass). */
export const IN_PROGRESS_POLL_MS = 1000;

/**
 * Whether every node a break-glass attempt targeted confirmed its stop file. An attempt that reached no
 * node while the cluster runs the candidate (an inventory that missed the latest batch) confirms nothing.
 */
function confirmed(b: BreakGlassStatus, c: ClusterStatus): boolean {
  if ((b.nodesTargeted ?? 0) === 0 && (c.nodesUpdated ?? 0) > 0) return false;
  return (
    (b.nodesFailed ?? 0) === 0 &&
    (b.nodesTimedOut ?? 0) === 0 &&
    (b.nodesStopped ?? 0) >= (b.nodesTargeted ?? 0) &&
    !(b.message ?? '').startsWith('break-glass failed')
  );
}

/** Backoff between attempts: 5 s, 10 s, 20 s, 40 s, then every 60 s for as long as the outage lasts. */
export function retryDelaySeconds(attempts: number): number {
  return Math.min(60, 5 * 2 ** Math.max(0, attempts - 1));
}
