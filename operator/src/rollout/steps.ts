/**
 * One node step of a cluster: it begins (baseline first, then relabelling), its nodes are labelled
 * (paced) and their agents become ready, then it bakes until the bake is long enough and a gate
 * evaluation since the bake began passes; then the next step begins, or the cluster is done.
 */
import type { ClusterStatus, StageSpec } from '../api/types.generated.js';
import { recordInventory } from './inventory.js';
import { REASON } from './conditions.js';
import { bakeSeconds } from './controls.js';
import { REVISION_LABEL, type ClusterClient } from './interfaces.js';
import { iso, since, type Pass } from './pass.js';
import { nodesForStep } from './plan.js';
import { haltFleet, startRollback } from './rollback.js';

/** Starts step `step`: baseline first (the state before the step), then relabelling begins. */
export async function beginStep(p: Pass, c: ClusterStatus, client: ClusterClient, stage: StageSpec, step: number): Promise<void> {
  const target = p.target(c.name);
  if (target) {
    const capture = await p.ctx.d.gates.captureBaseline({ rollout: p.rollout, target, client, fraction: p.fraction(c), consecutiveFailures: 0 });
    if (capture.retryAfterMs !== undefined) {
      // The step has not begun: this pass ends here and the next one comes back to this point (the
      // work before it is idempotent), so nothing is skipped or done twice.
      c.message = `step ${step + 1}/${stage.nodeSteps.length}: ${capture.message ?? 'measuring the baseline'}`;
      p.requeue(capture.retryAfterMs);
      return;
    }
    if (capture.baseline) c.baseline = capture.baseline;
  }
  p.clusterEvent(c, 'StepBegan');
  c.step = step;
  c.stepPercent = stage.nodeSteps[step] ?? 100;
  c.stepStartedAt = iso(p.now);
  c.progressedAt = c.stepStartedAt;
  delete c.nodesReady;
  delete c.bakeStartedAt;
  c.message = `step ${step + 1}/${stage.nodeSteps.length}: moving to ${c.stepPercent}% of nodes`;
  p.record('Normal', REASON.StepStarted, `${c.name}: step ${step + 1}/${stage.nodeSteps.length} (${c.stepPercent}% of nodes)`, c.name);
  p.requeue(0);
}

/** Labels the step's nodes (paced), then waits for their agents; then the bake starts. */
export async function relabelStep(p: Pass, c: ClusterStatus, client: ClusterClient): Promise<void> {
  const nodes = [...(await client.listNodes())].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  c.nodesTotal = nodes.length;
  const want = nodesForStep(c.stepPercent ?? 0, nodes.length);
  let labelled = nodes.filter((n) => n.labels[REVISION_LABEL] === p.revision).length;
  const justLabelled = new Set<string>();
  try {
    for (const n of nodes) {
      if (labelled >= want) break;
      if (n.labels[REVISION_LABEL] === p.revision) continue;
      if (!p.takeRelabelToken(c.name)) break;
      await client.setNodeRevision(n.name, p.revision);
      justLabelled.add(n.name);
      labelled++;
    }
  } finally {
    // The inventory break-glass works from includes the batch just labelled (even when a relabel in
    // it failed): the API server that may go next is exactly the one this batch loads.
    const seen = nodes.map((n) => (justLabelled.has(n.name) ? { ...n, labels: { ...n.labels, [REVISION_LABEL]: p.revision } } : n));
    await recordInventory(p, c, client, seen);
  }
  c.nodesUpdated = labelled;
  // Progress resets the deadline (as a Deployment's progressDeadlineSeconds): a node labelled now.
  if (justLabelled.size > 0) c.progressedAt = iso(p.now);
  const step = (c.step ?? 0) + 1;
  if (labelled < want) {
    c.message = `step ${step}: labelled ${labelled}/${want} nodes`;
    p.requeue(p.relabelIntervalMs());
    return;
  }
  const ds = (await client.listCollectorDaemonSets(p.rollout.spec.collector.namespace, p.rolloutLabel)).find((d) => d.revision === p.revision);
  const ready = ds ? ds.numberReady : 0;
  // ... or one more agent ready than at the last look.
  if (ready > (c.nodesReady ?? 0)) c.progressedAt = iso(p.now);
  c.nodesReady = ready;
  if (!ds || !ds.observed || ds.desiredNumberScheduled < labelled || ready < labelled) {
    c.message = `step ${step}: ${ready}/${labelled} agents ready`;
    const deadline = p.ctx.progressDeadlineSeconds;
    if (since(p.now, c.progressedAt ?? c.stepStartedAt) > deadline) {
      c.message = `step ${step}: only ${ready}/${labelled} agents ready, none more for ${deadline}s`;
      p.clusterEvent(c, 'ProgressDeadlineExceeded');
      haltFleet(p, `progress deadline on ${c.name}`);
      startRollback(p, 'ProgressDeadlineExceeded', REASON.ProgressDeadlineExceeded, `${c.name}: ${c.message}`);
      return;
    }
    p.requeue(p.ctx.pollMs);
    return;
  }
  p.clusterEvent(c, 'StepReady');
  c.bakeStartedAt = iso(p.now);
  c.message = `step ${step}: ${labelled}/${nodes.length} nodes on ${p.revision}; baking`;
  p.record('Normal', REASON.StepBaking, `${c.name}: ${labelled}/${nodes.length} nodes on the new revision; baking`, c.name);
  p.requeue(0);
}

