/**
 * Throughput benchmark of the Prometheus text parser (not a test): builds a synthetic page of about 5 MB
 * shaped like a kube-apiserver `/metrics` page (labelled histograms with 24 buckets, counters with codes,
 * HELP/TYPE lines) and prints MB/s.
 *
 * Run from the repository root: `npx node --import ./operator/src/cli/ts-resolve-hook.ts e2e/bench/gates-parse.ts`.
 */
import type * as PromText from '../../operator/src/gates/promtext.js';

// Node's type stripping does not rewrite `.js` specifiers to `.ts`, and tsc (without
// allowImportingTsExtensions) rejects `.ts` ones; a computed dynamic import keeps both happy.
const modulePath = new URL('../../operator/src/gates/promtext.ts', import.meta.url).href;
const { parsePrometheusText } = (await import(modulePath)) as typeof PromText;

const BUCKETS = [
  '0.005',
  '0.025',
  '0.05',
  '0.1',
  '0.2',
  '0.4',
  '0.6',
  '0.8',
  '1',
  '1.25',
  '1.5',
  '2',
  '3',
  '4',
  '5',
  '6',
  '8',
  '10',
  '15',
  '20',
  '30',
  '45',
  '60',
  '+Inf',
];
const VERBS = ['GET', 'LIST', 'WATCH', 'POST', 'PUT', 'PATCH', 'DELETE', 'APPLY'];
const RESOURCES = [
  'pods',
  'nodes',
  'services',
  'endpoints',
  'endpointslices',
  'configmaps',
  'secrets',
  'events',
  'leases',
  'deployments',
  'replicasets',
  'daemonsets',
];

/** A synthetic page of at least `targetBytes` characters. */
function syntheticPage(targetBytes: number): string {
  const parts: string[] = [];
  let size = 0;
  let family = 0;
  while (size < targetBytes) {
    const name = `apiserver_request_duration_seconds_${family++}`;
    const header = `# HELP ${name} [STABLE] Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.\n# TYPE ${name} histogram\n`;
    parts.push(header);
    size += header.length;
    for (const verb of VERBS) {
      for (const resource of RESOURCES) {
        const labels = `component="apiserver",dry_run="",group="",resource="${resource}",scope="namespace",subresource="",verb="${verb}",version="v1"`;
        let cumulative = 0;
        const lines: string[] = [];
        for (const le of BUCKETS) {
          cumulative += (family * 7 + le.length * 13) % 97;
          lines.push(`${name}_bucket{${labels},le="${le}"} ${cumulative}\n`);
        }
        lines.push(`${name}_sum{${labels}} ${(cumulative * 0.0123).toFixed(6)}\n`, `${name}_count{${labels}} ${cumulative}\n`);
        const chunk = lines.join('');
        parts.push(chunk);
        size += chunk.length;
      }
    }
  }
  return parts.join('');
}

const page = syntheticPage(5 * 1024 * 1024);
const megabytes = page.length / (1024 * 1024);
// Warm up the JIT, then time several runs and report the best and the median.
for (let i = 0; i < 3; i++) parsePrometheusText(page);
const runs: number[] = [];
let sampleCount = 0;
for (let i = 0; i < 10; i++) {
  const start = process.hrtime.bigint();
  sampleCount = parsePrometheusText(page).samples.length;
  runs.push(Number(process.hrtime.bigint() - start) / 1e9);
}
runs.sort((a, b) => a - b);
const median = runs[Math.floor(runs.length / 2)] ?? NaN;
const best = runs[0] ?? NaN;
console.log(
  `parsed ${megabytes.toFixed(2)} MB (${sampleCount} samples): median ${(median * 1000).toFixed(1)} ms = ${(megabytes / median).toFixed(1)} MB/s, best ${(megabytes / best).toFixed(1)} MB/s`,
);
