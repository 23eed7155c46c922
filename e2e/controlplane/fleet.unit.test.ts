import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { reapStaleFleets, type FleetInfo } from './fleet.js';
import { isAlive, spawnLogged, stopProcesses, type ProcessRecord } from './processes.js';

const base = mkdtempSync(join(tmpdir(), 'tro-reap-test-'));
const started: ProcessRecord[] = [];
afterAll(async () => {
  await stopProcesses(started);
  rmSync(base, { recursive: true, force: true });
});

function fakeFleet(name: string, ownerPid: number, keepWorkDir = false): { workDir: string; proc: ProcessRecord } {
  const workDir = join(base, `tro-fleet-${name}`);
  mkdirSync(workDir);
  const proc = spawnLogged({ id: `${name}/kwok`, role: 'kwok', cluster: name, command: '/bin/sleep', args: ['120'], logFile: join(workDir, 'kwok.log') });
  started.push(proc);
  const info: FleetInfo = {
    version: 1,
    ownerPid,
    workDir,
    binDir: '/nowhere',
    keepWorkDir,
    createdAt: new Date().toISOString(),
    processes: [proc],
    clusters: [],
  };
  writeFileSync(join(workDir, 'fleet.json'), JSON.stringify(info));
  return { workDir, proc };
}

describe('reapStaleFleets', () => {
  it('stops and removes fleets whose owner died, and leaves live or kept ones alone', async () => {
    const deadPid = spawnSync('/bin/sh', ['-c', 'echo $$']).stdout.toString().trim();
    const dead = fakeFleet('dead', Number(deadPid));
    const live = fakeFleet('live', process.pid);
    const kept = fakeFleet('kept', Number(deadPid), true);
    const reaped = await reapStaleFleets(base);
    expect(reaped).toEqual([dead.workDir]);
    expect(isAlive(dead.proc.pid)).toBe(false);
    expect(existsSync(dead.workDir)).toBe(false);
    for (const f of [live, kept]) {
      expect(isAlive(f.proc.pid)).toBe(true);
      expect(existsSync(f.workDir)).toBe(true);
    }
  });
});
