/**
 * Break-glass benchmark (not a test): time to write (and clear) stop files on N nodes with the local
 * transport, and with the ssh transport against one real loopback sshd standing for N nodes (a
 * distinct remote path per node), at several concurrencies. Prints one JSON line per round.
 *
 * Run from the repository root (type stripping with the repository's resolve hook, as every npm script):
 *   npm run bench:breakglass                                   # local 200,1000; ssh 200 at 20,50
 *   npm run bench:breakglass -- --local 200 --ssh 500 --concurrency 20,50,100
 *
 * Needs openssh-server (/usr/sbin/sshd) for the ssh rounds.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeInventory, makeInventory } from '../../operator/src/breakglass/inventory.js';
import { LocalTransport } from '../../operator/src/breakglass/local.js';
import { SshTransport } from '../../operator/src/breakglass/ssh.js';
import type { NodeInfo } from '../../operator/src/rollout/interfaces.js';
import { SystemClock } from '#core/clock.js';
import { startLoopbackSshd } from '../../testkit/operator/breakglass/sshd-fixture.js';
import { measureBreakGlass } from './breakglass-measure.js';

function arg(name: string, fallback: string): number[] {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  return (v ?? fallback)
    .split(',')
    .filter((s) => s !== '')
    .map(Number);
}

const nodes = (n: number): NodeInfo[] =>
  Array.from({ length: n }, (_, i) => ({
    name: `node-${String(i).padStart(5, '0')}`,
    labels: { 'telemetry.rollout.dev/revision': 'bench000000' },
    addresses: [{ type: 'InternalIP', address: '127.0.0.1' }],
    ready: true,
  }));

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

const work = await mkdtemp(join(tmpdir(), 'tro-bench-'));
try {
  for (const n of arg('local', '200,1000')) {
    for (const concurrency of arg('local-concurrency', '20')) {
      const transport = new LocalTransport({ rootDir: join(work, `local-${n}-${concurrency}`), concurrency });
      print('local', await measureBreakGlass({ transport, nodes: nodes(n) }));
    }
  }

  const sshNodes = arg('ssh', '200');
  if (sshNodes.length > 0) {
    const sshd = await startLoopbackSshd();
    try {
      for (const n of sshNodes) {
        for (const concurrency of arg('concurrency', '20,50')) {
          const transport = new SshTransport({
            user: sshd.user,
            port: sshd.port,
            privateKeyPath: sshd.privateKeyPath,
            knownHostsPath: sshd.knownHostsPath,
            concurrency,
            timeoutSeconds: 30,
            remoteRootFor: (node) => join(work, `ssh-${n}-${concurrency}`, node.name),
          });
          print('ssh (one loopback sshd)', await measureBreakGlass({ transport, nodes: nodes(n) }));
        }
      }
    } finally {
      await sshd.stop();
    }
  }

  for (const n of arg('inventory', '1000,5000')) {
    const inv = makeInventory('bench', realisticNodes(n), new SystemClock());
    const json = Buffer.byteLength(JSON.stringify(inv));
    print('inventory size', { nodes: n, jsonBytes: json, storedBytes: encodeInventory(inv).length });
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
