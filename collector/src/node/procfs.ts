/**
 * Node telemetry from the host's /proc and /sys (and statfs), read through an injectable filesystem with
 * injectable roots: the DaemonSet mounts the host's / at /host (so /host/proc, /host/sys), and the e2e
 * node runtime gives every fake node a directory standing for its root. Pure parsers are exported for
 * tests; nothing here touches the network.
 */
import { readFile, statfs } from 'node:fs/promises';
import path from 'node:path';

/** The filesystem operations the node collector needs. */
export interface NodeFs {
  readFile(path: string): Promise<string>;
  statfs(path: string): Promise<{ bsize: number; blocks: number; bfree: number; bavail: number; files: number; ffree: number }>;
}

/** NodeFs over node:fs/promises. */
export const realNodeFs: NodeFs = {
  readFile: (p) => readFile(p, 'utf8'),
  statfs: async (p) => {
    const s = await statfs(p);
    return { bsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree };
  },
};

/**
 * Kernel clock ticks per second of /proc/stat. USER_HZ is 100 on every mainstream Linux architecture
 * (x86, arm64); reading it needs sysconf(_SC_CLK_TCK), which Node does not expose.
 */
export const USER_HZ = 100;

/** CPU time in seconds by mode (sum over all CPUs). */
export interface CpuTimes {
  user: number;
  nice: number;
  system: number;
  idle: number;
  iowait: number;
  irq: number;
  softirq: number;
  steal: number;
}

/** The aggregate `cpu` line of /proc/stat (seconds) and the number of `cpuN` lines. */
export function parseProcStat(text: string): { total: CpuTimes; cpus: number } {
  let total: CpuTimes | undefined;
  let cpus = 0;
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] === 'cpu') {
      const n = f.slice(1, 9).map((x) => Number(x) / USER_HZ);
      const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = n;
      total = { user, nice, system, idle, iowait, irq, softirq, steal };
    } else if (f[0] !== undefined && /^cpu\d+$/.test(f[0])) {
      cpus++;
    }
  }
  if (!total || Object.values(total).some((v) => !Number.isFinite(v))) throw new Error('/proc/stat: no valid "cpu" line');
  return { total, cpus };
}

/** Memory figures of /proc/meminfo, in bytes. */
export interface MemInfo {
  totalBytes: number;
  freeBytes: number;
  availableBytes: number;
  buffersBytes: number;
  cachedBytes: number;
  swapTotalBytes: number;
  swapFreeBytes: number;
}

/** Parses /proc/meminfo (values in kB). MemTotal is required; MemAvailable falls back to free+buffers+cached (kernels < 3.14). */
export function parseMeminfo(text: string): MemInfo {
  const kv = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?/.exec(line);
    if (m?.[1] && m[2]) kv.set(m[1], Number(m[2]) * 1024);
  }
  const total = kv.get('MemTotal');
  if (total === undefined) throw new Error('/proc/meminfo: no MemTotal');
  const free = kv.get('MemFree') ?? 0;
  const buffers = kv.get('Buffers') ?? 0;
  const cached = kv.get('Cached') ?? 0;
  return {
    totalBytes: total,
    freeBytes: free,
    availableBytes: kv.get('MemAvailable') ?? free + buffers + cached,
    buffersBytes: buffers,
    cachedBytes: cached,
    swapTotalBytes: kv.get('SwapTotal') ?? 0,
    swapFreeBytes: kv.get('SwapFree') ?? 0,
  };
}

/** Counters of one network interface from /proc/net/dev. */
export interface NetDev {
  device: string;
  receiveBytes: number;
  receivePackets: number;
  receiveErrors: number;
  receiveDrops: number;
  transmitBytes: number;
  transmitPackets: number;
  transmitErrors: number;
  transmitDrops: number;
}

/** Parses /proc/net/dev (two header lines, then `iface: 16 numbers`). */
export function parseNetDev(text: string): NetDev[] {
  const out: NetDev[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!m?.[1] || m[2] === undefined) continue;
    const n = m[2].trim().split(/\s+/).map(Number);
    if (n.length < 16 || n.some((x) => !Number.isFinite(x))) continue;
    out.push({
      device: m[1],
      receiveBytes: n[0] ?? 0,
      receivePackets: n[1] ?? 0,
      receiveErrors: n[2] ?? 0,
      receiveDrops: n[3] ?? 0,
      transmitBytes: n[8] ?? 0,
      transmitPackets: n[9] ?? 0,
      transmitErrors: n[10] ?? 0,
      transmitDrops: n[11] ?? 0,
    });
  }
  return out;
}

