/**
 * The fleet-scale figures of docs/benchmarks.md, rendered from the benchmark's results file
 * (e2e/bench/results/fleet.json): the section between {@link FLEET_BEGIN} and {@link FLEET_END} is
 * generated (`npm run bench:docs`) and a unit test fails when it differs from what the results say, so
 * no figure there, the sizing table included, is typed by hand.
 */
import type { FleetResults, FleetRun } from './fleet-results.js';
import { FLEET_RESULTS_FILE } from './fleet-results.js';
import { replaceSection } from './docsection.js';

/** The marker lines between which docs/benchmarks.md holds the generated fleet figures. */
export const FLEET_BEGIN = `<!-- BEGIN GENERATED: fleet figures (npm run bench:docs; from ${FLEET_RESULTS_FILE}) -->`;
/** See {@link FLEET_BEGIN}. */
export const FLEET_END = '<!-- END GENERATED: fleet figures -->';

/** The goals of the fleet benchmark (issue: the operator's own cost at 1,000 target clusters). */
export const FLEET_GOALS = {
  clusters: 1000,
  rssMiB: 500,
  passP99Seconds: 1,
  steadyRequestsPerClusterPerSecond: 1,
  /** etcd's default request size limit, which bounds an object. */
  etcdLimitBytes: 1.5 * 1024 * 1024,
} as const;

/** Peak RSS of a run over the rollout and the steady window. */
export function peakRss(r: FleetRun): number {
  return Math.max(r.rollout.peakRssMiB, r.steady?.peakRssMiB ?? 0);
}

const kib = (b: number): string => `${(b / 1024).toFixed(1)} KiB`;
const s = (x: number): string => `${x < 10 ? x.toFixed(2) : x.toFixed(1)} s`;
const n = (x: number): string => x.toLocaleString('en-US');

function outcome(r: FleetRun): string {
  if (r.outcome === 'Succeeded') return `Succeeded in ${r.rolloutSeconds} s`;
  if (r.outcome === 'OperatorExited')
    return `**operator died** after ${r.rolloutSeconds} s${r.error?.includes('heap out of memory') ? ' (JavaScript heap out of memory)' : ''}`;
  return `${r.outcome} after ${r.rolloutSeconds} s`;
}

/**
 * Least-squares line through (clusters, peak RSS) of the runs that finished, or undefined with fewer
 * than two distinct sizes. Used to say up to how many clusters a limit holds, never to fill a table.
 */
export function rssFit(runs: FleetRun[]): { baseMiB: number; perClusterMiB: number } | undefined {
  const pts = runs.filter((r) => r.outcome === 'Succeeded').map((r) => [r.clusters, peakRss(r)] as const);
  if (new Set(pts.map((p) => p[0])).size < 2) return undefined;
  const mx = pts.reduce((a, p) => a + p[0], 0) / pts.length;
  const my = pts.reduce((a, p) => a + p[1], 0) / pts.length;
  const sxy = pts.reduce((a, p) => a + (p[0] - mx) * (p[1] - my), 0);
  const sxx = pts.reduce((a, p) => a + (p[0] - mx) ** 2, 0);
  const slope = sxy / sxx;
  return { baseMiB: my - slope * mx, perClusterMiB: slope };
}

function goalLine(what: string, value: string, met: boolean, by: string): string {
  return `- ${what}: ${value}: ${met ? 'met' : `**missed** (${by})`}.`;
}

