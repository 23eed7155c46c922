/**
 * Break-glass benchmark (not a test): how long from the trigger to every agent's stop file written.
 *   - Per transport, at 200 nodes and the CRD's default concurrency: local, exec (a shell per node) and
 *     ssh (the real ssh client against one real loopback sshd standing for every node), plus an ssh round
 *     one connection at a time, which prices one connection;
 *   - in `Progressing` and in `RollingBack`, through the real reconciler and break-glass actuator
 *     (breakglass-phase.ts), for local and exec;
 *   - ssh at 5,000 nodes as a model (breakglass-model.ts): the real fan-out engine over the measured
 *     per-connection times, at the default concurrency, and the concurrency that would fit 10 s;
 *   - the stored inventory's size.
 * Prints one JSON line per round and then the table docs/benchmarks.md shows, and writes the results to
 * e2e/bench/results/breakglass.json (`--out -` to skip); `npm run bench:docs` renders the doc from it.
 *
 * Run from the repository root (type stripping with the repository's resolve hook, as every npm script):
 *   npm run bench:breakglass
 *   npm run bench:breakglass -- --ssh 0 --ssh-per-connection 0 --out -       # no ssh, results not kept
 *   npm run bench:breakglass -- --note "shared with other work: noisy"        # said in the doc
 * Options (node counts; 0 skips the round): --local 200 --exec 200 --ssh 200 --ssh-per-connection 200
 * --phases 200 --model 5000 --inventory 1000,5000 --concurrency <the CRD's default>.
 *
 * Needs openssh-server (/usr/sbin/sshd) for the ssh rounds. CPU-heavy: run it on a quiet machine.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeInventory, makeInventory } from '../../operator/src/breakglass/inventory.js';
import { ExecTransport } from '../../operator/src/breakglass/exec.js';
import { LocalTransport } from '../../operator/src/breakglass/local.js';
import { SshTransport } from '../../operator/src/breakglass/ssh.js';
import type { BreakGlassTransport } from '../../operator/src/breakglass/transport.js';
import type { NodeInfo } from '../../operator/src/rollout/interfaces.js';
import { SystemClock } from '#core/clock.js';
import { startLoopbackSshd } from '../../testkit/operator/breakglass/sshd-fixture.js';
import { renderBreakGlassSection, GOAL_MS } from './breakglass-doc.js';
import { measureBreakGlass, processTreeCpuMs, quantile, type BreakGlassFigures, type MeasureOptions } from './breakglass-measure.js';
import { concurrencyFor, modelFleet } from './breakglass-model.js';
import { measurePhase } from './breakglass-phase.js';
import { benchEnvironment, writeResults, type BreakGlassResults, type SshModel, type TransportRound } from './breakglass-results.js';
import { benchNodes, defaultTransportConcurrency, execCommand, onDiskUnder } from './breakglass-setup.js';

function arg(name: string, fallback: string): number[] {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  return (v ?? fallback)
    .split(',')
    .filter((s) => s !== '' && s !== '0')
    .map(Number);
}

function text(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** Nodes shaped like a cloud cluster's, for inventory sizes (distinct names, addresses, zones). */
const realisticNodes = (n: number): NodeInfo[] =>
  Array.from({ length: n }, (_, i) => {
    const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    const name = `ip-${ip.replace(/\./g, '-')}.eu-west-1.compute.internal`;
    return {
      name,
      labels: {
        'telemetry.rollout.dev/revision': i % 4 === 0 ? 'a1b2c3d4e5' : 'f6e5d4c3b2',
        'kubernetes.io/hostname': name,
        'topology.kubernetes.io/zone': `eu-west-1${'abc'[i % 3]}`,
        'node.kubernetes.io/instance-type': ['m6i.2xlarge', 'c6i.4xlarge', 'r6i.xlarge'][i % 3]!,
      },
      addresses: [
        { type: 'InternalIP', address: ip },
        { type: 'Hostname', address: name },
      ],
      ready: true,
    };
  });

const print = (what: string, figures: object): void => console.log(JSON.stringify({ what, ...figures }));

const defaultConcurrency = defaultTransportConcurrency();
const concurrency = arg('concurrency', String(defaultConcurrency))[0] ?? defaultConcurrency;
const startedAt = new Date();
const results: BreakGlassResults = {
  environment: benchEnvironment(startedAt),
  transports: [],
  phases: [],
  inventory: [],
};
const note = text('note');
if (note) results.environment.note = note;

/** Measures one round and keeps it (the per-node durations go to the model, not the file). */
async function round(purpose: TransportRound['purpose'], transport: BreakGlassTransport, timeoutSeconds: number, opts: Omit<MeasureOptions, 'transport'>) {
  const f: BreakGlassFigures = await measureBreakGlass({ transport, ...opts });
  const { nodeMs, clearMs, filesOnDisk, ...rest } = f;
  print(`${transport.kind} ${purpose}`, rest);
  results.transports.push({ ...rest, purpose, timeoutSeconds, clearMs: clearMs ?? 0, filesOnDisk: filesOnDisk ?? 0 });
  return nodeMs;
}

