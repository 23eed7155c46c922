/**
 * The operator's side of break-glass: the reconciler's BreakGlassActuator and InventoryRecorder on top
 * of the transports and the inventory store. Inventories live in the rollout's namespace of the
 * management cluster, one per target cluster, so the stop files can be written while the target's API
 * server is down.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { BreakGlassStatus, BreakGlassTransportSpec, TelemetryRollout } from '../api/types.generated.js';
import type { BreakGlassActuator, ClearResult, InventoryChange, InventoryRecorder, IssueOptions, NodeInfo } from '../rollout/interfaces.js';
import type { Clock } from '#core/clock.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/logging.js';
import { clearBreakGlass, issueBreakGlass, KubeSecretReader, selectTargets, transportFromSpec, type SecretKeyReader } from './breakglass.js';
import type { BreakGlassTransport, NodeOutcome } from './transport.js';
import { SshTransport } from './ssh.js';
import { ConfigMapInventoryStore } from './configmapstore.js';
import { ConfigMapStopLedger, type StopLedger } from './stopledger.js';
import { makeInventory, type InventoryStore } from './inventory.js';

/** Where inventories, the stop ledger and ssh Secrets are read for a namespace. */
export interface BreakGlassBackends {
  inventory(namespace: string): InventoryStore;
  secrets(namespace: string): SecretKeyReader;
  /** The record of stops issued and not cleared; without it, status is the only record. */
  ledger?(namespace: string): StopLedger;
}

/** Backends on the management cluster: ConfigMap inventories and Secret-sourced ssh credentials. */
export function kubeBackends(kc: KubeConfig): BreakGlassBackends {
  const stores = new Map<string, InventoryStore>();
  const ledgers = new Map<string, StopLedger>();
  return {
    ledger: (namespace) => {
      let l = ledgers.get(namespace);
      if (!l) ledgers.set(namespace, (l = new ConfigMapStopLedger({ api: kc, namespace })));
      return l;
    },
    inventory: (namespace) => {
      let s = stores.get(namespace);
      if (!s) stores.set(namespace, (s = new ConfigMapInventoryStore({ api: kc, namespace })));
      return s;
    },
    secrets: (namespace) => new KubeSecretReader(kc, namespace),
  };
}

const rolloutName = (r: TelemetryRollout) => `${r.metadata?.namespace ?? 'default'}/${r.metadata?.name ?? ''}`;

/** Longest error kept per failing node in status (status is read by people; logs keep the rest). */
const MAX_STATUS_MESSAGE = 200;
/** Failing nodes named in status; the rest are counted (5,000 names would make the object huge). */
export const MAX_FAILING_NODES = 20;

/** One cluster's stop for one revision: what is confirmed, and the attempt under way or just ended. */
interface StopJob {
  /** The `issuedAt` in every file of this stop (the first attempt's), so rewriting a node changes nothing. */
  issuedAt: string;
  /** Nodes whose stop file is in place. */
  confirmed: Set<string>;
  /** Nodes the latest attempt went to in all (confirmed or not). */
  targeted: number;
  /** The attempt under way. */
  running?: Promise<void>;
  /** Whether the ledger holds this stop. */
  noted?: boolean;
  /** The outcome of the attempt that ended, until the reconciler has read it. */
  unread?: BreakGlassStatus;
  abort: AbortController;
}

/** Builds the transport for a rollout's spec (a seam for tests: a slow or failing transport). */
export type TransportMaker = (spec: BreakGlassTransportSpec, secrets: SecretKeyReader, clock: Clock) => Promise<BreakGlassTransport>;

/**
 * Implements the reconciler's break-glass and inventory hooks. Never throws: failures are status.
 *
 * The fan-out to the nodes runs in the background: `issue` starts an attempt and returns at once, so a
 * pass is never held by a slow transport (one cluster's 5,000 ssh connections never delay another
 * cluster's stop, nor anything else the pass does). Each attempt goes only to the nodes not confirmed
 * yet; the reconciler repeats attempts, with backoff, until every inventoried node is confirmed.
 */
export class TransportBreakGlass implements BreakGlassActuator, InventoryRecorder {
  private readonly backends: BreakGlassBackends;
  private readonly clock: Clock;
  private readonly logger?: Logger;
  private readonly makeTransport: TransportMaker;
  private readonly jobs = new Map<string, StopJob>();
  private readonly clears = new Map<string, ClearJob>();
  /** Node names last recorded per inventory, to say which nodes left it. */
  private readonly recorded = new Map<string, Set<string>>();
  constructor(backends: BreakGlassBackends, clock: Clock, logger?: Logger, makeTransport?: TransportMaker) {
    this.backends = backends;
    this.clock = clock;
    this.logger = logger;
    this.makeTransport = makeTransport ?? ((spec, secrets, c) => transportFromSpec(spec, { secrets, clock: c }));
  }

