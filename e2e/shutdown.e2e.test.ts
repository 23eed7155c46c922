// Shutdown and leader handover of the real operator process on the real control plane. Two replicas
// (dist/operator/src/main.js with the production node flags) elect a leader on a Lease; the leader is in
// the middle of a reconcile pass whose request to a target never gets an answer (a target API server
// that accepts connections and then stays silent) when it receives SIGTERM. It must abort that pass,
// release the Lease and exit 0, and the other replica must take the Lease over at once: while the old
// leader's lease, by its own renewTime and duration, would still have been valid for others to wait on.
//
// Independent of the other e2e files: its own namespace (the Role of config/rbac bound there to the
// operator's user), its own Lease, rollout and target Secret, all removed afterwards.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { findRepoRoot } from '../operator/src/api/crd.js';
import { createNamespace, deleteNamespace, dumpOnFailure, eventually, kubectl, kubectlJSON, managementCluster } from './controlplane/testing.js';
import { installCrd } from './support/api.js';
import { OPERATOR_NAMESPACE, startOperator, type OperatorProcess } from './support/operator.js';

const ROOT = findRepoRoot();
const LEASE = 'telemetry-rollout-operator';
/** The operator's timeout of one API request (OperatorOptions.requestTimeoutMs, default 10 s). */
const REQUEST_TIMEOUT_MS = 10_000;

interface LeaseJSON {
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; leaseTransitions?: number; renewTime?: string; acquireTime?: string };
}

interface LogLine {
  message: string;
  level: string;
}

