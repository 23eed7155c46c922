/**
 * Observing the targets: resolving them and getting a client for each, then probing the API server of
 * every cluster that runs (or is about to run) the candidate, turning what the probe and the gates see
 * into events: Unreachable (and break-glass when due), Reachable, gate verdicts.
 */
import type { ClusterStatus } from '../api/types.generated.js';
import { errorMessage } from '../util/errors.js';
import { mapLimit } from '../breakglass/maplimit.js';
import { breakGlassAfterSuccess, maybeBreakGlass } from './breakglass.js';
import { REASON } from './conditions.js';
import { checkAccess, markCredentialsInvalid } from './credentials.js';
import { evaluateGates } from './gating.js';
import { resumeAfterHold } from './hold.js';
import { ClusterUnavailableError } from './interfaces.js';
import { isActive, rolloutCapabilities } from './machine.js';
import { refreshBeforeClear } from './inventory.js';
import { iso, PROBE_CONCURRENCY, since, type Pass } from './pass.js';
import { startRollback } from './rollback.js';

/** Resolves targets and gets a client for each; an unavailable cluster is recorded, never fatal. */
export async function connect(p: Pass): Promise<void> {
  try {
    p.targets = await p.ctx.d.clusters.resolveTargets(p.rollout);
  } catch (err) {
    p.targetsError = `cannot resolve targets: ${errorMessage(err)}`;
    return;
  }
  for (const t of p.targets) {
    try {
      p.clients.set(t.name, await p.ctx.d.clusters.client(p.rollout, t));
    } catch (err) {
      const why = err instanceof ClusterUnavailableError ? `${err.reason}: ${err.message}` : errorMessage(err);
      p.unavailable.set(t.name, why);
    }
  }
}

/**
 * Whether the candidate may run on some of the cluster's nodes: status counts some, or a step has begun
 * (a pass that labelled nodes may have died before its status write, so the count can lag the nodes;
 * the inventory, saved before that write, has them).
 */
export const runsCandidate = (c: ClusterStatus): boolean =>
  c.phase !== 'RolledBack' && c.phase !== 'Pending' && c.phase !== 'Preflight' && ((c.nodesUpdated ?? 0) > 0 || (c.stepPercent ?? 0) > 0);

/**
 * Probes reachability of every cluster running the candidate (or moving towards it), arms break-glass
 * and evaluates the gates, each as far as the rollout's phase allows (the machine's capabilities).
 */
