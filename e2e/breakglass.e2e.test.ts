// Break-glass end to end: the Naive collector runs on a 200-node target (real agents, one per collector
// pod, from the node runtime); the target's kube-apiserver is frozen (SIGSTOP); the operator stops the
// agents through node-local stop files, without that API server; after SIGCONT it rolls back and only
// then clears the stop files. Then the same with the CLI while the operator is stopped.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TelemetryRollout } from '../operator/src/api/types.generated.js';
import { findRepoRoot } from '../operator/src/api/crd.js';
import { ALLOW_UNSAFE_ANNOTATION } from '../operator/src/rollout/preflight.js';
import { DEFAULT_E2E_EXTRA_USERS } from './controlplane/default-fleet.js';
import { startFleet, type ClusterHandle, type Fleet } from './controlplane/fleet.js';
import { dumpOnFailure, kubectl, kubectlJSON, managementCluster } from './controlplane/testing.js';
import type { NodeRuntime } from './noderuntime/api.js';
import { startNodeRuntime } from './noderuntime/runtime.js';
import { OPERATOR_NAMESPACE, prepareFleet, startOperator, type OperatorProcess } from './support/operator.js';

const NODES = Number(process.env.TRO_E2E_BREAKGLASS_NODES ?? 200);
const UNREACHABLE_AFTER = 10;
let big: Fleet | undefined;
let target: ClusterHandle;
let runtime: NodeRuntime | undefined;
let op: OperatorProcess | undefined;
const work = mkdtempSync(join(tmpdir(), 'tro-bg-'));
const nodesDir = join(work, 'nodes');
const CLI = join(findRepoRoot(), 'operator', 'bin', 'kubectl-tro');

function rollout(name: string, image: string): Record<string, unknown> {
  return {
    apiVersion: 'telemetry.rollout.dev/v1alpha1',
    kind: 'TelemetryRollout',
    metadata: { name, namespace: OPERATOR_NAMESPACE, annotations: { [ALLOW_UNSAFE_ANNOTATION]: 'true' } },
    spec: {
      collector: { image, config: { metadata: { mode: 'Naive', naiveRelistSeconds: 30 } } },
      targets: { clusters: [{ name: target.name, kubeconfigSecretRef: { name: `${target.name}-kubeconfig` } }] },
      strategy: { nodeRelabelQPS: 50, stages: [{ name: 'only', clusters: 1, nodeSteps: [50, 100], bakeSeconds: 600 }] },
      // Tolerant gates: this test is about break-glass, the gates have their own tests.
      gates: {
        intervalSeconds: 3,
        windowSeconds: 5,
        scrapeIntervalSeconds: 1,
        failureLimit: 5,
        coreDNS: { cacheTTLSeconds: 0 },
        apiServer: { maxP99LatencySeconds: 30, maxLatencyIncreaseRatio: 100, maxErrorRatio: 0.5 },
      },
      breakGlass: { unreachableAfterSeconds: UNREACHABLE_AFTER, action: 'Auto', transport: { type: 'local', local: { rootDir: nodesDir } } },
    },
  };
}

async function get(name: string): Promise<TelemetryRollout> {
  return kubectlJSON<TelemetryRollout>(managementCluster(), ['get', 'tro', name, '-n', OPERATOR_NAMESPACE, '-o', 'json']);
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 300_000, everyMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}\n${op?.tail(30) ?? ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * The stop files left on a node, as `node: file`: every file of its stop directory (dot-files are temp
 * files, skipped as the agent skips them) and the legacy single file if present.
 */
function stopFilesOn(node: string): string[] {
  const dir = runtime!.stopDirectory(node);
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => !f.startsWith('.')) : [];
  if (existsSync(runtime!.stopFilePath(node))) files.push('(legacy) stop');
  return files.map((f) => `${node}: ${f}`);
}

/** Node agents of a revision (the cluster-mode watcher is not on a node: break-glass is per node). */
async function nodeAgents(revision: string) {
  return (await runtime!.agents()).filter((a) => a.revision === revision && a.mode === 'node');
}