/** A target "API server" that accepts TCP connections and never says a word (not even TLS). */
class SilentServer {
  readonly server: Server;
  /** Every connection, with when it opened and closed (undefined while open). */
  readonly connections: Array<{ socket: Socket; openedAt: number; closedAt?: number }> = [];
  constructor() {
    this.server = createServer((socket) => {
      const c: { socket: Socket; openedAt: number; closedAt?: number } = { socket, openedAt: Date.now() };
      this.connections.push(c);
      socket.on('error', () => undefined);
      // Read (and drop) what the client sends: a paused socket would never notice the client closing.
      socket.resume();
      socket.on('close', () => (c.closedAt = Date.now()));
    });
  }
  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as { port: number }).port;
  }
  open(): number {
    return this.connections.filter((c) => c.closedAt === undefined).length;
  }
  async close(): Promise<void> {
    for (const c of this.connections) c.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** The operator's JSON log lines, in order. */
function logLines(op: OperatorProcess): LogLine[] {
  return readFileSync(op.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

describe('operator shutdown on SIGTERM', () => {
  let ns = '';
  const silent = new SilentServer();
  const operators: OperatorProcess[] = [];

  beforeAll(async () => {
    const mgmt = managementCluster();
    ns = await createNamespace(mgmt, 'shutdown');
    await installCrd();
    // The operator's Role in this namespace, bound to the operator user of the fleet (as docs/operations.md
    // says to serve another namespace).
    await kubectl(mgmt, ['apply', '-n', ns, '-k', join(ROOT, 'config', 'rbac')]);
    const binding = {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'telemetry-rollout-operator-e2e', namespace: ns },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'telemetry-rollout-operator' },
      subjects: [{ kind: 'ServiceAccount', name: 'telemetry-rollout-operator', namespace: OPERATOR_NAMESPACE }],
    };
    await kubectl(mgmt, ['apply', '-f', '-'], { input: JSON.stringify(binding) });
    const port = await silent.listen();
    const kubeconfig = {
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'silent',
      contexts: [{ name: 'silent', context: { cluster: 'silent', user: 'silent' } }],
      clusters: [{ name: 'silent', cluster: { server: `https://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'silent', user: { token: 'not-a-real-token' } }],
    };
    const secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'silent-kubeconfig', namespace: ns },
      stringData: { value: JSON.stringify(kubeconfig) },
    };
    await kubectl(mgmt, ['apply', '-f', '-'], { input: JSON.stringify(secret) });
  }, 120_000);

  afterAll(async () => {
    for (const op of operators.splice(0)) await op.kill('SIGKILL');
    await silent.close();
    if (ns !== '') await deleteNamespace(managementCluster(), ns);
  }, 60_000);

  const lease = (): Promise<LeaseJSON> => kubectlJSON<LeaseJSON>(managementCluster(), ['get', 'lease', LEASE, '-n', ns]);
  const holder = async (): Promise<string> => (await lease().catch(() => undefined))?.spec.holderIdentity ?? '';

  it(
    'aborts the pass in flight, releases the Lease and exits 0; the other replica takes over before the old lease would expire',
    dumpOnFailure(async () => {
      const a = await startOperator({ identity: 'shutdown-a', namespace: ns });
      operators.push(a);
      await eventually('shutdown-a to lead', async () => (await holder()) === 'shutdown-a', 60_000, 200);
      const b = await startOperator({ identity: 'shutdown-b', namespace: ns });
      operators.push(b);

      const rollout = {
        apiVersion: 'telemetry.rollout.dev/v1alpha1',
        kind: 'TelemetryRollout',
        metadata: { name: 'silent-target', namespace: ns },
        spec: {
          collector: { image: 'registry.example/collector:shutdown' },
          targets: { clusters: [{ name: 'silent', kubeconfigSecretRef: { name: 'silent-kubeconfig' } }] },
        },
      };
      await kubectl(managementCluster(), ['apply', '-f', '-'], { input: JSON.stringify(rollout) });
      // The leader's pass is planning: its node LIST to the silent target is in flight and will get no answer.
      await eventually("the leader's request to the silent target", () => silent.open() > 0, 60_000, 50);
      const held = await lease();
      expect(held.spec.holderIdentity).toBe('shutdown-a');
      const oldExpiryMs = Date.parse(held.spec.renewTime!) + held.spec.leaseDurationSeconds! * 1000;

      const exitCode = new Promise<number | null>((resolve) => a.proc.once('exit', (code) => resolve(code)));
      const sigtermAt = Date.now();
      a.proc.kill('SIGTERM');
      expect(await exitCode).toBe(0);
      const exitedMs = Date.now() - sigtermAt;
      await eventually('shutdown-b to hold the Lease', async () => (await holder()) === 'shutdown-b', 60_000, 100);
      const takeoverMs = Date.now() - sigtermAt;
      const taken = await lease();
      process.stdout.write(
        `shutdown e2e: leader exited ${exitedMs} ms after SIGTERM; shutdown-b held the Lease ${takeoverMs} ms after SIGTERM (lease duration ${held.spec.leaseDurationSeconds} s)\n`,
      );

      // The new holder acquired while the old lease, renewed for its full duration, was still valid: the
      // handover came from the release, not from expiry.
      expect(Date.parse(taken.spec.acquireTime!)).toBeLessThan(oldExpiryMs);
      expect(taken.spec.leaseTransitions).toBe((held.spec.leaseTransitions ?? 0) + 1);
      // And before the old leader's hanging request would have timed out by itself: the pass was cut
      // loose by the abort, not waited for (waiting is what kept the Lease for 10 s before).
      expect(Date.parse(taken.spec.acquireTime!)).toBeLessThan(silent.connections[0]!.openedAt + REQUEST_TIMEOUT_MS);

      // In the old leader's log, in this order: the pass was aborted (not timed out), the Lease released,
      // the process stopped; never the straggler path that keeps the Lease.
      const lines = logLines(a);
      const at = (pred: (l: LogLine) => boolean): number => lines.findIndex(pred);
      const aborting = at((l) => l.message === 'aborting in-flight reconciles');
      const interrupted = at((l) => l.message.startsWith('reconcile interrupted'));
      const released = at((l) => l.message === 'released the lease');
      const stopped = at((l) => l.message === 'stopped');
      expect(aborting).toBeGreaterThan(-1);
      expect(interrupted).toBeGreaterThan(aborting);
      expect(released).toBeGreaterThan(interrupted);
      expect(stopped).toBeGreaterThan(released);
      expect(lines.some((l) => l.message.startsWith('in-flight reconciles did not finish'))).toBe(false);
      expect(lines.some((l) => l.message.startsWith('graceful shutdown did not finish'))).toBe(false);
      // The old leader's connection to the silent target went with it.
      await eventually("the old leader's connection to the silent target to close", () => silent.connections[0]?.closedAt !== undefined, 10_000, 50);

      // The interrupted pass wrote nothing: no status or event of this rollout mentions the shutdown.
      const ro = await kubectlJSON<{ status?: unknown }>(managementCluster(), ['get', 'tro', 'silent-target', '-n', ns]);
      expect(JSON.stringify(ro.status ?? {})).not.toContain('shutting down');
      const events = await kubectl(managementCluster(), ['get', 'events', '-n', ns, '-o', 'json']);
      expect(events).not.toContain('shutting down');

      await b.kill('SIGTERM');
      expect(b.proc.exitCode).toBe(0);
    }),
    240_000,
  );
});
