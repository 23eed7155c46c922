/**
 * The ssh transport's command building, without a network: shell quoting proven by a real `sh`, the
 * remote command run the way sshd runs it (`$SHELL -c "<command>"`) against hostile paths, and the ssh
 * argv (host key options, `--` before the host, hostile addresses refused).
 */
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { LEFT_IN_PLACE_MARKER, remoteCommand, remoteScript, shellQuote, SshTransport } from './ssh.js';
import { encodeStopFile } from './stopfile.js';
import { TransportConfigError } from './transport.js';

const run = promisify(execFile);

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tro-sshcmd-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs a command string the way sshd does: the login shell's `-c`, with `input` on stdin. */
function asSshdWould(command: string, input = ''): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile('/bin/sh', ['-c', command], { cwd: dir }, (err, stdout, stderr) =>
      err ? reject(new Error(`sh failed: ${stderr}`, { cause: err })) : resolve({ stdout, stderr }),
    );
    child.stdin?.end(input);
  });
}

const HOSTILE = [
  "it's",
  '"double"',
  '$(touch pwned)',
  '`touch pwned`',
  '; touch pwned ;',
  '$HOME ${HOME} $$',
  '* ? [a]',
  'back\\slash',
  "''",
  'new\nline',
  '  leading and trailing  ',
  '-rf',
  'ünïcödé',
];

describe('shellQuote', () => {
  test.each(HOSTILE)('%j survives a real sh as one literal word', async (s) => {
    const { stdout } = await run('/bin/sh', ['-c', `printf '%s' ${shellQuote(s)}`], { cwd: dir });
    expect(stdout).toBe(s);
    expect(await readdir(dir)).toEqual([]);
  });

  test('NUL cannot be quoted', () => {
    expect(() => shellQuote('a\0b')).toThrow(/NUL/);
  });
});

