// Figures about the local control plane, printed for people (and the issue's closing note): build time,
// warm start of a fleet, memory of each process, fault-control and stop times. Not a test: no thresholds.
import { existsSync, readFileSync } from 'node:fs';
import { ensureBinaries, startFleet, type ClusterSpec } from './fleet.js';
import { isAlive } from './processes.js';

/** Seconds of the last "all binaries ready ... (Ns)" line of a build.sh log, if any. */
export function buildSecondsFromLog(text: string): number | undefined {
  const all = [...text.matchAll(/all binaries ready in \S+ \((\d+)s\)/g)];
  const last = all[all.length - 1];
  return last ? Number(last[1]) : undefined;
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;

/**
 * Starts `clusters`, prints the figures to stdout, stops the fleet. `buildLog` names a log of a cold
 * build.sh run (the cold build time is read from it; a cold build is not repeated here).
 */
export async function measure(o: { clusters: ClusterSpec[]; buildLog?: string }): Promise<void> {
  const out: string[] = [];
  const say = (s: string) => {
    out.push(s);
    process.stdout.write(`${s}\n`);
  };
  if (o.buildLog && existsSync(o.buildLog)) {
    const s = buildSecondsFromLog(readFileSync(o.buildLog, 'utf8'));
    say(`cold build (from ${o.buildLog}): ${s === undefined ? 'no "all binaries ready" line' : `${s} s`}`);
  }
  let t = Date.now();
  await ensureBinaries();
  say(`build.sh with a warm cache: ${secs(Date.now() - t)}`);

  t = Date.now();
  const fleet = await startFleet({ clusters: o.clusters });
  try {
    say(`warm start of ${o.clusters.map((c) => `${c.name}:${c.nodes}`).join(',')}: ${secs(Date.now() - t)} (until every node Ready and every CoreDNS synced)`);
    // Let start-up transients (informer lists, node registration) settle before reading memory.
    await new Promise((r) => setTimeout(r, 15_000));
    const rss = fleet.rss();
    say('RSS per process (VmRSS, 15 s after start):');
    for (const p of rss) say(`  ${p.id.padEnd(32)} pid ${String(p.pid).padEnd(8)} ${p.rssKiB === undefined ? 'gone' : mib(p.rssKiB)}`);
    const byRole = new Map<string, number[]>();
    for (const p of rss) if (p.rssKiB !== undefined) byRole.set(p.role, [...(byRole.get(p.role) ?? []), p.rssKiB]);
    say('RSS by process type (min / max / total):');
    for (const [role, v] of byRole) say(`  ${role.padEnd(24)} ${mib(Math.min(...v))} / ${mib(Math.max(...v))} / ${mib(v.reduce((a, b) => a + b, 0))}`);
    say(`  all processes: ${mib(rss.reduce((a, p) => a + (p.rssKiB ?? 0), 0))}`);

    const target = fleet.clusters[fleet.clusters.length - 1];
    if (target) {
      t = Date.now();
      await target.restartApiServer();
      say(`${target.name}: kube-apiserver restart until /readyz: ${secs(Date.now() - t)}`);
      t = Date.now();
      await target.restartCoreDNS();
      await target.waitCoreDNSReady();
      say(`${target.name}: CoreDNS restart until ready: ${secs(Date.now() - t)}`);
    }
  } finally {
    const pids = fleet.processes().map((p) => p.pid);
    t = Date.now();
    await fleet.stop();
    say(`stop: ${secs(Date.now() - t)}; processes left: ${pids.filter(isAlive).length}; work dir left: ${existsSync(fleet.workDir)}`);
  }
}
