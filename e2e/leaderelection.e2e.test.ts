// Leader election against the real kube-apiserver of the management cluster: two LeaderElectors on one
// coordination.k8s.io/v1 Lease (through client-node's CoordinationV1Api, so the MicroTime format, the
// resourceVersion conflicts and the 404 on a missing Lease are the server's). Given two candidates,
// only one leads; when the leader stops renewing, it stops acting within its renew deadline and the
// other takes over after the lease duration; a graceful stop hands over at once.
//
// Timings are shortened (lease 6 s, renew deadline 4 s, retry 1 s) to keep the run short; the ordering
// they guarantee is the same as with the production 15/10/2.
import { afterEach, describe, expect, it } from '@jest/globals';
import { KubeLeaseClient, LeaderElector } from '../operator/src/controller/leaderelection.js';
import type { LeaseClient, LeaseRecord } from '../operator/src/controller/leaderelection.js';
import { SystemClock } from '#core/clock.js';
import { memoryLogger, type LogEntry } from '../testkit/operator/util/logging.js';
import { createNamespace, deleteNamespace, dumpOnFailure, eventually, kubectlJSON, managementCluster } from './controlplane/testing.js';

const LEASE_NAME = 'telemetry-rollout-leader';
const TIMING = { leaseDurationSeconds: 6, renewDeadlineSeconds: 4, retryPeriodSeconds: 1 };

/** A LeaseClient whose connection to the API server the test can cut (the leader "stops renewing"). */
class CuttableLeaseClient implements LeaseClient {
  cut = false;
  private readonly inner: LeaseClient;
  constructor(inner: LeaseClient) {
    this.inner = inner;
  }
  private check(): void {
    if (this.cut) throw Object.assign(new Error('connect ECONNREFUSED (cut by the test)'), { code: 'ECONNREFUSED' });
  }
  async get(namespace: string, name: string, signal?: AbortSignal): Promise<LeaseRecord | undefined> {
    this.check();
    return this.inner.get(namespace, name, signal);
  }
  async create(lease: LeaseRecord, signal?: AbortSignal): Promise<LeaseRecord> {
    this.check();
    return this.inner.create(lease, signal);
  }
  async replace(lease: LeaseRecord, signal?: AbortSignal): Promise<LeaseRecord> {
    this.check();
    return this.inner.replace(lease, signal);
  }
}

interface Candidate {
  id: string;
  entries: LogEntry[];
  elector: LeaderElector;
  client: CuttableLeaseClient;
  run: Promise<void>;
  startedAt?: number;
  stoppedAt?: number;
  signal?: AbortSignal;
}

interface LeaseJSON {
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; leaseTransitions?: number; renewTime?: string };
}

describe('leader election on a real kube-apiserver', () => {
  const candidates: Candidate[] = [];
  let ns = '';

  function candidate(id: string): Candidate {
    const client = new CuttableLeaseClient(new KubeLeaseClient(managementCluster().kubeConfig()));
    const { logger, entries } = memoryLogger('debug');
    const c: Partial<Candidate> = { id, client, entries };
    c.elector = new LeaderElector({
      namespace: ns,
      name: LEASE_NAME,
      identity: id,
      ...TIMING,
      clock: new SystemClock(),
      leaseClient: client,
      logger,
      callbacks: {
        onStartedLeading: (signal) => {
          c.startedAt = Date.now();
          c.signal = signal;
        },
        onStoppedLeading: () => {
          c.stoppedAt = Date.now();
        },
      },
    });
    c.run = c.elector.run();
    candidates.push(c as Candidate);
    return c as Candidate;
  }

  /** Prints the electors' own logs when the test body fails, then rethrows. */
  const withElectorLogs = (fn: () => Promise<void>) => async (): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      for (const c of candidates) process.stderr.write(`===== ${c.id} log\n${c.entries.map((e) => JSON.stringify(e)).join('\n')}\n`);
      throw err;
    }
  };

  const lease = (): Promise<LeaseJSON> => kubectlJSON<LeaseJSON>(managementCluster(), ['get', 'lease', LEASE_NAME, '-n', ns]);

  afterEach(async () => {
    for (const c of candidates.splice(0)) {
      c.client.cut = false;
      await c.elector.stop();
    }
    if (ns !== '') await deleteNamespace(managementCluster(), ns);
  });

  it(
    'elects exactly one leader, and the other takes over after the leader stops renewing',
    dumpOnFailure(
      withElectorLogs(async () => {
        ns = await createNamespace(managementCluster(), 'le');
        const a = candidate('replica-a');
        const b = candidate('replica-b');

        const leader = await eventually('a leader', () => candidates.find((c) => c.elector.isLeader()), 30_000, 100);
        const follower = leader === a ? b : a;
        // Watch both for a while: never two leaders, and the Lease names the one that leads.
        for (let i = 0; i < 10; i++) {
          expect(candidates.filter((c) => c.elector.isLeader()).map((c) => c.id)).toEqual([leader.id]);
          await new Promise((resolve) => setTimeout(resolve, 300));
        }
        const held = await lease();
        expect(held.spec).toMatchObject({ holderIdentity: leader.id, leaseDurationSeconds: TIMING.leaseDurationSeconds });
        // The server stored MicroTime with microsecond precision (it rejects anything else).
        expect(held.spec.renewTime).toMatch(/\.\d{6}Z$/);
        expect(follower.elector.getLeader()).toBe(leader.id);
        const transitionsBefore = held.spec.leaseTransitions ?? 0;

        // The leader loses its API server: it cannot renew any more.
        const cutAt = Date.now();
        leader.client.cut = true;
        await eventually('the follower to take over', () => follower.elector.isLeader(), 60_000, 100);
        await leader.run;

        // The old leader stopped acting within its renew deadline (+ one retry period of slack)...
        expect(leader.stoppedAt).toBeDefined();
        expect(leader.signal?.aborted).toBe(true);
        expect(leader.stoppedAt! - cutAt).toBeLessThanOrEqual((TIMING.renewDeadlineSeconds + TIMING.retryPeriodSeconds) * 1000);
        // ...before the follower started: never two leaders at once.
        expect(follower.startedAt!).toBeGreaterThan(leader.stoppedAt!);
        const after = await lease();
        expect(after.spec.holderIdentity).toBe(follower.id);
        expect(after.spec.leaseTransitions).toBe(transitionsBefore + 1);
      }),
    ),
    120_000,
  );

  it(
    'hands over at once when the leader stops gracefully and releases the Lease',
    dumpOnFailure(
      withElectorLogs(async () => {
        ns = await createNamespace(managementCluster(), 'le');
        const a = candidate('replica-a');
        const leader = await eventually('a to lead', () => (a.elector.isLeader() ? a : undefined), 30_000, 100);
        const b = candidate('replica-b');
        await eventually('b to see the leader', () => b.elector.getLeader() === leader.id, 30_000, 100);

        const stopAt = Date.now();
        await leader.elector.stop();
        await leader.run;
        const released = await lease();
        expect(released.spec.holderIdentity ?? '').toBe('');
        expect(released.spec.leaseDurationSeconds).toBe(1);

        await eventually('b to lead', () => b.elector.isLeader(), 30_000, 100);
        // Well before a lease duration: the release made the Lease free at once.
        expect(b.startedAt! - stopAt).toBeLessThan(TIMING.leaseDurationSeconds * 1000);
        expect((await lease()).spec.holderIdentity).toBe(b.id);
      }),
    ),
    120_000,
  );
});