describe('remote command', () => {
  const content = encodeStopFile({ rollout: 'ns/agent', revision: 'abc123', reason: 'test', issuedAt: '2026-11-25T10:00:00.000Z' });

  test('write/clear with a hostile path: the file lands exactly there, nothing else is created or run', async () => {
    const path = join(dir, `d ${HOSTILE.join(' ').replace(/\n/g, ' ').replace(/\//g, '_')}`, "stop 'file'");
    await asSshdWould(remoteCommand(path, { action: 'write' }, false), content);
    expect(await readFile(path, 'utf8')).toBe(content);
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    // Only the hostile directory: no pwned file, no leftover temp file.
    expect(await readdir(dir)).toHaveLength(1);
    expect(await readdir(join(path, '..'))).toEqual(["stop 'file'"]);
    await asSshdWould(remoteCommand(path, { action: 'clear' }, false));
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('a failing write exits non-zero, leaves the old state alone and no temp file behind', async () => {
    // The stop file's directory cannot be created (a regular file is in the way), so the script fails.
    await writeFile(join(dir, 'blocker'), 'not a directory\n');
    await expect(asSshdWould(remoteCommand(join(dir, 'blocker', 'stop'), { action: 'write' }, false), content)).rejects.toThrow();
    expect(await readdir(dir)).toEqual(['blocker']);
    expect(await readFile(join(dir, 'blocker'), 'utf8')).toBe('not a directory\n');
  });

  test('filtered clear: removes a file naming the revision, keeps and reports another one, succeeds when absent', async () => {
    const path = join(dir, 'stop');
    await writeFile(path, encodeStopFile({ rollout: 'ns/other', revision: 'zzz999', reason: '', issuedAt: '2026-11-25T10:00:00.000Z' }));
    const kept = await asSshdWould(remoteCommand(path, { action: 'clear', ifRevision: 'abc123' }, false));
    expect(kept.stdout.trim()).toBe(LEFT_IN_PLACE_MARKER);
    expect(await readdir(dir)).toEqual(['stop']);
    await writeFile(path, content);
    const removed = await asSshdWould(remoteCommand(path, { action: 'clear', ifRevision: 'abc123' }, false));
    expect(removed.stdout).toBe('');
    expect(await readdir(dir)).toEqual([]);
    await asSshdWould(remoteCommand(path, { action: 'clear', ifRevision: 'abc123' }, false));
    // A wildcard stop file is cleared by its own revision, "*", matched literally (not as a pattern).
    await writeFile(path, encodeStopFile({ rollout: 'ns/a', revision: '*', reason: '', issuedAt: '2026-11-25T10:00:00.000Z' }));
    await asSshdWould(remoteCommand(path, { action: 'clear', ifRevision: 'abc123' }, false));
    expect(await readdir(dir)).toEqual(['stop']);
    await asSshdWould(remoteCommand(path, { action: 'clear', ifRevision: '*' }, false));
    expect(await readdir(dir)).toEqual([]);
  });

  test('sudo wraps the same quoted script with sudo -n (never a password prompt)', () => {
    const cmd = remoteCommand('/var/run/telemetry-rollout/stop', { action: 'write' }, true);
    expect(cmd.startsWith('sudo -n sh -c ')).toBe(true);
    expect(cmd.slice('sudo -n '.length)).toBe(remoteCommand('/var/run/telemetry-rollout/stop', { action: 'write' }, false));
    expect(remoteScript('/var/run/telemetry-rollout/stop', { action: 'write' })).toBe(
      "umask 022; mkdir -p -- '/var/run/telemetry-rollout' && cat > '/var/run/telemetry-rollout/stop.tmp.'$$ && chmod 0644 '/var/run/telemetry-rollout/stop.tmp.'$$ && mv -f -- '/var/run/telemetry-rollout/stop.tmp.'$$ '/var/run/telemetry-rollout/stop' || { rc=$?; rm -f -- '/var/run/telemetry-rollout/stop.tmp.'$$; exit $rc; }",
    );
  });

  test('relative or non-normalised paths and invalid revisions are refused', () => {
    expect(() => remoteScript('var/run/stop', { action: 'write' })).toThrow(TransportConfigError);
    expect(() => remoteScript('/var/run/../../etc/shadow', { action: 'write' })).toThrow(TransportConfigError);
    expect(() => remoteScript('/var/run/stop', { action: 'clear', ifRevision: `x"; rm -rf /; "` })).toThrow(/invalid revision/);
  });
});

describe('ssh argv', () => {
  const t = new SshTransport({ user: 'core', port: 2222, privateKeyPath: '/keys/id', knownHostsPath: '/keys/known_hosts', timeoutSeconds: 7 });

  test('batch mode, strict host keys against our known_hosts only, our key only, -- before the host', () => {
    const args = t.sshArgs('10.0.0.5', 'CMD');
    const opts = args.filter((_, i) => args[i - 1] === '-o');
    expect(opts).toEqual(
      expect.arrayContaining([
        'BatchMode=yes',
        'StrictHostKeyChecking=yes',
        'UserKnownHostsFile=/keys/known_hosts',
        'GlobalKnownHostsFile=/dev/null',
        'IdentitiesOnly=yes',
        'ConnectTimeout=7',
      ]),
    );
    expect(args.slice(0, 2)).toEqual(['-F', '/dev/null']);
    expect(args.slice(-5)).toEqual(['-l', 'core', '--', '10.0.0.5', 'CMD']);
    expect(args[args.indexOf('-i') + 1]).toBe('/keys/id');
    expect(args[args.indexOf('-p') + 1]).toBe('2222');
  });

  test.each(['-oProxyCommand=touch /tmp/pwned', '10.0.0.1 -v', 'host;id', '$(id)', ''])(
    'address %j is refused (a node failure, nothing run)',
    async (address) => {
      expect(() => t.sshArgs(address, 'CMD')).toThrow(/invalid node address/);
      const outcomes = await t.write([{ name: 'evil', addresses: [{ type: 'InternalIP', address }] }], 'x');
      expect(outcomes[0]?.result).toBe('failed');
    },
  );

  test('invalid settings are configuration errors', () => {
    const base = { user: 'core', privateKeyPath: '/k', knownHostsPath: '/h' };
    expect(() => new SshTransport({ ...base, user: '-oProxyCommand=x' })).toThrow(TransportConfigError);
    expect(() => new SshTransport({ ...base, port: 70000 })).toThrow(TransportConfigError);
    expect(() => new SshTransport({ ...base, concurrency: 0 })).toThrow(TransportConfigError);
    expect(() => new SshTransport({ ...base, stopFilePath: 'relative' })).toThrow(TransportConfigError);
  });
});
