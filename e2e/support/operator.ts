// Runs the real operator (dist/operator/src/main.js, built by `npm run build`) as a child process
// against the e2e fleet, under the RBAC of config/rbac in the management cluster and of
// config/target-rbac in each target, and sets up what it needs there.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findRepoRoot } from '../../operator/src/api/crd.js';
import { freePort, httpGet } from '../controlplane/net.js';
import type { ClusterHandle } from '../controlplane/fleet.js';
import { kubectl, managementCluster } from '../controlplane/testing.js';
import { installCrd } from './api.js';
import { OPERATOR_IMAGE, flagsOr, imageNodeFlags, manifestNodeOptions } from './nodeflags.js';

/** The namespace config/kustomization installs the operator into (and where its RBAC applies). */
export const OPERATOR_NAMESPACE = 'telemetry-rollout-system';
/** The operator's ServiceAccount user in the management cluster (config/rbac). */
export const MGMT_OPERATOR_USER = `system:serviceaccount:${OPERATOR_NAMESPACE}:telemetry-rollout-operator`;
/** The operator's ServiceAccount user in each target (config/target-rbac). */
export const TARGET_OPERATOR_USER = 'system:serviceaccount:telemetry-system:telemetry-rollout-operator';

const ROOT = findRepoRoot();

/** Every operator process started here; killed when the test process exits, whatever happened. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});
const MAIN = join(ROOT, 'dist', 'operator', 'src', 'main.js');
const NODE = join(ROOT, 'node_modules', '.bin', 'node');

/**
 * Installs the CRD and config/rbac in the management cluster, config/target-rbac in every target, and
 * a kubeconfig Secret per target (the target's operator user: least privilege there too).
 */
export async function prepareFleet(targets: ClusterHandle[]): Promise<void> {
  const mgmt = managementCluster();
  await installCrd();
  await kubectl(mgmt, ['create', 'namespace', OPERATOR_NAMESPACE, '--dry-run=client', '-o', 'yaml'], {}).then((y) =>
    kubectl(mgmt, ['apply', '-f', '-'], { input: y }),
  );
  await kubectl(mgmt, ['apply', '-n', OPERATOR_NAMESPACE, '-k', join(ROOT, 'config', 'rbac')]);
  for (const t of targets) {
    await kubectl(t, ['apply', '-k', join(ROOT, 'config', 'target-rbac')]);
    const kubeconfig = readFileSync(t.user(TARGET_OPERATOR_USER).kubeconfigPath, 'utf8');
    const secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `${t.name}-kubeconfig`, namespace: OPERATOR_NAMESPACE },
      stringData: { value: kubeconfig },
    };
    await kubectl(mgmt, ['apply', '-f', '-'], { input: JSON.stringify(secret) });
  }
}

/** A running operator process. */
export interface OperatorProcess {
  readonly identity: string;
  readonly logFile: string;
  readonly healthURL: string;
  readonly metricsURL: string;
  proc: ChildProcess;
  /** Sends a signal; resolves when the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** The process's metrics page. */
  metrics(): Promise<string>;
  /** The last lines of its log. */
  tail(lines?: number): string;
}

/**
 * The operator's production node flags: those of its image's ENTRYPOINT (operator/Dockerfile; V8 flags
 * such as --no-opt are not allowed in NODE_OPTIONS) and the NODE_OPTIONS of config/manager/manager.yaml.
 */
export function productionNodeFlags(): string[] {
  return [...imageNodeFlags(ROOT, OPERATOR_IMAGE), ...manifestNodeOptions(join(ROOT, 'config', 'manager', 'manager.yaml'), 'operator')];
}

/** {@link productionNodeFlags}, or the whitespace-separated flags of TRO_OPERATOR_NODE_FLAGS when it is set. */
export function operatorNodeFlags(): string[] {
  return flagsOr(process.env.TRO_OPERATOR_NODE_FLAGS, productionNodeFlags);
}

/**
 * Starts the operator under the management cluster's operator user, watching `namespace` (default
 * OPERATOR_NAMESPACE; another namespace needs the Role of config/rbac bound there to that user). The
 * leader Lease lives in the watched namespace.
 */
export async function startOperator(
  o: { identity: string; namespace?: string; leaderElect?: boolean; extraArgs?: string[]; env?: Record<string, string> } = { identity: 'op-1' },
): Promise<OperatorProcess> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build first (npm test does)`);
  const mgmt = managementCluster();
  const health = await freePort();
  const metricsPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tro-operator-'));
  const logFile = join(dir, `${o.identity}.log`);
  const log = createWriteStream(logFile);
  const args = [
    // The production node flags (the image's ENTRYPOINT and the manifest's NODE_OPTIONS), so tests and
    // benchmarks run what is deployed; TRO_OPERATOR_NODE_FLAGS replaces them to compare (bench:operator).
    ...operatorNodeFlags(),
    MAIN,
    '--kubeconfig',
    mgmt.user(MGMT_OPERATOR_USER).kubeconfigPath,
    '--namespace',
    o.namespace ?? OPERATOR_NAMESPACE,
    '--identity',
    o.identity,
    '--health-port',
    String(health),
    '--metrics-port',
    String(metricsPort),
    ...(o.leaderElect === false ? [] : ['--leader-elect']),
    ...(o.extraArgs ?? []),
  ];
  const proc = spawn(NODE, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'debug', ...(o.env ?? {}) } });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  proc.stdout?.pipe(log);
  proc.stderr?.pipe(log);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const op: OperatorProcess = {
    identity: o.identity,
    logFile,
    healthURL: `http://127.0.0.1:${health}`,
    metricsURL: `http://127.0.0.1:${metricsPort}/metrics`,
    proc,
    async kill(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      await exited;
    },
    async metrics() {
      return (await httpGet(op.metricsURL, { timeoutMs: 5000 })).body;
    },
    tail(lines = 60) {
      try {
        return readFileSync(logFile, 'utf8').trim().split('\n').slice(-lines).join('\n');
      } catch {
        return '';
      }
    },
  };
  // Ready once its caches synced (/readyz), or fail with its log.
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`operator ${o.identity} exited with ${proc.exitCode}:\n${op.tail()}`);
    const r = await httpGet(`${op.healthURL}/readyz`, { timeoutMs: 2000 }).catch(() => undefined);
    if (r?.status === 200) break;
    if (Date.now() > deadline) throw new Error(`operator ${o.identity} not ready after 60 s:\n${op.tail()}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  return op;
}