  available(rollout: TelemetryRollout): boolean {
    return rollout.spec.breakGlass.transport !== undefined;
  }

  async record(rollout: TelemetryRollout, cluster: string, nodes: NodeInfo[]): Promise<InventoryChange> {
    const ns = rollout.metadata?.namespace ?? 'default';
    const store = this.backends.inventory(ns);
    const key = `${ns}/${cluster}`;
    try {
      let before = this.recorded.get(key);
      if (before === undefined) {
        // Once per cluster and process: what the stored inventory held, to name the nodes that leave it.
        const stored = await store.load(cluster).catch(() => undefined);
        before = new Set(stored?.nodes.map((n) => n.name) ?? []);
      }
      await store.save(makeInventory(cluster, nodes, this.clock));
      const now = new Set(nodes.map((n) => n.name));
      this.recorded.set(key, now);
      return { removed: [...before].filter((n) => !now.has(n)).sort() };
    } catch (err) {
      this.logger?.warn('saving the node inventory failed', { rollout: rolloutName(rollout), cluster, error: errorMessage(err) });
      return { removed: [] };
    }
  }

  async issue(rollout: TelemetryRollout, cluster: string, revision: string, reason: string, options: IssueOptions = {}): Promise<BreakGlassStatus> {
    const key = `${rolloutName(rollout)}/${cluster}/${revision}`;
    let job = this.jobs.get(key);
    if (job === undefined) {
      job = { issuedAt: options.issuedAt ?? this.clock.now().toISOString(), confirmed: new Set(), targeted: 0, abort: new AbortController() };
      this.jobs.set(key, job);
    }
    if (job.running) return progress(job, revision, true);
    if (job.unread) {
      const done = job.unread;
      delete job.unread;
      return done;
    }
    const j = job;
    // The ledger notes the stop alongside the first attempt, never before it: the stop must not wait for
    // the management cluster.
    const noted = j.noted ? Promise.resolve() : this.note(rollout, cluster, revision, j);
    j.running = Promise.all([this.attempt(j, rollout, cluster, revision, reason), noted])
      .then(() => undefined)
      .finally(() => delete j.running);
    return progress(j, revision, true);
  }

  async check(rollout: TelemetryRollout, cluster: string): Promise<{ ok: boolean; message: string } | undefined> {
    const ns = rollout.metadata?.namespace ?? 'default';
    const spec = rollout.spec.breakGlass.transport;
    if (spec?.type !== 'ssh') return undefined;
    try {
      const inv = await this.backends.inventory(ns).load(cluster);
      if (!inv || inv.nodes.length === 0) return { ok: false, message: `no node inventory of ${cluster} to check the ssh transport on` };
      // A few nodes, spread over the sorted list (different pools tend to sort apart); the point is the
      // key, the host keys and the path, which a fleet shares, not every node.
      const n = inv.nodes;
      const sample = [...new Set([0, Math.floor(n.length / 2), n.length - 1])].map((i) => n[i]).filter((x): x is NodeInfo => x !== undefined);
      const transport = await this.makeTransport(spec, this.backends.secrets(ns), this.clock);
      try {
        if (!(transport instanceof SshTransport)) return undefined;
        const outcomes = await transport.check(sample);
        const bad = outcomes.filter((o) => o.result !== 'ok');
        if (bad.length === 0) return { ok: true, message: `ssh to ${sample.map((x) => x.name).join(', ')}: connected, stop directory writable` };
        return { ok: false, message: `ssh check failed on ${bad.map((o) => `${o.node} (${o.message ?? o.result})`).join('; ')}` };
      } finally {
        await transport.close();
      }
    } catch (err) {
      return { ok: false, message: `ssh check failed: ${errorMessage(err)}` };
    }
  }

  async owed(rollout: TelemetryRollout, cluster: string): Promise<string[]> {
    const ledger = this.backends.ledger?.(rollout.metadata?.namespace ?? 'default');
    if (!ledger) return [];
    try {
      return Object.keys(await ledger.owed(rolloutName(rollout), cluster)).sort();
    } catch (err) {
      this.logger?.warn('reading the stop ledger failed', { rollout: rolloutName(rollout), cluster, error: errorMessage(err) });
      return [];
    }
  }

