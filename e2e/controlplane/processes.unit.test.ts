import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from '@jest/globals';
import { exitReason, isAlive, isStopped, rssKiB, runs, signalIfOurs, spawnLogged, stopProcesses, tail } from './processes.js';

const dir = mkdtempSync(join(tmpdir(), 'tro-proc-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('processes', () => {
  it('spawns with output in a log file and knows when it ends', async () => {
    const rec = spawnLogged({
      id: 'echo',
      role: 'etcd',
      command: '/bin/sh',
      args: ['-c', 'echo hello; echo oops >&2; exit 3'],
      logFile: join(dir, 'echo.log'),
    });
    for (let i = 0; i < 100 && exitReason(rec.pid) === undefined; i++) await sleep(20);
    expect(exitReason(rec.pid)).toBe('exited with code 3');
    expect(isAlive(rec.pid)).toBe(false);
    const log = readFileSync(rec.logFile, 'utf8');
    expect(log).toMatch(/==== .* start echo: \/bin\/sh -c/);
    expect(tail(rec.logFile, 2)).toBe('hello\noops');
  });

  it('throws when the executable does not exist', () => {
    expect(() => spawnLogged({ id: 'x', role: 'etcd', command: join(dir, 'missing'), args: [], logFile: join(dir, 'x.log') })).toThrow(/could not be started/);
  });

  it('stops a SIGSTOPped process (SIGCONT before SIGTERM) and checks argv[0] before signalling', async () => {
    const rec = spawnLogged({ id: 'sleep', role: 'kwok', command: '/bin/sleep', args: ['60'], logFile: join(dir, 'sleep.log') });
    expect(runs(rec.pid, '/bin/sleep')).toBe(true);
    expect(runs(rec.pid, '/bin/other')).toBe(false);
    signalIfOurs({ pid: rec.pid, command: '/bin/other' }, 'SIGSTOP'); // not ours by argv[0]: no signal
    await sleep(50);
    expect(isStopped(rec.pid)).toBe(false);
    signalIfOurs(rec, 'SIGSTOP');
    for (let i = 0; i < 50 && !isStopped(rec.pid); i++) await sleep(20);
    expect(isStopped(rec.pid)).toBe(true);
    expect(rssKiB(rec.pid)).toBeGreaterThan(0);
    await stopProcesses([rec], 5000);
    expect(isAlive(rec.pid)).toBe(false);
    expect(exitReason(rec.pid)).toBe('killed by SIGTERM');
  });

  it('SIGKILLs what ignores SIGTERM after the grace period', async () => {
    const rec = spawnLogged({
      id: 'stubborn',
      role: 'coredns',
      command: '/bin/bash',
      args: ['-c', 'trap "" TERM; echo armed; while :; do sleep 0.1; done'],
      logFile: join(dir, 's.log'),
    });
    // The log's first line (our header) names the command too: wait for the script's own line.
    for (let i = 0; i < 100 && tail(rec.logFile, 1) !== 'armed'; i++) await sleep(20);
    expect(tail(rec.logFile, 1)).toBe('armed');
    await stopProcesses([rec], 300);
    expect(isAlive(rec.pid)).toBe(false);
    expect(exitReason(rec.pid)).toBe('killed by SIGKILL');
  });

  it('a component dies with the process that spawned it, even when that one is SIGKILLed', async () => {
    expect(existsSync('/usr/bin/setpriv')).toBe(true);
    // A separate Node process spawns a component and is then killed without any chance to clean up.
    const script = join(dir, 'owner.ts');
    const mod = join(dirname(fileURLToPath(import.meta.url)), 'processes.ts');
    writeFileSync(
      script,
      `import { spawnLogged } from ${JSON.stringify(mod)};
const rec = spawnLogged({ id: 'orphan', role: 'kwok', command: '/bin/sleep', args: ['60'], logFile: ${JSON.stringify(join(dir, 'orphan.log'))} });
console.log(rec.pid);
setInterval(() => undefined, 1000);
`,
    );
    const owner = spawn(process.execPath, ['--experimental-strip-types', '--no-warnings', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = await new Promise<number>((resolve) => owner.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
    for (let i = 0; i < 100 && !runs(pid, '/bin/sleep'); i++) await sleep(20);
    expect(runs(pid, '/bin/sleep')).toBe(true);
    owner.kill('SIGKILL');
    for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(20);
    expect(isAlive(pid)).toBe(false);
  });
});