/** Bakes a step: long enough, and the latest gate verdict since the bake began is Pass. */
export async function bake(p: Pass, c: ClusterStatus, client: ClusterClient, stage: StageSpec): Promise<void> {
  const g = p.rollout.spec.gates;
  const need = bakeSeconds(p, c);
  const baked = since(p.now, c.bakeStartedAt);
  const step = (c.step ?? 0) + 1;
  if (baked < need) {
    c.message = `step ${step}: baking ${Math.floor(baked)}/${need}s`;
    p.requeue((need - baked) * 1000);
    return;
  }
  const gate = c.lastGate;
  const gateSinceBake = gate?.time && Date.parse(gate.time) >= Date.parse(c.bakeStartedAt ?? '') ? gate : undefined;
  const ok = gateSinceBake && (gateSinceBake.verdict === 'Pass' || (gateSinceBake.verdict === 'NoData' && g.onNoData === 'Ignore'));
  if (!ok) {
    c.message = `step ${step}: bake done; waiting for a passing gate evaluation`;
    p.requeue(g.intervalSeconds * 1000);
    return;
  }
  if (step >= stage.nodeSteps.length) {
    p.clusterEvent(c, 'LastStepBaked');
    c.message = `all ${c.nodesTotal ?? 0} nodes on ${p.revision}`;
    p.record('Normal', REASON.ClusterSucceeded, `${c.name}: all ${c.nodesTotal ?? 0} nodes on the new revision`, c.name);
    p.requeue(0);
    return;
  }
  const project = p.ctx.d.gates.project?.bind(p.ctx.d.gates);
  const target = p.target(c.name);
  if (g.prediction.enabled && project && target) {
    const proj = await project({
      rollout: p.rollout,
      target,
      client,
      baseline: c.baseline,
      fraction: p.fraction(c),
      consecutiveFailures: 0,
      projection: c.projection,
    });
    if (proj) {
      c.projection = proj;
      if (proj.verdict === 'Fail') {
        c.message = `next step refused: ${proj.message ?? 'projection exceeds the SLO'}`;
        haltFleet(p, `projection over the SLO on ${c.name}`);
        p.rolloutEvent('ProjectionExceedsSLO', REASON.ProjectionExceedsSLO);
        p.record('Warning', REASON.ProjectionExceedsSLO, `${c.name}: ${c.message}`, c.name);
        return;
      }
    }
  }
  await beginStep(p, c, client, stage, step);
}
