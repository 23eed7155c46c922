/**
 * The node inventory break-glass works from: every node, with the revisions of our pods seen running on
 * it. Pods, not labels, say where an agent runs: the cluster-mode watcher runs on whichever node it was
 * scheduled (often one without our label), and an agent outlives its node's relabel until it exits.
 */
import type { ClusterStatus } from '../api/types.generated.js';
import { errorMessage } from '../util/errors.js';
import { REASON } from './conditions.js';
import type { ClusterClient, NodeInfo } from './interfaces.js';
import { POD_LIST_INTERVAL_MS, type Pass } from './pass.js';

/** Nodes named in the event when nodes leave the inventory; the rest are counted. */
const MAX_NAMED = 10;

/**
 * Records `nodes` (the live list the caller just read, with any labels it just set) together with the
 * pods of the collector, after each relabel batch, so the inventory never lags by a batch (the batch's
 * labels are in `nodes`; pods are listed at most every POD_LIST_INTERVAL_MS). A failed pod list keeps
 * the pods last seen (labels still cover the agents); nodes gone from the cluster leave the inventory,
 * with an event.
 */
export async function recordInventory(p: Pass, c: ClusterStatus, client: ClusterClient, nodes: readonly NodeInfo[]): Promise<void> {
  const recorder = p.ctx.d.inventory;
  if (!recorder) return;
  const key = `${p.rolloutLabel}/${c.name}`;
  let seen = p.ctx.pods.get(key);
  // Listed again when stale, and always at preflight (the cluster's first inventory of this revision).
  // Until the candidate's watcher has been seen on a node, every batch looks for it (it is scheduled
  // moments after preflight applies its Deployment, and it is the pod labels do not cover).
  const watcherMissing = p.rollout.spec.collector.config?.clusterWatcher?.enabled !== false && !seen?.watchers.has(p.revision);
  if (!seen || watcherMissing || c.phase === 'Preflight' || p.now.getTime() - seen.at >= POD_LIST_INTERVAL_MS) {
    try {
      const runs = new Map<string, Set<string>>();
      const watchers = new Set<string>();
      for (const pod of await client.listCollectorPods(p.rollout.spec.collector.namespace)) {
        if (pod.node === '') continue;
        let set = runs.get(pod.node);
        if (!set) runs.set(pod.node, (set = new Set()));
        set.add(pod.revision);
        if (pod.mode === 'cluster') watchers.add(pod.revision);
      }
      seen = { at: p.now.getTime(), runs, watchers };
      p.ctx.pods.set(key, seen);
    } catch (err) {
      p.ctx.d.logger?.warn('listing collector pods for the inventory failed; recording nodes by label only', { cluster: c.name, error: errorMessage(err) });
    }
  }
  const runs = seen?.runs ?? new Map<string, Set<string>>();
  const withPods = nodes.map((n) => {
    const r = runs.get(n.name);
    return r ? { ...n, runs: [...r].sort() } : n;
  });
  const change = await recorder.record(p.rollout, c.name, withPods);
  const removed = change?.removed ?? [];
  if (removed.length) {
    const names = removed.slice(0, MAX_NAMED).join(', ') + (removed.length > MAX_NAMED ? ` and ${removed.length - MAX_NAMED} more` : '');
    p.record('Normal', REASON.InventoryChanged, `${c.name}: ${removed.length} nodes left the inventory (gone from the cluster): ${names}`, c.name);
  }
}

/**
 * Before a clear: the inventory from the live node list (a node deleted meanwhile leaves it, so the
 * clear does not wait for ever on a node that will never answer), and the nodes NotReady now, whose
 * failures do not hold the clear.
 */
export async function refreshBeforeClear(p: Pass, c: ClusterStatus, client: ClusterClient): Promise<string[]> {
  const live = await client.listNodes();
  await recordInventory(p, c, client, live);
  return live.filter((n) => !n.ready).map((n) => n.name);
}