const work = await mkdtemp(join(tmpdir(), 'tro-bench-'));
try {
  for (const n of arg('local', '200')) {
    const rootDir = join(work, `local-${n}`);
    const transport = new LocalTransport({ rootDir, concurrency });
    await round('fleet', transport, 10, { nodes: benchNodes(n), onDisk: onDiskUnder(rootDir, transport.stopDirectory) });
  }
  for (const n of arg('exec', '200')) {
    const rootDir = join(work, `exec-${n}`);
    const transport = new ExecTransport({ command: execCommand(rootDir), concurrency });
    await round('fleet', transport, 10, { nodes: benchNodes(n), onDisk: onDiskUnder(rootDir, transport.stopDirectory) });
  }

  let perConnectionMs: number[] = [];
  let clientCpuMs: number | undefined;
  const sshFleet = arg('ssh', '200');
  const sshSingle = arg('ssh-per-connection', '200');
  if (sshFleet.length + sshSingle.length > 0) {
    const sshd = await startLoopbackSshd();
    try {
      const ssh = async (purpose: TransportRound['purpose'], n: number, c: number): Promise<number[]> => {
        const dir = join(work, `ssh-${purpose}-${n}`);
        // 30 s per node, not the default 10: one sshd serving every connection queues them, and the
        // round is to measure how long that takes, not to time nodes out.
        // Each node's root is a directory of its own under `dir`; the stop directory is the default one inside it.
        const transport = new SshTransport({
          user: sshd.user,
          port: sshd.port,
          privateKeyPath: sshd.privateKeyPath,
          knownHostsPath: sshd.knownHostsPath,
          concurrency: c,
          timeoutSeconds: 30,
          remoteRootFor: (node) => join(dir, node.name),
        });
        return round(purpose, transport, 30, {
          nodes: benchNodes(n),
          onDisk: onDiskUnder(dir, transport.stopDirectory),
          serverCpuMs: () => processTreeCpuMs(sshd.pid),
        });
      };
      for (const n of sshSingle) {
        perConnectionMs = await ssh('per-connection', n, 1);
        clientCpuMs = results.transports.at(-1)?.childCpuMsPerNode;
      }
      for (const n of sshFleet) await ssh('fleet', n, concurrency);
    } finally {
      await sshd.stop();
    }
  }

  for (const n of arg('phases', '200')) {
    for (const phase of ['Progressing', 'RollingBack'] as const) {
      for (const transport of ['local', 'exec'] as const) {
        const f = await measurePhase({ phase, transport, nodes: n });
        print(`phase ${phase} ${transport}`, f);
        results.phases.push(f);
      }
    }
  }

  const modelNodes = arg('model', '5000')[0];
  if (modelNodes !== undefined && perConnectionMs.length > 0) {
    const timeoutMs = 10_000;
    const base = { nodes: modelNodes, costsMs: perConnectionMs, timeoutMs };
    const atDefault = await modelFleet({ ...base, concurrency: defaultConcurrency });
    const sorted = [...perConnectionMs].sort((a, b) => a - b);
    const model: SshModel = {
      costFrom: { nodes: perConnectionMs.length, concurrency: 1, p50Ms: quantile(sorted, 0.5), p95Ms: quantile(sorted, 0.95) },
      nodes: modelNodes,
      defaultConcurrency,
      timeoutMs,
      budgetMs: GOAL_MS,
      wallMsAtDefault: atDefault.wallMs,
      okAtDefault: atDefault.ok,
    };
    if (atDefault.wallMs > GOAL_MS || atDefault.ok < modelNodes) {
      const c = await concurrencyFor(GOAL_MS, base);
      if (c !== undefined) {
        model.concurrencyForBudget = c;
        model.wallMsAtConcurrencyForBudget = (await modelFleet({ ...base, concurrency: c })).wallMs;
      }
    }
    if (clientCpuMs !== undefined) model.clientCpuSeconds = Math.round((modelNodes * clientCpuMs) / 100) / 10;
    print('ssh model', model);
    results.sshModel = model;
  }

  for (const n of arg('inventory', '1000,5000')) {
    const inv = makeInventory('bench', realisticNodes(n), new SystemClock());
    const size = { nodes: n, jsonBytes: Buffer.byteLength(JSON.stringify(inv)), storedBytes: encodeInventory(inv).length };
    print('inventory size', size);
    results.inventory.push(size);
  }
} finally {
  await rm(work, { recursive: true, force: true });
}

results.environment.loadAverageEnd = loadavg()[0]!;
console.log(`\n${renderBreakGlassSection(results)}\n`);
if (text('out') !== '-') console.log(`results written to ${await writeResults(results)}; render the doc with npm run bench:docs`);
