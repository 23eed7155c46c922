/**
 * The fleet the replay runs on: cluster names and node counts. The default shape is the incident's:
 * about 150 clusters whose sizes are log-normal (median 400 nodes, sigma 1.0 in log space) clipped to
 * 50..7,500, with the smallest and the largest pinned at 50 and 7,500 so that every seed has both ends.
 * The quick fleet (for CI) is 10 clusters, median 300, clipped to 50..2,000. `--fleet FILE`
 * reads a JSON array of `{ "name": "...", "nodes": N }` instead.
 */
import { readFileSync } from 'node:fs';
import { Rng } from './engine.js';

/** One cluster of a fleet. */
export interface ClusterShape {
  name: string;
  nodes: number;
}

/** Parameters of a generated fleet. */
export interface FleetShape {
  clusters: number;
  minNodes: number;
  maxNodes: number;
  medianNodes: number;
  sigma: number;
}

/** The incident's fleet. */
export const FULL_FLEET: FleetShape = { clusters: 150, minNodes: 50, maxNodes: 7500, medianNodes: 400, sigma: 1.0 };
/** The quick fleet: small enough for a CI test, large enough that its biggest API servers fall. */
export const QUICK_FLEET: FleetShape = { clusters: 10, minNodes: 50, maxNodes: 2000, medianNodes: 300, sigma: 1.0 };

/** A seeded fleet of the given shape, largest cluster first (names c000, c001, ... by size rank). */
export function generateFleet(shape: FleetShape, seed: number): ClusterShape[] {
  const rng = new Rng(seed ^ 0x5eed);
  const sizes: number[] = [shape.maxNodes, shape.minNodes];
  while (sizes.length < shape.clusters) {
    const n = Math.round(rng.logNormal(shape.medianNodes, shape.sigma));
    sizes.push(Math.min(shape.maxNodes, Math.max(shape.minNodes, n)));
  }
  sizes.sort((a, b) => b - a);
  return sizes.map((nodes, i) => ({ name: `c${String(i).padStart(3, '0')}`, nodes }));
}

/** Reads a fleet file: a JSON array of `{ name, nodes }`. */
export function loadFleet(path: string): ClusterShape[] {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as unknown;
  if (!Array.isArray(raw)) throw new Error(`${path}: expected a JSON array of { name, nodes }`);
  return raw.map((c: unknown, i) => {
    const o = c as Partial<ClusterShape>;
    if (typeof o.name !== 'string' || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(o.name) || typeof o.nodes !== 'number' || !(o.nodes >= 1)) {
      throw new Error(`${path}[${i}]: need { "name": a DNS label, "nodes": a positive number }`);
    }
    return { name: o.name, nodes: Math.round(o.nodes) };
  });
}

/** Fleet summary for the report: clusters, nodes, and size quantiles. */
export function describeFleet(fleet: ClusterShape[]): { clusters: number; nodes: number; p50: number; p90: number; max: number; min: number } {
  const s = fleet.map((c) => c.nodes).sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
  return { clusters: s.length, nodes: s.reduce((a, b) => a + b, 0), p50: q(0.5), p90: q(0.9), max: s[s.length - 1] ?? 0, min: s[0] ?? 0 };
}
