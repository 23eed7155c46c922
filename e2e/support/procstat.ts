/**
 * A process's CPU time and RSS from /proc, for the benchmarks that measure the operator's and the
 * agent's footprint (one reading, so both measure the same way).
 */
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
export const CLK_TCK = 100;

/** utime+stime (ticks) and RSS (bytes) of a process, from /proc. */
export function procStat(pid: number): { cpuTicks: number; rss: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuTicks = Number(fields[11]) + Number(fields[12]);
  const rssLine =
    readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('VmRSS:')) ?? 'VmRSS: 0 kB';
  return { cpuTicks, rss: Number(rssLine.split(/\s+/)[1]) * 1024 };
}
