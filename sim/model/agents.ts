/**
 * What one node agent costs its cluster's API server, per behaviour, from the repository's own load
 * model (collector/src/estimate.ts) rather than re-derived here: the frugal (Kubelet) mode, and the
 * incident's defect, an agent declared frugal that nonetheless LISTs pods, services and endpoints
 * cluster-wide without resourceVersion, which is exactly the Naive mode's cost. Preflight judges the
 * declared configuration, so it lets the defect through; only the gates can see it.
 */
import { estimateApiLoad } from '#collector/estimate.js';
import type { Demand } from './apiserver.js';
import type { Model } from './calibration.js';

/** How an agent behaves on the API server (what the image does, whatever its config declares). */
export type Behaviour = 'frugal' | 'list-everything';

/** The demand of `agents` agents of one behaviour on a cluster of `nodes` nodes. */
export function agentDemand(model: Model, behaviour: Behaviour, nodes: number, agents: number): Demand {
  if (agents <= 0 || nodes <= 0) return { smallRps: 0, listRps: 0, listBytes: 0 };
  const pods = Math.round(nodes * model.cluster.podsPerNode);
  const services = Math.round(pods * model.cluster.servicesPerPod);
  const size = { nodes, pods, services, endpointSlices: services };
  const config =
    behaviour === 'frugal'
      ? { metadata: { mode: 'Kubelet' as const } }
      : { metadata: { mode: 'Naive' as const, naiveRelistSeconds: model.agents.defectRelistSeconds } };
  const e = estimateApiLoad(config, size);
  const share = agents / nodes;
  let listRps = 0;
  let listBytesPerSecond = 0;
  let smallRps = 0;
  for (const c of e.breakdown) {
    // The watcher's share is the same with one agent or all: count it only for node agents' lines.
    const perNode = c.instances === nodes ? share : 0;
    if (c.verb === 'list' && c.quorumListsPerSecond > 0) {
      listRps += c.requestsPerSecond * perNode;
      listBytesPerSecond += c.bytesPerSecond * perNode;
    } else if (c.verb !== 'watch') {
      smallRps += c.requestsPerSecond * perNode;
    }
  }
  return { smallRps, listRps, listBytes: listRps > 0 ? listBytesPerSecond / listRps : 0 };
}

/** Adds demands (LIST sizes weighted by their rates). */
export function addDemand(a: Demand, b: Demand): Demand {
  const listRps = a.listRps + b.listRps;
  return { smallRps: a.smallRps + b.smallRps, listRps, listBytes: listRps > 0 ? (a.listRps * a.listBytes + b.listRps * b.listBytes) / listRps : 0 };
}
