/**
 * The health-gate e2e tests' helpers and the state they clean up: the induced LIST load, the rollouts
 * they create and watch in the management cluster, and what a rollout left in the target.
 */
import type { TelemetryRollout } from '../../operator/src/api/types.generated.js';
import type { ClusterHandle } from '../controlplane/fleet.js';
import { kubectl, managementCluster } from '../controlplane/testing.js';
import { gateRollout, RolloutWatcher, type GateRolloutOptions } from './gatewatch.js';
import { formatLoadStats, startListLoad, type ListLoad } from './loadgen.js';
import { OPERATOR_NAMESPACE } from './operator.js';

const REVISION_LABEL = 'telemetry.rollout.dev/revision';

/** The helpers of the gates e2e tests over one target (given late: it is picked in beforeAll). */
export class GatesE2E {
  /** Loads still running (stopped by the suite's afterAll when a test fails). */
  readonly loads: ListLoad[] = [];
  /** Watchers still running. */
  readonly watchers: RolloutWatcher[] = [];
  /** Rollouts created and not yet cleaned up. */
  readonly rollouts: string[] = [];
  private readonly target: () => ClusterHandle;
  private readonly loadConcurrency: number;

  constructor(target: () => ClusterHandle, loadConcurrency: number) {
    this.target = target;
    this.loadConcurrency = loadConcurrency;
  }

  /** A progress line of the suite, on stderr. */
  report(line: string): void {
    process.stderr.write(`[gates e2e] ${line}\n`);
  }

  /**
   * The induced regression: concurrent LISTs as the cluster admin (system:masters, exempt from API
   * Priority and Fairness), like agents whose requests APF would not shed, so the server must absorb
   * every LIST. Bounded: 3 minutes at most.
   */
  startLoad(): ListLoad {
    const load = startListLoad(this.target().kubeConfig(), { concurrency: this.loadConcurrency, durationMs: 180_000, userAgent: 'tro-gates-e2e' });
    this.loads.push(load);
    return load;
  }

  /** Stops a load and reports what it did. */
  async stopLoad(load: ListLoad): Promise<void> {
    const stats = await load.stop();
    this.loads.splice(this.loads.indexOf(load), 1);
    this.report(formatLoadStats(stats));
  }

  /** Applies a gate-test rollout for the target and starts watching it. */
  async createRollout(o: Omit<GateRolloutOptions, 'namespace' | 'target'>): Promise<RolloutWatcher> {
    this.rollouts.push(o.name);
    await kubectl(managementCluster(), ['apply', '-f', '-'], {
      input: JSON.stringify(gateRollout({ ...o, namespace: OPERATOR_NAMESPACE, target: this.target().name })),
    });
    const w = new RolloutWatcher(managementCluster().kubeConfig(), OPERATOR_NAMESPACE, o.name).start();
    this.watchers.push(w);
    return w;
  }

  /** Deletes a rollout and whatever it left in the target (labels, collector objects). */
  async cleanupRollout(name: string): Promise<void> {
    for (const w of this.watchers.splice(0)) await w.stop();
    await kubectl(managementCluster(), ['delete', 'tro', name, '-n', OPERATOR_NAMESPACE, '--ignore-not-found', '--wait=true']);
    this.rollouts.splice(this.rollouts.indexOf(name), 1);
    const target = this.target();
    await kubectl(target, ['label', 'nodes', '--all', `${REVISION_LABEL}-`]);
    await kubectl(target, [
      'delete',
      'daemonsets,configmaps',
      '-n',
      'telemetry-system',
      '-l',
      'app.kubernetes.io/managed-by=telemetry-rollout',
      '--ignore-not-found',
    ]);
  }

  /** How many of the target's nodes carry the revision label. */
  async labelled(revision: string): Promise<number> {
    const out = await kubectl(this.target(), ['get', 'nodes', '-l', `${REVISION_LABEL}=${revision}`, '-o', 'name']);
    return out.trim() === '' ? 0 : out.trim().split('\n').length;
  }

  /** The target's cluster status in a rollout. */
  clusterOf(r: TelemetryRollout) {
    return r.status?.clusters?.find((c) => c.name === this.target().name);
  }

  /** The cluster bakes its first step and the last `n` evaluations since the bake began passed. */
  bakingHealthy(n: number) {
    return (r: TelemetryRollout, w: RolloutWatcher): boolean => {
      const c = this.clusterOf(r);
      if (c?.phase !== 'Baking' || !c.bakeStartedAt) return false;
      const since = w.evaluations(this.target().name).filter((g) => g.time.getTime() >= Date.parse(c.bakeStartedAt as string));
      return since.length >= n && since.slice(-n).every((g) => g.verdict === 'Pass');
    };
  }
}
