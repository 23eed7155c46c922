// The `cluster` command for people: start a local fleet and keep it up until Ctrl-C, or measure one.
import { Command, InvalidArgumentError } from 'commander';
import { parseFleetSpec } from './default-fleet.js';
import { startFleet, type ClusterSpec, type Fleet } from './fleet.js';
import { measure } from './measure.js';
import { isAlive } from './processes.js';

function count(min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
    return n;
  };
}

interface UpOptions {
  clusters: number;
  nodes: number;
  podsPerNode: number;
  mgmt?: number;
  fleet?: string;
  separateEtcd?: boolean;
  workDir?: string;
  keepWorkDir?: boolean;
}

/** The clusters `up` starts: `--fleet` as given, else `cluster-1..N` with `--nodes` each (plus `mgmt` when asked). */
export function layoutFromOptions(o: Pick<UpOptions, 'clusters' | 'nodes' | 'podsPerNode' | 'mgmt' | 'fleet'>): ClusterSpec[] {
  if (o.fleet) return parseFleetSpec(o.fleet);
  const specs: ClusterSpec[] = [];
  if (o.mgmt !== undefined) specs.push({ name: 'mgmt', nodes: o.mgmt });
  for (let i = 1; i <= o.clusters; i++) specs.push({ name: `cluster-${i}`, nodes: o.nodes, podsPerNode: o.podsPerNode });
  return specs;
}

function printFleet(fleet: Fleet): void {
  const lines = ['', `Fleet up in ${fleet.startupSeconds?.toFixed(1)} s. Work dir ${fleet.workDir} (removed on exit).`, ''];
  for (const c of fleet.clusters) {
    lines.push(`${c.name}`);
    lines.push(`  kubeconfig  ${c.kubeconfigPath}   (context ${c.context})`);
    lines.push(`  API server  ${c.apiServerURL}`);
    lines.push(`  DNS         ${c.dns.host}:${c.dns.port}  metrics ${c.coreDNSMetricsURL}`);
    lines.push(`  nodes       ${c.nodes}`);
  }
  lines.push('', `All clusters at once: export KUBECONFIG=${fleet.clusters.map((c) => c.kubeconfigPath).join(':')}`);
  lines.push(`Fleet info (for attachFleet): ${fleet.infoFile}`, '', 'Press Ctrl-C to stop the fleet.', '');
  process.stdout.write(lines.join('\n'));
}

async function up(o: UpOptions): Promise<void> {
  // Our own signal handling, so the fleet is stopped before we say so and exit 0.
  const fleet = await startFleet({
    clusters: layoutFromOptions(o),
    sharedEtcd: !o.separateEtcd,
    handleSignals: false,
    ...(o.workDir ? { workDir: o.workDir } : {}),
    ...(o.keepWorkDir ? { keepWorkDir: true } : {}),
  });
  printFleet(fleet);
  const reported = new Set<number>();
  const watch = setInterval(() => {
    // A component that dies is reported once; the fleet is left as it is so the person can look.
    for (const p of fleet.processes()) {
      if (!isAlive(p.pid) && !reported.has(p.pid)) {
        reported.add(p.pid);
        process.stderr.write(`warning: ${p.id} (pid ${p.pid}) is not running; log ${p.logFile}\n`);
      }
    }
  }, 5000);
  await new Promise<void>((resolve) => {
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => resolve());
  });
  clearInterval(watch);
  process.stdout.write('\nstopping the fleet...\n');
  await fleet.stop();
  process.stdout.write('stopped: no process left, work dir removed\n');
}

/** Parses argv (as in process.argv) and runs the command. */
export async function main(argv: string[]): Promise<void> {
  const program = new Command('cluster').description('A local fleet of real Kubernetes control planes with kwok nodes (telemetry-rollout e2e harness).');
  program
    .command('up')
    .description('start a fleet, print its kubeconfigs and keep it running until Ctrl-C')
    .option('--clusters <n>', 'number of clusters (named cluster-1..N)', count(1), 3)
    .option('--nodes <n>', 'kwok nodes per cluster', count(0), 50)
    .option('--pods-per-node <n>', 'pause pods per node from Deployments', count(0), 0)
    .option('--mgmt <nodes>', 'also start a management cluster "mgmt" with this many nodes', count(0))
    .option('--fleet <spec>', 'explicit layout name:nodes[:podsPerNode],... (overrides --clusters/--nodes/--mgmt)')
    .option('--separate-etcd', 'one etcd per cluster instead of one shared etcd')
    .option('--work-dir <dir>', 'parent of the fleet work dir (default: the temp dir)')
    .option('--keep-work-dir', 'keep logs and kubeconfigs after stopping')
    .action(async (o: UpOptions) => up(o));
  program
    .command('measure')
    .description('measure build time, warm fleet start, RSS per process, restart and stop times; prints figures')
    .option('--fleet <spec>', 'layout to measure', 'mgmt:3,east:50,west:50,north:50')
    .option('--build-log <file>', 'log of a cold build.sh run to read the cold build time from')
    .action(async (o: { fleet: string; buildLog?: string }) => measure({ clusters: parseFleetSpec(o.fleet), ...(o.buildLog ? { buildLog: o.buildLog } : {}) }));
  await program.parseAsync(argv);
}
