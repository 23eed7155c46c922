/**
 * What one node agent costs its cluster's API server, per behaviour, from the repository's own load
 * model (collector/src/estimate.ts) rather than re-derived here: the frugal (Kubelet) mode, and the
 * incident's defect, an agent declared frugal that nonetheless LISTs pods, services and endpoints
 * cluster-wide without resourceVersion, which is exactly the Naive mode's cost. Preflight judges the
 * declared configuration, so it lets the defect through; only the gates can see it.
 */
import { estimateApiLoad } from '#collector/estimate.js';
import { NO_DEMAND, type Demand, type ListClass } from './apiserver.js';
import type { Model } from './calibration.js';

/** How an agent behaves on the API server (what the image does, whatever its config declares). */
export type Behaviour = 'frugal' | 'list-everything';

/** The demand of `agents` agents of one behaviour on a cluster of `nodes` nodes. */
export function agentDemand(model: Model, behaviour: Behaviour, nodes: number, agents: number): Demand {
  if (agents <= 0 || nodes <= 0) return NO_DEMAND;
  const pods = Math.round(nodes * model.cluster.podsPerNode);
  const services = Math.round(pods * model.cluster.servicesPerPod);
  const size = { nodes, pods, services, endpointSlices: services };
  const config =
    behaviour === 'frugal'
      ? { metadata: { mode: 'Kubelet' as const } }
      : { metadata: { mode: 'Naive' as const, naiveRelistSeconds: model.agents.defectRelistSeconds } };
  const e = estimateApiLoad(config, size);
  const share = agents / nodes;
  const lists: ListClass[] = [];
  let smallRps = 0;
  for (const c of e.breakdown) {
    // The watcher's share is the same with one agent or all: count only the node agents' lines.
    if (c.instances !== nodes) continue;
    if (c.verb === 'list' && c.quorumListsPerSecond > 0 && c.requestsPerSecond > 0) {
      lists.push({ rps: c.requestsPerSecond * share, bytes: c.bytesPerSecond / c.requestsPerSecond });
    } else if (c.verb !== 'watch') {
      smallRps += c.requestsPerSecond * share;
    }
  }
  return { smallRps, lists };
}

/** Adds demands (LIST classes of the same size merge). */
export function addDemand(a: Demand, b: Demand): Demand {
  const lists = a.lists.map((l) => ({ ...l }));
  for (const l of b.lists) {
    const same = lists.find((x) => x.bytes === l.bytes);
    if (same) same.rps += l.rps;
    else lists.push({ ...l });
  }
  return { smallRps: a.smallRps + b.smallRps, lists };
}