  /** Writes the stop into the ledger; a failure is logged (status still records it when its write lands). */
  private async note(rollout: TelemetryRollout, cluster: string, revision: string, job: StopJob): Promise<void> {
    const ledger = this.backends.ledger?.(rollout.metadata?.namespace ?? 'default');
    if (!ledger) return;
    try {
      await ledger.record(rolloutName(rollout), cluster, revision, job.issuedAt);
      job.noted = true;
    } catch (err) {
      this.logger?.warn('recording the stop in the ledger failed', { rollout: rolloutName(rollout), cluster, revision, error: errorMessage(err) });
    }
  }

  /** Resolves once no attempt is under way (tests; shutdown). */
  async settled(): Promise<void> {
    for (;;) {
      const running = [...this.jobs.values(), ...this.clears.values()].flatMap((j) => (j.running ? [j.running] : []));
      if (running.length === 0) return;
      await Promise.allSettled(running);
    }
  }

  /** Cancels every attempt under way (nodes not done count as failed) and waits for them to end. */
  async close(): Promise<void> {
    for (const j of this.jobs.values()) j.abort.abort(new Error('operator shutting down'));
    await this.settled();
  }

  /** One attempt: the stop file to every inventoried node of the revision that has not confirmed it. */
  private async attempt(job: StopJob, rollout: TelemetryRollout, cluster: string, revision: string, reason: string): Promise<void> {
    const ns = rollout.metadata?.namespace ?? 'default';
    const spec = rollout.spec.breakGlass.transport;
    const fail = (message: string): void => {
      job.unread = { ...progress(job, revision, false), message };
    };
    if (!spec) return fail('no transport configured');
    try {
      const inv = await this.backends.inventory(ns).load(cluster);
      if (!inv) return fail(`no node inventory of ${cluster}`);
      const targets = selectTargets(inv.nodes, { revision, scope: 'revision' });
      // A node that left the inventory (deleted, seen gone once the API server was back) no longer counts.
      const names = new Set(targets.map((n) => n.name));
      for (const n of [...job.confirmed]) if (!names.has(n)) job.confirmed.delete(n);
      job.targeted = targets.length;
      const pending = targets.filter((n) => !job.confirmed.has(n.name));
      if (pending.length === 0) {
        job.unread = {
          ...progress(job, revision, false),
          message: `stop file for revision ${revision} in place on ${job.confirmed.size}/${targets.length} nodes`,
        };
        return;
      }
      if (job.abort.signal.aborted) return fail(`break-glass cancelled: ${errorMessage(job.abort.signal.reason)}`);
      const transport = await this.makeTransport(spec, this.backends.secrets(ns), this.clock);
      try {
        const res = await issueBreakGlass({
          transport,
          nodes: pending,
          scope: 'all',
          rollout: rolloutName(rollout),
          revision,
          reason,
          clock: this.clock,
          issuedAt: job.issuedAt,
          signal: job.abort.signal,
          ...(this.logger ? { logger: this.logger } : {}),
        });
        for (const o of res.outcomes) if (o.result === 'ok') job.confirmed.add(o.node);
        const failing = res.outcomes.filter((o) => o.result !== 'ok');
        job.unread = {
          ...progress(job, revision, false),
          nodesFailed: res.nodesFailed,
          nodesTimedOut: res.nodesTimedOut,
          ...(failing.length ? { failingNodes: failing.slice(0, MAX_FAILING_NODES).map((o) => failingNode(o)) } : {}),
          message:
            `stop file for revision ${revision} in place on ${job.confirmed.size}/${targets.length} nodes via ${transport.kind}` +
            (failing.length ? ` (${res.nodesFailed} failed, ${res.nodesTimedOut} timed out in this attempt)` : ''),
        };
      } finally {
        await transport.close();
      }
    } catch (err) {
      fail(`break-glass failed: ${errorMessage(err)}`);
    }
  }

  async clear(rollout: TelemetryRollout, cluster: string, revision: string, options: ClearStopOptions = {}): Promise<ClearResult> {
    const key = `${rolloutName(rollout)}/${cluster}/${revision}`;
    // Never clear under an attempt still writing (its files would land after the clear).
    if (this.jobs.get(key)?.running) return { ok: false, inProgress: true, message: 'an attempt to write the stop files is still under way' };
    let job = this.clears.get(key);
    if (job?.running) return { ok: false, inProgress: true, message: `clearing the stop files (${job.cleared.size} nodes done so far)` };
    if (job?.unread) {
      const done = job.unread;
      delete job.unread;
      if (done.ok) {
        this.clears.delete(key);
        this.jobs.delete(key);
      }
      return done;
    }
    job ??= { cleared: new Set<string>() };
    this.clears.set(key, job);
    const j = job;
    // Like the stop itself, the clear fans out in the background: a pass is never held by 5,000 nodes.
    j.running = this.clearAttempt(j, rollout, cluster, revision, new Set(options.notReady ?? [])).finally(() => delete j.running);
    return { ok: false, inProgress: true, message: 'clearing the stop files' };
  }

