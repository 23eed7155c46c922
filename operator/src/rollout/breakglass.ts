/**
 * Break-glass in the rollout: when a target running the candidate has been unreachable for
 * unreachableAfterSeconds, Auto writes the stop files (once per revision) through the actuator; Manual,
 * or no transport, only reports what a person should run.
 */
import type { ClusterStatus } from '../api/types.generated.js';
import { REASON } from './conditions.js';
import { since, type Pass } from './pass.js';
import { haltFleet } from './rollback.js';

/** Issues break-glass for an unreachable cluster running the candidate, when it is due. */
export async function maybeBreakGlass(p: Pass, c: ClusterStatus): Promise<void> {
  const bg = p.rollout.spec.breakGlass;
  const down = since(p.now, c.unreachableSince);
  if (down < bg.unreachableAfterSeconds) {
    p.requeue((bg.unreachableAfterSeconds - down) * 1000);
    return;
  }
  if (c.breakGlass?.revision === p.revision && c.breakGlass.issuedAt && !c.breakGlass.clearedAt) return;
  const actuator = p.ctx.d.breakGlass;
  if (bg.action !== 'Auto' || !actuator?.available(p.rollout)) {
    const how = `kubectl tro break-glass ${p.rollout.metadata?.name ?? ''} --cluster ${c.name}`;
    const msg = `API server unreachable for ${Math.floor(down)}s with ${p.revision} on ${c.nodesUpdated ?? 0} nodes: break-glass needed (${bg.action === 'Auto' ? 'no transport configured' : 'action is Manual'}); run: ${how}`;
    if (c.message !== msg) p.record('Warning', REASON.BreakGlass, msg, c.name);
    c.message = msg;
    return;
  }
  haltFleet(p, c.name);
  const result = await actuator.issue(p.rollout, c.name, p.revision, `API server unreachable for ${Math.floor(down)}s`);
  c.breakGlass = { ...result, revision: p.revision };
  p.clusterEvent(c, 'BreakGlassIssued');
  c.message = `break-glass: stop files on ${result.nodesStopped ?? 0}/${result.nodesTargeted ?? 0} nodes (${result.nodesFailed ?? 0} failed, ${result.nodesTimedOut ?? 0} timed out)`;
  p.rolloutEvent('BreakGlassIssued', REASON.BreakGlass);
  p.status.reason = REASON.BreakGlass;
  p.status.message = `${c.name}: ${c.message}`;
  p.record('Warning', REASON.BreakGlass, c.message, c.name);
}
