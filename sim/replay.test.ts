/**
 * The replay's outcomes, not its timings: without the operator the bad revision takes down the large
 * clusters' API servers (the model bites); with the operator's defaults, a cluster whose API server
 * falls anyway ends with every bad agent stopped (break-glass through the simulated transport); a good
 * revision completes; the same seed gives the same result.
 *
 * The operator-defaults case runs on the full fleet: its canary is the incident's largest cluster
 * (7,500 nodes), the one whose API server falls even at 1 % of its nodes; it is cheap to simulate
 * because the canary stops the rollout. The others run on the quick fleet.
 */
import { describe, expect, it } from '@jest/globals';
import { FULL_FLEET, generateFleet, QUICK_FLEET } from './fleet.js';
import { loadModel } from './model/calibration.js';
import { FULL_HORIZONS, QUICK_HORIZONS, runScenario, type ReplayOptions } from './replay.js';

const model = loadModel();
const quick: ReplayOptions = { seed: 1, model, fleet: generateFleet(QUICK_FLEET, 1), horizons: QUICK_HORIZONS };
// 20 minutes are enough to see the canary fall and recover; the full replay goes on for an hour more
// (the rollback's clearing of stop files on 7,500 nodes is retried all that time).
const full: ReplayOptions = { seed: 1, model, fleet: generateFleet(FULL_FLEET, 1), horizons: { ...FULL_HORIZONS, 'operator-defaults': 1200 } };

describe('bench:replay', () => {
  it('without the operator, the bad revision reaches every node and the largest API server falls', async () => {
    const r = await runScenario('incident', quick);
    expect(r.exposedFraction).toBeGreaterThan(0.9);
    const largest = quick.fleet[0]!;
    const stats = r.clusters.find((c) => c.name === largest.name);
    expect(stats?.crashes).toBeGreaterThan(0);
    expect(stats?.downSeconds).toBeGreaterThan(0);
    // Nothing stops the agents: the fleet is still unhealthy at the end.
    expect(r.recoverSeconds).toBeNull();
    expect(r.badAgentsActiveAtEnd).toBeGreaterThan(0);
  }, 60_000);

  it('is deterministic: the same seed gives the same result', async () => {
    const a = await runScenario('incident', quick);
    const b = await runScenario('incident', quick);
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    const c = await runScenario('incident', { ...quick, seed: 2 });
    expect(JSON.stringify(c)).not.toBe(JSON.stringify(a));
    // With the operator in the loop too (its passes, gates and break-glass interleave on virtual time).
    const d = await runScenario('operator-defaults', quick);
    const e = await runScenario('operator-defaults', quick);
    expect(JSON.stringify(d)).toBe(JSON.stringify(e));
  }, 60_000);

  it('with the operator defaults, a cluster whose API server falls anyway has every bad agent stopped', async () => {
    const r = await runScenario('operator-defaults', full);
    const crashed = r.clusters.filter((c) => c.crashes > 0);
    // The canary (the largest cluster) falls at 1 % of its nodes: the case break-glass is for.
    expect(crashed.map((c) => c.name)).toContain(full.fleet[0]!.name);
    for (const c of crashed) expect(c.badActiveAtEnd).toBe(0);
    expect(r.badAgentsActiveAtEnd).toBe(0);
    // Only the canary's first step was exposed, far less than without the operator.
    expect(r.exposedNodes).toBeGreaterThan(0);
    expect(r.exposedNodes).toBeLessThanOrEqual(Math.ceil(full.fleet[0]!.nodes * 0.01) + 1);
    expect(r.detectionSeconds).not.toBeNull();
    // The promise: at most 1 % of the fleet's nodes exposed with the defaults (it holds in this model).
    expect(r.exposedFraction).toBeLessThanOrEqual(0.01);
  }, 60_000);

  it('a good revision completes on a fleet whose nodes are all Ready', async () => {
    const r = await runScenario('healthy-ready', quick);
    expect(r.finalPhase).toBe('Succeeded');
    expect(r.completeSeconds).not.toBeNull();
    expect(r.exposedNodes).toBe(0);
    expect(r.clustersCrashed).toBe(0);
  }, 120_000);
});
