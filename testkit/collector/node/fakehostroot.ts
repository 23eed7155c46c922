import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Writes a plausible minimal host root (proc/stat, proc/meminfo, proc/net/dev, sys/class/net/eth0/operstate)
 * under `root`, for the e2e node runtime's fake nodes and for tests: what the node collector
 * (collector/src/node/procfs.ts) reads on a real node. `seed` varies the numbers.
 */
export async function writeFakeHostRoot(root: string, seed = 0): Promise<void> {
  await mkdir(path.join(root, 'proc', 'net'), { recursive: true });
  await mkdir(path.join(root, 'sys', 'class', 'net', 'eth0'), { recursive: true });
  const j = 100_000 + seed * 37;
  await writeFile(
    path.join(root, 'proc', 'stat'),
    `cpu  ${j} 10 ${j / 2} ${j * 8} 300 0 50 0 0 0\ncpu0 ${j / 2} 5 ${j / 4} ${j * 4} 150 0 25 0 0 0\ncpu1 ${j / 2} 5 ${j / 4} ${j * 4} 150 0 25 0 0 0\nintr 1\nctxt 2\nbtime 1764000000\n`,
  );
  await writeFile(
    path.join(root, 'proc', 'meminfo'),
    `MemTotal:       16384000 kB\nMemFree:         ${8000000 - seed} kB\nMemAvailable:   ${12000000 - seed} kB\nBuffers:          100000 kB\nCached:          3000000 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n`,
  );
  await writeFile(
    path.join(root, 'proc', 'net', 'dev'),
    'Inter-|   Receive                                                |  Transmit\n' +
      ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n' +
      '    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n' +
      `  eth0: ${5_000_000 + seed} 4000 0 1 0 0 0 0 ${2_000_000 + seed} 3000 0 0 0 0 0 0\n`,
  );
  await writeFile(path.join(root, 'sys', 'class', 'net', 'eth0', 'operstate'), 'up\n');
}
