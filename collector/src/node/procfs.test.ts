import { describe, it, expect } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { NodeCollector, nodePathsUnder, parseMeminfo, parseNetDev, parseProcStat, realNodeFs } from './procfs.js';
import { writeFakeHostRoot } from '../../../testkit/collector/node/fakehostroot.js';

const STAT = `cpu  109735 0 27025 221850 567 0 263 84 0 0
cpu0 53444 0 12880 113236 71 0 76 43 0 0
cpu1 56291 0 14145 108614 495 0 187 40 0 0
intr 9392301 0 9 0
ctxt 17469164
btime 1764040000
`;
const MEMINFO = `MemTotal:       24684092 kB
MemFree:        20404556 kB
MemAvailable:   23028684 kB
Buffers:           21304 kB
Cached:          2530624 kB
SwapCached:            0 kB
Active(anon):     123456 kB
SwapTotal:       1048572 kB
SwapFree:        1048000 kB
HugePages_Total:       0
`;
const NETDEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 46933821  140711    0    0    0     0          0         0 46933821  140711    0    0    0     0       0          0
  eth0: 123456789 98765 3 4 0 0 0 12 987654321 56789 5 6 0 0 0 0
`;

describe('/proc parsers', () => {
  it('parses /proc/stat into seconds at USER_HZ=100 and counts CPUs', () => {
    const { total, cpus } = parseProcStat(STAT);
    expect(cpus).toBe(2);
    expect(total).toEqual({ user: 1097.35, nice: 0, system: 270.25, idle: 2218.5, iowait: 5.67, irq: 0, softirq: 2.63, steal: 0.84 });
    expect(() => parseProcStat('intr 1\n')).toThrow('/proc/stat');
  });

  it('parses /proc/meminfo into bytes, with the pre-3.14 MemAvailable fallback', () => {
    const m = parseMeminfo(MEMINFO);
    expect(m).toEqual({
      totalBytes: 24684092 * 1024,
      freeBytes: 20404556 * 1024,
      availableBytes: 23028684 * 1024,
      buffersBytes: 21304 * 1024,
      cachedBytes: 2530624 * 1024,
      swapTotalBytes: 1048572 * 1024,
      swapFreeBytes: 1048000 * 1024,
    });
    const old = parseMeminfo('MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 50 kB\n');
    expect(old.availableBytes).toBe(160 * 1024);
    expect(() => parseMeminfo('MemFree: 1 kB')).toThrow('MemTotal');
  });

  it('parses /proc/net/dev per interface', () => {
    const devs = parseNetDev(NETDEV);
    expect(devs.map((d) => d.device)).toEqual(['lo', 'eth0']);
    expect(devs[1]).toEqual({
      device: 'eth0',
      receiveBytes: 123456789,
      receivePackets: 98765,
      receiveErrors: 3,
      receiveDrops: 4,
      transmitBytes: 987654321,
      transmitPackets: 56789,
      transmitErrors: 5,
      transmitDrops: 6,
    });
  });
});

describe('NodeCollector', () => {
  it('reads a host root directory (as the e2e fake nodes provide) and computes CPU usage between samples', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'collector-root-'));
    try {
      await writeFakeHostRoot(root);
      const c = new NodeCollector(realNodeFs, nodePathsUnder(root));
      const first = await c.collect();
      expect(first.errors).toEqual([]);
      expect(first.cpu?.cpus).toBe(2);
      expect(first.cpu?.usageRatio).toBeUndefined();
      expect(first.memory?.totalBytes).toBe(16384000 * 1024);
      expect(first.network.find((d) => d.device === 'eth0')).toMatchObject({ up: true, receiveBytes: 5_000_000 });
      expect(first.network.find((d) => d.device === 'lo')?.up).toBeUndefined();
      expect(first.filesystems).toHaveLength(1);
      expect(first.filesystems[0]?.mountpoint).toBe('/');
      expect(first.filesystems[0]?.sizeBytes).toBeGreaterThan(0);
      // 300 busy + 700 idle jiffies later: 30 % busy.
      await writeFile(path.join(root, 'proc', 'stat'), 'cpu  100200 10 50100 800700 300 0 50 0 0 0\ncpu0 1 1 1 1 1 1 1 1\n');
      const second = await c.collect();
      expect(second.cpu?.usageRatio).toBeCloseTo(0.3, 10);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("prefers /proc/1/net/dev (the host's network namespace) over /proc/net/dev (the reader's)", async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'collector-root-'));
    try {
      await writeFakeHostRoot(root);
      const { mkdir } = await import('node:fs/promises');
      await mkdir(path.join(root, 'proc', '1', 'net'), { recursive: true });
      await writeFile(path.join(root, 'proc', '1', 'net', 'dev'), NETDEV);
      const sample = await new NodeCollector(realNodeFs, nodePathsUnder(root)).collect();
      expect(sample.network.find((d) => d.device === 'eth0')?.receiveBytes).toBe(123456789);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('reports a missing section as an error without failing the others', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'collector-root-'));
    try {
      await writeFakeHostRoot(root);
      await rm(path.join(root, 'proc', 'meminfo'));
      const sample = await new NodeCollector(realNodeFs, nodePathsUnder(root)).collect();
      expect(sample.errors.map((e) => e.source)).toEqual(['memory']);
      expect(sample.memory).toBeUndefined();
      expect(sample.cpu).toBeDefined();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