/** Node agents of a revision that are still making API calls (not stopped by their kill switch). */
async function running(revision: string): Promise<number> {
  return (await nodeAgents(revision)).filter((a) => !a.stopped).length;
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(CLI, args, { timeout: 120_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

/** Removes every stop file under the node roots, so a test never inherits another's (independence). */
function removeAllStopFiles(): void {
  if (!existsSync(nodesDir)) return;
  for (const node of readdirSync(nodesDir)) {
    rmSync(runtime!.stopDirectory(node), { recursive: true, force: true });
    rmSync(runtime!.stopFilePath(node), { force: true });
  }
}

describe(`break-glass on a ${NODES}-node target`, () => {
  beforeEach(() => removeAllStopFiles());

  beforeAll(async () => {
    big = await startFleet({ clusters: [{ name: 'bg', nodes: NODES }], extraUsers: DEFAULT_E2E_EXTRA_USERS.map((u) => ({ ...u })) });
    target = big.clusters[0]!;
    await prepareFleet([target]);
    runtime = await startNodeRuntime({ kubeConfig: target.kubeConfig(), rootDir: nodesDir });
  }, 600_000);

  afterAll(async () => {
    target?.resumeApiServer();
    await op?.kill('SIGTERM');
    await runtime?.stop();
    await kubectl(managementCluster(), ['delete', 'tro', '--all', '-n', OPERATOR_NAMESPACE, '--ignore-not-found']).catch(() => undefined);
    await big?.stop();
    rmSync(work, { recursive: true, force: true });
  }, 300_000);

  it(
    'Auto: the operator stops every agent without the API server, rolls back after it returns, then clears the stop files',
    dumpOnFailure(async () => {
      op = await startOperator({ identity: 'bg-auto' });
      const name = 'bg-auto';
      await kubectl(managementCluster(), ['apply', '-f', '-'], { input: JSON.stringify(rollout(name, 'registry.example/collector:bg-auto')) });
      const baking = await until('half the nodes run the naive collector', async () => {
        const r = await get(name);
        const c = r.status?.clusters?.[0];
        return c?.phase === 'Baking' ? r : undefined;
      });
      const rev = baking.status!.revision!;
      const expected = Math.ceil(NODES / 2);
      await until(`${expected} agents running`, async () => (await running(rev)) === expected, 180_000);

      const frozenAt = Date.now();
      target.pauseApiServer();
      let stoppedAt = 0;
      try {
        await until('every agent stopped', async () => (await running(rev)) === 0, 180_000, 250);
        stoppedAt = Date.now();
        // The attempt runs in the background: a later pass records its outcome.
        const bg = await until(
          'phase BreakGlass, the attempt recorded',
          async () => {
            const r = await get(name);
            const b = r.status?.clusters?.[0]?.breakGlass;
            return r.status?.phase === 'BreakGlass' && b && !b.inProgress && b.nodesPending === 0 ? r : undefined;
          },
          60_000,
        );
        const b = bg.status?.clusters?.[0]?.breakGlass;
        expect(b).toMatchObject({ revision: rev, nodesFailed: 0, nodesTimedOut: 0 });
        // The nodes labelled with the revision, and the watcher's node when it runs on an unlabelled one.
        expect(b?.nodesStopped).toBe(b?.nodesTargeted);
        expect([expected, expected + 1]).toContain(b?.nodesTargeted);
        expect(bg.status?.clusters?.[0]?.reachable).toBe(false);
        // Stopped, not crashed: the agents' pods still run (kwok), the agents are idle.
        expect(await nodeAgents(rev)).toHaveLength(expected);
      } finally {
        target.resumeApiServer();
      }
      console.log(
        `[report] break-glass (local transport, ${NODES}-node target, ${expected} agents): API server frozen → every agent stopped in ${((stoppedAt - frozenAt) / 1000).toFixed(1)} s (unreachableAfterSeconds ${UNREACHABLE_AFTER})`,
      );

      const done = await until(
        'RolledBack',
        async () => {
          const r = await get(name);
          return r.status?.phase === 'RolledBack' ? r : undefined;
        },
        300_000,
      );
      expect(done.status?.reason).toBe('BreakGlass');
      const c = done.status!.clusters![0]!;
      expect(c.breakGlass?.clearedAt).toBeDefined();
      // The stop files are gone, and no agent of the bad revision runs.
      const roots = (await kubectl(target, ['get', 'nodes', '-o', 'name']))
        .trim()
        .split('\n')
        .map((n) => n.replace('node/', ''));
      expect(roots.flatMap(stopFilesOn)).toEqual([]);
      expect(await nodeAgents(rev)).toHaveLength(0);
      // The history tells the story in order.
      const reasons = (done.status?.history ?? []).map((h) => h.reason);
      const order = ['ClusterUnreachable', 'BreakGlass', 'RollingBack', 'ClusterRolledBack', 'RolledBack'].map((r) => reasons.indexOf(r));
      expect(order.every((i) => i >= 0)).toBe(true);
      expect([...order].sort((a, b) => a - b)).toEqual(order);
      expect((done.status?.history ?? []).some((h) => h.reason === 'BreakGlass' && (h.message ?? '').includes('stop files cleared'))).toBe(true);
      await op.kill('SIGTERM');
      op = undefined;
      await kubectl(managementCluster(), ['delete', 'tro', name, '-n', OPERATOR_NAMESPACE]);
    }),
  );

  it(
    'Manual: with the operator stopped, the CLI stops every agent from an exported inventory',
    dumpOnFailure(async () => {
      op = await startOperator({ identity: 'bg-manual' });
      const name = 'bg-manual';
      await kubectl(managementCluster(), ['apply', '-f', '-'], { input: JSON.stringify(rollout(name, 'registry.example/collector:bg-manual')) });
      const baking = await until('baking', async () => {
        const r = await get(name);
        return r.status?.clusters?.[0]?.phase === 'Baking' ? r : undefined;
      });
      const rev = baking.status!.revision!;
      const expected = Math.ceil(NODES / 2);
      await until(`${expected} agents running`, async () => (await running(rev)) === expected, 180_000);
      // While healthy: export the inventory the operator keeps, for the day nothing answers.
      const invFile = join(work, 'inventory.json');
      const exp = await cli(['--kubeconfig', managementCluster().kubeconfigPath, 'inventory', 'export', target.name, '--file', invFile]);
      expect(exp).toMatchObject({ code: 0 });
      await op.kill('SIGTERM');
      op = undefined;

      target.pauseApiServer();
      try {
        const t = Date.now();
        const r = await cli([
          'break-glass',
          target.name,
          '--inventory',
          invFile,
          '--revision',
          rev,
          '--reason',
          'e2e manual',
          '--rollout',
          `${OPERATOR_NAMESPACE}/${name}`,
          '--local-root',
          nodesDir,
          '-o',
          'json',
        ]);
        expect(r.code).toBe(0);
        const outcome = JSON.parse(r.stdout) as { action: string; cluster: string; result: { nodesTargeted: number; nodesStopped: number } };
        expect(outcome).toMatchObject({ action: 'issue', cluster: target.name, result: { nodesTargeted: expected, nodesStopped: expected, nodesFailed: 0 } });
        await until('every agent stopped', async () => (await running(rev)) === 0, 60_000, 250);
        // A person's stop is their own file, and `break-glass status` says who issued it, offline.
        const status = await cli([
          'break-glass',
          'status',
          `${OPERATOR_NAMESPACE}/${name}`,
          '--cluster',
          target.name,
          '--inventory',
          invFile,
          '--local-root',
          nodesDir,
          '-o',
          'json',
        ]);
        expect(status.code).toBe(0);
        const listed = JSON.parse(status.stdout) as {
          nodesWithStops: number;
          nodes: Array<{ files: Array<{ name: string; issuer: string; revision?: string }> }>;
        };
        expect(listed.nodesWithStops).toBe(expected);
        expect(new Set(listed.nodes.flatMap((n) => n.files.map((f) => `${f.name} ${f.issuer} ${f.revision}`)))).toEqual(
          new Set([`manual-${rev} manual ${rev}`]),
        );
        console.log(
          `[report] manual break-glass (CLI, local transport, ${expected} agents): command + every agent stopped in ${((Date.now() - t) / 1000).toFixed(1)} s`,
        );
      } finally {
        target.resumeApiServer();
      }
      // Recovery by hand: abort (the operator rolls back), then clear the stop files once no agent runs.
      op = await startOperator({ identity: 'bg-manual-2' });
      await kubectl(managementCluster(), ['annotate', 'tro', name, '-n', OPERATOR_NAMESPACE, 'telemetry.rollout.dev/abort=manual-break-glass']);
      await until('RolledBack', async () => (await get(name)).status?.phase === 'RolledBack', 300_000);
      await until('no agent of the revision', async () => (await runtime!.agents()).every((a) => a.revision !== rev), 120_000);
      const clear = await cli(['break-glass', target.name, '--inventory', invFile, '--revision', rev, '--clear', '--local-root', nodesDir]);
      expect(clear.code).toBe(0);
      const roots = (await kubectl(target, ['get', 'nodes', '-o', 'name']))
        .trim()
        .split('\n')
        .map((n) => n.replace('node/', ''));
      expect(roots.flatMap(stopFilesOn)).toEqual([]);
    }),
  );
});
