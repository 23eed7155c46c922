/**
 * The start of a revision's rollout: a new revision supersedes the old one (SpecChanged), then the plan
 * (every target's size, the order, each cluster's stage) is made once every target can be counted.
 */
import type { ClusterStatus } from '../api/types.generated.js';
import { errorMessage } from '../util/errors.js';
import { REASON } from './conditions.js';
import { iso, type Pass } from './pass.js';
import { assignStages, orderClusters } from './plan.js';

/** A new revision (changed image or config) starts a new rollout; the old one is superseded. */
export function startRevisionIfChanged(p: Pass): void {
  const s = p.status;
  if (s.revision === p.revision) return;
  if (s.revision) {
    // The previous revision becomes the rollback target only if it had completed; otherwise the
    // stable revision before it still is.
    if (s.phase === 'Succeeded') s.previousRevision = s.revision;
    p.record('Normal', REASON.RevisionStarted, `revision ${p.revision} supersedes ${s.revision}`);
  } else {
    p.record('Normal', REASON.RevisionStarted, `rolling out revision ${p.revision}`);
  }
  if (s.phase) p.rolloutEvent('SpecChanged');
  else s.phase = 'Pending';
  delete s.reason;
  s.revision = p.revision;
  s.clusters = [];
  s.stage = '';
  s.stageIndex = 0;
  s.startedAt = iso(p.now);
  delete s.completedAt;
  s.health = 'Unknown';
}

/**
 * Whether the pass must (still) plan: the rollout is Pending, or it is moving forward without a plan
 * (retried after an abort that came while it waited for its targets). A rollout rolled back or failed
 * before it had a plan stays so: planning is not a way out of a terminal phase.
 */
export const needsPlan = (p: Pass): boolean => (p.status.phase ?? 'Pending') === 'Pending' || (p.status.phase === 'Progressing' && !p.status.clusters?.length);

/**
 * Plans the rollout once: every target's node count (for LargestFirst), the order, and the stage of
 * each cluster. Waits (phase Pending) until every target can be counted: a plan made without the
 * largest cluster would put the wrong cluster first.
 */
export async function plan(p: Pass): Promise<void> {
  const s = p.status;
  s.phase ??= 'Pending';
  const sizes: Array<{ name: string; nodes: number }> = [];
  const waiting: string[] = [];
  for (const t of p.targets) {
    const c = p.clients.get(t.name);
    if (!c) {
      waiting.push(`${t.name} (${p.unavailable.get(t.name) ?? 'unavailable'})`);
      continue;
    }
    try {
      sizes.push({ name: t.name, nodes: (await c.listNodes()).length });
    } catch (err) {
      waiting.push(`${t.name} (unreachable: ${errorMessage(err)})`);
    }
  }
  if (p.targetsError) waiting.push(p.targetsError);
  if (waiting.length || p.targets.length === 0) {
    s.message = p.targets.length === 0 && !waiting.length ? 'no target clusters found' : `waiting for clusters: ${waiting.join('; ')}`;
    p.requeue(15_000);
    return;
  }
  const ordered = orderClusters(sizes, p.rollout.spec.strategy.order);
  const stages = assignStages(ordered, p.rollout.spec.strategy.stages);
  s.clusters = stages.flatMap(({ stage, clusters }) =>
    clusters.map((c): ClusterStatus => ({ name: c.name, stage: stage.name, phase: 'Pending', nodesTotal: c.nodes, nodesUpdated: 0, revision: p.revision })),
  );
  p.rolloutEvent('Planned');
  s.message = `planned ${s.clusters.length} clusters: ${stages
    .filter((x) => x.clusters.length)
    .map((x) => `${x.stage.name}=[${x.clusters.map((c) => c.name).join(',')}]`)
    .join(' ')}`;
  p.record('Normal', REASON.Planning, s.message);
}