/** The generated section, markers included. */
export function renderFleetSection(r: FleetResults): string {
  const e = r.environment;
  const out: string[] = [FLEET_BEGIN, ''];
  const flags = [...new Set(r.runs.map((x) => x.nodeFlags))];
  out.push(
    `Run at ${e.date}: ${e.cores} cores (${e.cpuModel}), Node ${e.node}, ${e.platform}; load average ${e.loadAverageStart.toFixed(2)} at the start, ${e.loadAverageEnd.toFixed(2)} at the end.` +
      (e.note ? ` ${e.note}` : ''),
  );
  out.push('');
  out.push(
    `Virtual target clusters of ${n(r.runs[0]?.nodesPerCluster ?? 0)} nodes each, all served by one stub API server process; a rollout over every target ` +
      `(${r.settings.stages}; bake 0 s, agents ready ${r.settings.readyDelayMs / 1000} s after their node is labelled), then ${r.settings.steadySeconds} s of steady state. ` +
      `Node flags: ${flags.map((f, i) => `${flags.length > 1 ? `${i + 1} = ` : ''}\`${f}\`${f === r.productionNodeFlags ? ' (production)' : ''}`).join(', ')}. Pass durations are the operator's own \`tro_reconcile_duration_seconds\` histogram ` +
      "(quantiles interpolated within its buckets, as Prometheus' `histogram_quantile`; the count over 1 s is exact); requests are counted by the stub.",
  );
  out.push('');
  out.push(
    '| clusters | node flags | rollout | peak RSS | steady RSS | heap used / external at the end | pass p50 / p99 (passes over 1 s) | requests/s per cluster: rollout (busiest), steady | rollout object (status) |',
  );
  out.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const x of r.runs) {
    const flagNo = flags.length > 1 ? `${flags.indexOf(x.nodeFlags) + 1}` : 'as above';
    const mem = x.memoryAtEnd ? `${x.memoryAtEnd.heapUsedMiB} / ${x.memoryAtEnd.externalMiB} MiB` : '–';
    const pass =
      x.passesRollout.count > 0
        ? `${s(x.passesRollout.p50Seconds)} / ${s(x.passesRollout.p99Seconds)} (${x.passesRollout.overOneSecond} of ${x.passesRollout.count})`
        : '– (none recorded)';
    const req = `${x.requestsRollout.perClusterPerSecond} (${x.requestsRollout.maxClusterPerSecond}), ${x.requestsSteady ? x.requestsSteady.perClusterPerSecond : '–'}`;
    out.push(
      `| ${n(x.clusters)} | ${flagNo} | ${outcome(x)} | ${peakRss(x)} MiB | ${x.steady ? `${x.steady.meanRssMiB} MiB` : '–'} | ${mem} | ${pass} | ${req} | ${kib(x.objectBytes)} (${kib(x.statusBytes)}) |`,
    );
  }
  const unknown = r.runs.flatMap((x) => Object.entries(x.unknownPaths).map(([k, v]) => `${k} ×${v}`));
  if (unknown.length) out.push('', `Requests the stub did not serve (answered 404): ${unknown.map((u) => `\`${u}\``).join(', ')}.`);

  // The goals, judged at the goal's fleet size (or the largest measured): on a run that finished when
  // there is one (its node flags named), and every run there that died is said first.
  const top = r.runs.some((x) => x.clusters === FLEET_GOALS.clusters) ? FLEET_GOALS.clusters : Math.max(...r.runs.map((y) => y.clusters));
  const atTop = r.runs.filter((x) => x.clusters === top);
  const g = atTop.find((x) => x.outcome === 'Succeeded') ?? atTop[0];
  const flagName = (f: string): string => (flags.length > 1 ? `node flags ${flags.indexOf(f) + 1}` : 'the node flags above');
  if (g) {
    out.push('', `Goals at ${n(top)} clusters:`, '');
    for (const d of atTop.filter((x) => x.outcome === 'OperatorExited')) {
      out.push(
        `- With ${flagName(d.nodeFlags)} the operator **died** ${d.rolloutSeconds} s into the rollout${d.error?.includes('heap out of memory') ? ', out of JavaScript heap' : ''} (peak RSS ${peakRss(d)} MiB): every goal below is **missed** with those flags.`,
      );
    }
    if (g.outcome !== 'Succeeded') out.push('- No run at this size finished; the figures below are up to the moment the operator died.');
    else if (atTop.length > 1) out.push(`- Measured with ${flagName(g.nodeFlags)}, where the rollout finished:`);
    const rss = peakRss(g);
    out.push(
      goalLine(
        `RSS under ${FLEET_GOALS.rssMiB} MiB`,
        `peak ${rss} MiB${g.outcome === 'OperatorExited' ? ' before it died' : ''}`,
        rss < FLEET_GOALS.rssMiB && g.outcome === 'Succeeded',
        g.outcome === 'OperatorExited' ? 'the operator did not survive the rollout' : `by ${(rss - FLEET_GOALS.rssMiB).toFixed(1)} MiB`,
      ),
    );
    const p99 = g.passesRollout.p99Seconds;
    if (g.passesRollout.count > 0) {
      out.push(
        goalLine(
          `reconcile pass p99 under ${FLEET_GOALS.passP99Seconds} s`,
          `${s(p99)} during the rollout (${g.passesRollout.overOneSecond} of ${g.passesRollout.count} passes over 1 s, mean ${s(g.passesRollout.meanSeconds)})${g.passesSteady ? `, ${g.passesSteady.count ? s(g.passesSteady.p99Seconds) : 'no passes'} in steady state` : ''}`,
          p99 < FLEET_GOALS.passP99Seconds,
          `by ${s(p99 - FLEET_GOALS.passP99Seconds)}, ${(p99 / FLEET_GOALS.passP99Seconds).toFixed(1)}× the goal`,
        ),
      );
    } else {
      out.push(`- reconcile pass p99 under ${FLEET_GOALS.passP99Seconds} s: not measured (no pass was recorded).`);
    }
    if (g.requestsSteady) {
      const q = g.requestsSteady.perClusterPerSecond;
      out.push(
        goalLine(
          `at most ${FLEET_GOALS.steadyRequestsPerClusterPerSecond} request/s per cluster in steady state`,
          `${q} (busiest cluster ${g.requestsSteady.maxClusterPerSecond}); ${g.requestsRollout.perClusterPerSecond} during the rollout (busiest ${g.requestsRollout.maxClusterPerSecond})`,
          q <= FLEET_GOALS.steadyRequestsPerClusterPerSecond,
          `by ${(q - FLEET_GOALS.steadyRequestsPerClusterPerSecond).toFixed(3)}`,
        ),
      );
    }
    const pct = (100 * g.objectBytes) / FLEET_GOALS.etcdLimitBytes;
    out.push(
      goalLine(
        "the rollout object far below etcd's 1.5 MiB",
        `${kib(g.objectBytes)}${g.outcome === 'Succeeded' ? ' at the end' : ' when the operator died'}, ${pct.toFixed(0)} % of the limit`,
        pct < 50,
        pct >= 100 ? 'over the limit' : 'not far below it',
      ),
    );
  }

  // Sizing: clusters → memory, and whether the shipped limit fits.
  const limit = r.shippedLimitMiB;
  out.push('', `Sizing: the operator's memory by fleet size, against the shipped limit (config/manager/manager.yaml: ${limit} Mi).`, '');
  out.push('| clusters | node flags | peak RSS | fits the shipped limit | a limit with 25 % headroom |');
  out.push('| --- | --- | --- | --- | --- |');
  for (const x of [...r.runs].sort((a, b) => a.clusters - b.clusters || a.nodeFlags.localeCompare(b.nodeFlags))) {
    const rss = peakRss(x);
    const died = x.outcome === 'OperatorExited';
    const fits = died ? 'no: the operator died' : rss <= limit ? `yes (${Math.round((100 * rss) / limit)} %)` : `no: ${(rss - limit).toFixed(1)} MiB over`;
    const suggested = died ? '–' : `${Math.ceil((rss * 1.25) / 64) * 64} Mi`;
    out.push(`| ${n(x.clusters)} | ${flags.length > 1 ? flags.indexOf(x.nodeFlags) + 1 : 'as above'} | ${rss} MiB | ${fits} | ${suggested} |`);
  }
  for (const f of flags) {
    const fit = rssFit(r.runs.filter((x) => x.nodeFlags === f));
    if (!fit) continue;
    const holds = fit.perClusterMiB > 0 ? Math.floor((limit - fit.baseMiB) / fit.perClusterMiB) : undefined;
    out.push(
      '',
      `Peak RSS grows by about ${(fit.perClusterMiB * 1024).toFixed(0)} KiB per cluster from ${fit.baseMiB.toFixed(0)} MiB (least squares over the sizes that finished${flags.length > 1 ? `, node flags ${flags.indexOf(f) + 1}` : ''})` +
        (holds !== undefined ? `: the ${limit} Mi limit holds up to about ${holds > 0 ? n(holds) : 0} clusters.` : '.'),
    );
  }
  out.push('', FLEET_END);
  return out.join('\n');
}

/** `doc` with its fleet section replaced by the one rendered from `r` (the markers must be present). */
export function withFleetSection(doc: string, r: FleetResults): string {
  return replaceSection(doc, FLEET_BEGIN, FLEET_END, renderFleetSection(r), 'fleet');
}
