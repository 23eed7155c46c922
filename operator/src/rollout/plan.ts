/**
 * Rollout planning arithmetic: how many nodes a step covers, the order of clusters, and which clusters
 * each stage takes. Pure functions, so the plan is the same on every replica and after every restart.
 */
import type { StageSpec, StrategySpec } from '../api/types.generated.js';

/**
 * Nodes a step of `percent` covers in a cluster of `total` nodes: ceil(percent/100 x total), so any
 * step above 0 % of a non-empty cluster covers at least one node (1 % of 7 nodes is 1 node), and 100 %
 * covers every node. Integer arithmetic avoids float error (ceil(0.07 * 100) would be 8).
 */
export function nodesForStep(percent: number, total: number): number {
  if (total <= 0 || percent <= 0) return 0;
  return Math.min(total, Math.ceil((percent * total) / 100));
}

/** A cluster as planning sees it. */
export interface PlanInput {
  name: string;
  nodes: number;
}

/**
 * Orders clusters: LargestFirst by node count, largest first (ties by name, for determinism); AsListed
 * keeps the targets' order.
 */
export function orderClusters(clusters: PlanInput[], order: StrategySpec['order']): PlanInput[] {
  if (order === 'AsListed') return [...clusters];
  return [...clusters].sort((a, b) => b.nodes - a.nodes || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Assigns ordered clusters to stages. A stage takes `clusters` clusters, or `percent` of all targets
 * (rounded up, at least one); a stage setting neither, and the last stage always, take every cluster
 * not yet taken. Stages that find no cluster left are empty.
 */
export function assignStages(ordered: PlanInput[], stages: StageSpec[]): Array<{ stage: StageSpec; clusters: PlanInput[] }> {
  const total = ordered.length;
  let next = 0;
  return stages.map((stage, i) => {
    let take: number;
    if (i === stages.length - 1) take = total - next;
    else if (stage.clusters !== undefined) take = stage.clusters;
    else if (stage.percent !== undefined) take = Math.max(1, Math.ceil((stage.percent * total) / 100));
    else take = total - next;
    const clusters = ordered.slice(next, Math.min(total, next + take));
    next += clusters.length;
    return { stage, clusters };
  });
}

/**
 * The bake a step needs: bakeSeconds, or the signal lag when that is longer: a regression shows in
 * DNS only after the cache TTL, in a Prometheus source only after a scrape, and in a measurement only
 * after a whole gate window.
 */
export function effectiveBakeSeconds(bakeSeconds: number, lag: { cacheTTLSeconds: number; scrapeIntervalSeconds: number; windowSeconds: number }): number {
  return Math.max(bakeSeconds, lag.cacheTTLSeconds + lag.scrapeIntervalSeconds + lag.windowSeconds);
}