/** Space and inodes of one filesystem. */
export interface FsUsage {
  mountpoint: string;
  sizeBytes: number;
  freeBytes: number;
  availBytes: number;
  files: number;
  filesFree: number;
}

/** One collection of node telemetry. Sections that failed are absent and listed in `errors`. */
export interface NodeSample {
  cpu?: { times: CpuTimes; cpus: number; /** busy fraction of all CPUs since the previous sample */ usageRatio?: number };
  memory?: MemInfo;
  filesystems: FsUsage[];
  network: (NetDev & { up?: boolean })[];
  errors: { source: string; error: Error }[];
}

/** Where the node collector reads from. */
export interface NodePaths {
  /** The host's /proc, e.g. `/host/proc`. */
  procRoot: string;
  /** The host's /sys, e.g. `/host/sys`. */
  sysRoot: string;
  /** Filesystems to statfs: the path to call statfs on and the mountpoint label to report. */
  filesystems: { path: string; mountpoint: string }[];
}

/** Paths under a host root directory: `<root>/proc`, `<root>/sys`, and `<root>` reported as `/`. */
export function nodePathsUnder(root: string): NodePaths {
  return { procRoot: path.join(root, 'proc'), sysRoot: path.join(root, 'sys'), filesystems: [{ path: root, mountpoint: '/' }] };
}

function busy(t: CpuTimes): number {
  return t.user + t.nice + t.system + t.irq + t.softirq + t.steal;
}
function all(t: CpuTimes): number {
  return busy(t) + t.idle + t.iowait;
}

/** Reads node telemetry; keeps the previous CPU sample to compute utilisation between collections. */
export class NodeCollector {
  private prevCpu: CpuTimes | undefined;
  private readonly fs: NodeFs;
  private readonly paths: NodePaths;
  constructor(fs: NodeFs, paths: NodePaths) {
    this.fs = fs;
    this.paths = paths;
  }

  /**
   * /proc/net is a symlink to /proc/self/net: read through a mounted host /proc it shows the network
   * namespace of the READER (the agent's pod), not the host's. /proc/1/net/dev is the host init's
   * namespace, i.e. the node's interfaces; fall back to /proc/net/dev where there is no PID 1 entry
   * (fake roots, or an agent using hostNetwork anyway).
   */
  private async readNetDev(): Promise<string> {
    try {
      return await this.fs.readFile(path.join(this.paths.procRoot, '1', 'net', 'dev'));
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
      return this.fs.readFile(path.join(this.paths.procRoot, 'net', 'dev'));
    }
  }

  /** Collects every section; a failing section is reported in `errors`, never thrown. */
  async collect(): Promise<NodeSample> {
    const sample: NodeSample = { filesystems: [], network: [], errors: [] };
    const section = async (source: string, fn: () => Promise<void>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        sample.errors.push({ source, error: err instanceof Error ? err : new Error(String(err)) });
      }
    };
    await Promise.all([
      section('cpu', async () => {
        const { total, cpus } = parseProcStat(await this.fs.readFile(path.join(this.paths.procRoot, 'stat')));
        let usageRatio: number | undefined;
        if (this.prevCpu) {
          const dAll = all(total) - all(this.prevCpu);
          if (dAll > 0) usageRatio = Math.min(1, Math.max(0, (busy(total) - busy(this.prevCpu)) / dAll));
        }
        this.prevCpu = total;
        sample.cpu = { times: total, cpus, ...(usageRatio !== undefined ? { usageRatio } : {}) };
      }),
      section('memory', async () => {
        sample.memory = parseMeminfo(await this.fs.readFile(path.join(this.paths.procRoot, 'meminfo')));
      }),
      section('network', async () => {
        const devs = parseNetDev(await this.readNetDev());
        sample.network = await Promise.all(
          devs.map(async (d) => {
            // operstate lives in /sys; a missing file (virtual or vanished interface) just omits `up`.
            try {
              const state = (await this.fs.readFile(path.join(this.paths.sysRoot, 'class', 'net', d.device, 'operstate'))).trim();
              return { ...d, up: state === 'up' || state === 'unknown' };
            } catch {
              return d;
            }
          }),
        );
      }),
      ...this.paths.filesystems.map((f) =>
        section(`filesystem:${f.mountpoint}`, async () => {
          const s = await this.fs.statfs(f.path);
          sample.filesystems.push({
            mountpoint: f.mountpoint,
            sizeBytes: s.blocks * s.bsize,
            freeBytes: s.bfree * s.bsize,
            availBytes: s.bavail * s.bsize,
            files: s.files,
            filesFree: s.ffree,
          });
        }),
      ),
    ]);
    return sample;
  }
}