export async function observeClusters(p: Pass): Promise<void> {
  const s = p.status;
  // The phase may change during the loop (a rollback or a break-glass decided for an earlier cluster):
  // break-glass stays armed for the rest of the pass as the phase the pass began in says, while gates
  // follow the current phase (a rollout that has decided to roll back or break glass scrapes no more).
  const entry = rolloutCapabilities(s.phase);
  // After success the table arms nothing; watching is the afterSuccess policy's (Off: not even a probe).
  const afterSuccess = entry.afterSuccessPolicy && p.rollout.spec.breakGlass.afterSuccess !== 'Off';
  if (!entry.probesReachability && !afterSuccess) return;
  const gates = p.rollout.spec.gates;
  // A cluster still marked unreachable is probed too, so the mark cannot go stale (rollback waits on it).
  // So is one marked as refusing its credentials: the mark must be able to clear once the Secret is mended.
  const watched = (s.clusters ?? []).filter((c) => isActive(c.phase) || runsCandidate(c) || c.reachable === false || c.credentialsInvalidSince !== undefined);
  // Every probe at once (bounded): a probe of a dead API server takes its whole timeout, and one dead
  // cluster must not hold up the detection, or the break-glass, of another.
  const probes = new Map(
    await mapLimit(watched, PROBE_CONCURRENCY, async (c) => {
      const client = p.clients.get(c.name);
      return [c.name, client ? await client.probe() : undefined] as const;
    }),
  );
  // The unreachable first: their break-glass must not wait behind another cluster's gate scrapes.
  const down = (c: ClusterStatus) => probes.get(c.name)?.reachable === false;
  for (const c of [...watched.filter(down), ...watched.filter((x) => !down(x))]) {
    const runsRevision = runsCandidate(c);
    const client = p.clients.get(c.name);
    const probe = probes.get(c.name);
    if (!client || !probe) {
      c.message = `cluster unavailable: ${p.unavailable.get(c.name) ?? 'unknown'}`;
      continue;
    }
    if (!probe.reachable) {
      if (c.reachable !== false) markUnreachable(p, c, probe.message);
      c.reachable = false;
      // A failed probe ends a run of answers: reachable again needs a whole new one.
      delete c.reachableSince;
      c.message = `API server unreachable since ${c.unreachableSince ?? iso(p.now)}: ${probe.message ?? ''}`.trim();
      p.requeue(Math.min(5000, gates.intervalSeconds * 1000));
      if (runsRevision && entry.breakGlassArmed) await maybeBreakGlass(p, c);
      else if (runsRevision && afterSuccess) await breakGlassAfterSuccess(p, c);
      continue;
    }
    if (c.reachable === false && !answeredLongEnough(p, c)) continue;
    if (afterSuccess) {
      // Back: nothing to roll back to after success. An Auto stop stays until a person clears it.
      c.reachable = true;
      delete c.unreachableSince;
      const held = c.breakGlass?.issuedAt && !c.breakGlass.clearedAt ? c.breakGlass : undefined;
      if (held?.clearRequestedAt && p.ctx.d.breakGlass) {
        // From the live node list: a node deleted meanwhile must not block the clear for good.
        const notReady = await refreshBeforeClear(p, c, client).catch(() => []);
        const cleared = await p.ctx.d.breakGlass.clear(p.rollout, c.name, held.revision ?? p.revision, { notReady });
        if (cleared.ok) {
          held.clearedAt = iso(p.now);
          c.message = `all ${c.nodesTotal ?? 0} nodes on ${p.revision}; stop files removed on request`;
          p.record('Normal', REASON.BreakGlass, `${c.name}: stop files cleared (${cleared.message})`, c.name);
        } else {
          c.message = cleared.inProgress ? cleared.message : `removing the stop files failed: ${cleared.message}`;
          p.requeue(cleared.inProgress ? 1000 : 10_000);
        }
      } else if (held) {
        c.message = `API server back; the agents of ${p.revision} stay stopped by break-glass until a person lifts it: kubectl tro retry ${p.rollout.metadata?.name ?? ''}`;
      } else {
        c.message = `all ${c.nodesTotal ?? 0} nodes on ${p.revision}`;
      }
      continue;
    }
    c.reachable = true;
    if (c.unreachableSince) resumeAfterHold(p, c, c.unreachableSince);
    delete c.unreachableSince;
    if (probe.credentialsRejected) {
      // Answered, but refused the kubeconfig: a broken Secret, not an outage (no break-glass, no gates).
      markCredentialsInvalid(p, c, probe.message ?? 'refused');
      p.requeue(gates.intervalSeconds * 1000);
      continue;
    }
    // /readyz answers even a token with no rights: while marked, and before each gate evaluation, a
    // resource call decides (a refused gate scrape must not count as NoData towards the breaker).
    const gatesNow = c.phase !== 'Preflight' && rolloutCapabilities(s.phase).gatesEvaluated && since(p.now, c.lastGate?.time) >= gates.intervalSeconds;
    if ((c.credentialsInvalidSince || gatesNow) && !(await checkAccess(p, c, client))) {
      p.requeue(gates.intervalSeconds * 1000);
      continue;
    }
    if (c.phase === 'BreakGlass') {
      // Recovery: the API server is back, so the bad revision is rolled back through it; the stop
      // files are cleared only after its last agent is gone (see rollBack). A rollout already rolling
      // back takes the cluster in its turn.
      if (s.phase !== 'RollingBack') startRollback(p, 'Reachable', REASON.BreakGlass, `${c.name}: API server back after break-glass; rolling back`);
      continue;
    }
    if (c.phase === 'Preflight' || !rolloutCapabilities(s.phase).gatesEvaluated) continue;
    const unreachable = await evaluateGates(p, c, client);
    if (unreachable !== undefined) {
      // The metrics scrape could not connect: that is the break-glass signal, not missing data.
      // (The probe answered moments ago, so this is the moment it went away.)
      markUnreachable(p, c, unreachable);
      c.reachable = false;
      p.requeue(Math.min(5000, gates.intervalSeconds * 1000));
    }
  }
}

/**
 * Hysteresis on the way back: an API server that was unreachable counts as reachable only once every
 * probe has answered for breakGlass.reachableAfterSeconds, so one answer from a flapping server does
 * not start a recovery (or stop a break-glass that is due). Returns true when that time is up (the
 * Reachable event is recorded), false while the cluster still counts as unreachable.
 */
function answeredLongEnough(p: Pass, c: ClusterStatus): boolean {
  const need = p.rollout.spec.breakGlass.reachableAfterSeconds;
  c.reachableSince ??= iso(p.now);
  const answered = since(p.now, c.reachableSince);
  if (answered < need) {
    c.message = `API server answering again for ${Math.floor(answered)}s of ${need}s (unreachable since ${c.unreachableSince ?? '?'})`;
    p.requeue(Math.min(5000, (need - answered) * 1000));
    return false;
  }
  delete c.reachableSince;
  p.record('Normal', REASON.Healthy, `API server reachable again (answered every probe for ${Math.floor(answered)}s)`, c.name);
  return true;
}

/** The Unreachable event: the moment a cluster's API server stopped answering. */
function markUnreachable(p: Pass, c: ClusterStatus, why: string | undefined): void {
  p.rolloutEvent('Unreachable');
  c.unreachableSince = iso(p.now);
  p.record('Warning', REASON.ClusterUnreachable, `API server unreachable: ${why ?? ''}`.trim(), c.name);
}
