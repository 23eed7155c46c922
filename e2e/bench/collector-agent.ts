// Part 2 of `npm run bench:collector` (see collector.ts): one node-mode agent in its own process, the
// collector compiled as for its image and started through its container entry point; RSS and CPU from
// /proc.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CollectorConfigInput } from '#collector/config.js';
import { writeFakeHostRoot } from '../../testkit/collector/node/fakehostroot.js';
import { encodeStopFile, writeFileAtomic } from '../../operator/src/breakglass/stopfile.js';
import type { ClusterHandle } from '../controlplane/fleet.js';
import { freePort } from '../controlplane/net.js';
import { startNodeRuntime, type NodeRuntime } from '../noderuntime/index.js';
import { COLLECTOR_IMAGE, flagsOr, imageNodeFlags } from '../support/nodeflags.js';
import { CLK_TCK, procStat } from '../support/procstat.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const AGENT_MS = Number(process.env.TRO_BENCH_AGENT_SECONDS ?? 45) * 1000;
/** The user every agent of the bench runs as (its requests are told apart in the audit log by it). */
export const AGENT_USER = 'tro-collector-bench';

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A timestamped progress line of the bench, on stderr. */
export const say = (line: string) => process.stderr.write(`[bench:collector ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

/** Samples RSS every second for `ms`; mean/peak RSS in MiB and CPU as % of one core over the span. */
async function sample(pid: number, ms: number): Promise<{ peakMiB: number; meanMiB: number; cpuPercent: number }> {
  const start = procStat(pid);
  const t0 = Date.now();
  const rss: number[] = [start.rss];
  while (Date.now() - t0 < ms) {
    await sleep(1000);
    rss.push(procStat(pid).rss);
  }
  const end = procStat(pid);
  const mibOf = (b: number) => Math.round((b / 1048576) * 10) / 10;
  return {
    peakMiB: mibOf(Math.max(...rss)),
    meanMiB: mibOf(rss.reduce((a, b) => a + b, 0) / rss.length),
    cpuPercent: Math.round(((end.cpuTicks - start.cpuTicks) / CLK_TCK / ((Date.now() - t0) / 1000)) * 1000) / 10,
  };
}

/** Compiles the collector as its image does, into a temp dir that resolves the repo's node_modules. */
export async function buildCollector(): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tro-bench-collector-'));
  // Laid out like the image: dist/ beside a package.json with the repo's "imports", which map #core/*
  // to dist/lib/core, resolving the repo's node_modules.
  const { imports } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { imports: unknown };
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ type: 'module', imports }));
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  await new Promise<void>((resolve, reject) => {
    execFile(
      process.execPath,
      [tsc, '-p', path.join(ROOT, 'collector/tsconfig.build.json'), '--outDir', path.join(dir, 'dist')],
      { cwd: ROOT },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`tsc: ${stdout}${stderr}`));
        else resolve();
      },
    );
  });
  return dir;
}

/**
 * The node flags of the image's ENTRYPOINT (`["node", ...flags, "dist/collector/src/main.js"]` in
 * collector/Dockerfile), so the agent runs here as it does in its image; TRO_BENCH_AGENT_NODE_FLAGS
 * replaces them (to compare flags).
 */
export function agentNodeFlags(): string[] {
  return flagsOr(process.env.TRO_BENCH_AGENT_NODE_FLAGS, () => imageNodeFlags(ROOT, COLLECTOR_IMAGE));
}

/** Starts the compiled agent of `node` through its image's entry point, as user {@link AGENT_USER}. */
async function startSingleAgent(o: {
  dir: string;
  c: ClusterHandle;
  rt: NodeRuntime;
  node: string;
  root: string;
  intervalSeconds: number;
  tag: string;
}): Promise<ChildProcess> {
  const configFile = path.join(o.dir, `config-${o.tag}.json`);
  const config: CollectorConfigInput = {
    intervalSeconds: o.intervalSeconds,
    metadata: { mode: 'Kubelet', kubeletURL: o.rt.kubeletURL(o.node) },
    metricsPort: await freePort(),
    stopFilePath: path.join(o.root, 'var/run/telemetry-rollout/stop'),
    stopDirectory: path.join(o.root, 'var/run/telemetry-rollout/stop.d'),
    logLevel: 'warn',
  };
  writeFileSync(configFile, JSON.stringify(config));
  const child = spawn(process.execPath, [...agentNodeFlags(), path.join(o.dir, COLLECTOR_IMAGE.main)], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      PATH: process.env.PATH ?? '',
      TRO_MODE: 'node',
      TRO_CONFIG: configFile,
      NODE_NAME: o.node,
      POD_NAME: `bench-agent-${o.tag}`,
      POD_NAMESPACE: 'telemetry-system',
      TRO_REVISION: 'benchagent',
      TRO_HOST_ROOT: o.root,
      KUBECONFIG: o.c.user(AGENT_USER).kubeconfigPath,
    },
  });
  await sleep(500);
  if (child.exitCode !== null) throw new Error(`agent exited at once (code ${child.exitCode})`);
  return child;
}

/** Stops an agent process: SIGTERM, SIGKILL after 15 s. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await gone;
  clearTimeout(t);
}

/**
 * Part 2 of the bench (see the file comment): one node-mode agent of the compiled collector in its own
 * process, idle, at a 10 s interval and held by a stop file; rows of mean/peak RSS and CPU. The runtime
 * it starts (kubelet /pods only, no agents) is handed to `setRuntime` so the caller stops it.
 */
export async function agentFootprint(o: {
  buildDir: string;
  c: ClusterHandle;
  admin: ReturnType<ClusterHandle['kubeConfig']>;
  node: string;
  tmp: string;
  children: ChildProcess[];
  setRuntime: (rt: NodeRuntime) => void;
}): Promise<Array<Record<string, string | number>>> {
  const root = path.join(o.tmp, 'single', o.node);
  mkdirSync(path.join(root, 'var/run/telemetry-rollout'), { recursive: true });
  await writeFakeHostRoot(root, 1);
  // A runtime with no agents still serves the kubelet /pods of every node.
  const rt = await startNodeRuntime({ kubeConfig: o.admin, rootDir: path.join(o.tmp, 'kubelet-only'), namespace: 'no-collector-here', workers: 1 });
  o.setRuntime(rt);
  const footprint: Array<Record<string, string | number>> = [];
  const settle = 15_000;
  for (const [tag, interval] of [
    ['idle (interval 3600 s)', 3600],
    ['interval 10 s', 10],
  ] as const) {
    const child = await startSingleAgent({ dir: o.buildDir, c: o.c, rt, node: o.node, root, intervalSeconds: interval, tag: String(interval) });
    o.children.push(child);
    await sleep(settle);
    say(`single agent, ${tag}: sampling ${AGENT_MS / 1000} s`);
    const s = await sample(child.pid ?? 0, AGENT_MS);
    footprint.push({ agent: tag, 'mean RSS MiB': s.meanMiB, 'peak RSS MiB': s.peakMiB, 'CPU % of a core': s.cpuPercent });
    if (interval === 10) {
      await writeFileAtomic(stopFileIn(root), encodeStopFile({ rollout: 'bench/bench', revision: '*', reason: 'bench', issuedAt: new Date().toISOString() }));
      await sleep(5000);
      const st = await sample(child.pid ?? 0, Math.min(AGENT_MS, 30_000));
      footprint.push({ agent: 'held by a stop file', 'mean RSS MiB': st.meanMiB, 'peak RSS MiB': st.peakMiB, 'CPU % of a core': st.cpuPercent });
    }
    await stopChild(child);
  }
  return footprint;
}

/** A person's stop of every revision in the stop directory under a node root (what the agent polls). */
function stopFileIn(root: string): string {
  return path.join(root, 'var/run/telemetry-rollout/stop.d/manual-all');
}