  /**
   * One clear attempt: every inventoried node not cleared yet. A node that fails is tried again by the
   * next attempt; a node that fails while NotReady does not hold the recovery (its stop file names a
   * revision that no longer runs anywhere; it is named in the message and the event).
   */
  private async clearAttempt(job: ClearJob, rollout: TelemetryRollout, cluster: string, revision: string, notReady: Set<string>): Promise<void> {
    const ns = rollout.metadata?.namespace ?? 'default';
    const spec = rollout.spec.breakGlass.transport;
    if (!spec) {
      job.unread = { ok: true, message: 'no transport configured' };
      return;
    }
    try {
      const inv = await this.backends.inventory(ns).load(cluster);
      if (!inv) {
        job.unread = { ok: false, message: `no node inventory of ${cluster}` };
        return;
      }
      const nodes = inv.nodes.filter((n) => !job.cleared.has(n.name));
      const transport = await this.makeTransport(spec, this.backends.secrets(ns), this.clock);
      try {
        const res = await clearBreakGlass({ transport, nodes, revision, clock: this.clock, ...(this.logger ? { logger: this.logger } : {}) });
        for (const o of res.outcomes) if (o.result === 'ok') job.cleared.add(o.node);
        const bad = res.outcomes.filter((o) => o.result !== 'ok');
        const blocking = bad.filter((o) => !notReady.has(o.node));
        const named = (list: NodeOutcome[]) =>
          list
            .slice(0, MAX_FAILING_NODES)
            .map((o) => `${o.node}: ${failingNode(o).message}`)
            .join('; ') + (list.length > MAX_FAILING_NODES ? ` and ${list.length - MAX_FAILING_NODES} more` : '');
        const total = inv.nodes.length;
        if (blocking.length > 0) {
          job.unread = { ok: false, message: `stop files of ${revision} cleared on ${job.cleared.size}/${total} nodes; not cleared on ${named(blocking)}` };
          return;
        }
        try {
          await this.backends.ledger?.(ns).remove(rolloutName(rollout), cluster, revision);
        } catch (err) {
          // Still owed: the next recovery clears again (idempotent) and removes the entry then.
          job.unread = { ok: false, message: `stop files cleared; the stop ledger could not be updated: ${errorMessage(err)}` };
          return;
        }
        job.unread = {
          ok: true,
          message:
            `stop files of ${revision} cleared on ${job.cleared.size}/${total} nodes via ${transport.kind}` +
            (bad.length ? `; left on ${bad.length} NotReady nodes (inert: nothing of ${revision} runs any more): ${named(bad)}` : ''),
        };
      } finally {
        await transport.close();
      }
    } catch (err) {
      job.unread = { ok: false, message: `clearing failed: ${errorMessage(err)}` };
    }
  }
}

/** Options of {@link TransportBreakGlass.clear}. */
export interface ClearStopOptions {
  /** Nodes NotReady now (from the live node list): their failures do not hold the recovery. */
  notReady?: readonly string[];
}

/** One cluster's clear of one revision: the nodes done, and the attempt under way or just ended. */
interface ClearJob {
  cleared: Set<string>;
  running?: Promise<void>;
  unread?: { ok: boolean; message: string };
}

/** What a stop of one revision looks like so far (counts over the whole stop, not one attempt). */
function progress(job: StopJob, revision: string, inProgress: boolean): BreakGlassStatus {
  return {
    issuedAt: job.issuedAt,
    revision,
    nodesTargeted: job.targeted,
    nodesStopped: job.confirmed.size,
    nodesFailed: 0,
    nodesTimedOut: 0,
    nodesPending: Math.max(0, job.targeted - job.confirmed.size),
    ...(inProgress
      ? { inProgress: true, message: `writing stop files for revision ${revision} (${job.confirmed.size}/${job.targeted || '?'} nodes confirmed so far)` }
      : {}),
  };
}

/** A failing node for status: its name and a short error. */
function failingNode(o: NodeOutcome): { node: string; message: string } {
  const text = o.message ?? o.result;
  return { node: o.node, message: text.length > MAX_STATUS_MESSAGE ? `${text.slice(0, MAX_STATUS_MESSAGE - 1)}…` : text };
}
