/**
 * The ssh transport's command building, without a network: shell quoting proven by a real `sh`, the
 * remote command run the way sshd runs it (`$SHELL -c "<command>"`) against hostile paths, and the ssh
 * argv (host key options, `--` before the host, hostile addresses refused).
 */
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseListing } from './listing.js';
import { LEFT_IN_PLACE_MARKER, LEGACY_REMOVED_MARKER, remoteCommand, remoteScript, shellQuote, SshTransport, type RemotePaths } from './ssh.js';
import { encodeStopFile } from './stopfile.js';
import { MAX_LISTED_FILE_BYTES, MAX_LISTED_FILES, TransportConfigError } from './transport.js';

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
  const other = encodeStopFile({ rollout: 'ns/other', revision: 'zzz999', reason: '', issuedAt: '2026-11-25T10:00:00.000Z' });
  /** The stop directory and the legacy file inside the test's temp directory. */
  const at = (stopDirectory: string, stopFilePath = join(dir, 'legacy-stop')): RemotePaths => ({ stopDirectory, stopFilePath });

  test('write/clear with a hostile directory: the named file lands exactly there, nothing else is created or run', async () => {
    const d = join(dir, `d ${HOSTILE.join(' ').replace(/\n/g, ' ').replace(/\//g, '_')}`, "stop 'dir'");
    await asSshdWould(remoteCommand(at(d), { action: 'write', file: 'auto-abc123' }, false), content);
    expect(await readFile(join(d, 'auto-abc123'), 'utf8')).toBe(content);
    expect((await stat(join(d, 'auto-abc123'))).mode & 0o777).toBe(0o644);
    // Only the hostile directory: no pwned file, no leftover temp file.
    expect(await readdir(dir)).toHaveLength(1);
    expect(await readdir(d)).toEqual(['auto-abc123']);
    await asSshdWould(remoteCommand(at(d), { action: 'clear', file: 'auto-abc123' }, false));
    expect(await readdir(d)).toEqual([]);
  });

  test('a file name outside the fixed alphabet is refused before any command is built', () => {
    for (const file of ['../stop', 'auto-abc/../x', '.auto-abc', 'auto-$(id)', "manual-'x'", 'other-abc', 'auto-']) {
      expect(() => remoteScript(at('/var/run/telemetry-rollout/stop.d'), { action: 'write', file })).toThrow(/invalid stop file name/);
      expect(() => remoteScript(at('/var/run/telemetry-rollout/stop.d'), { action: 'clear', file })).toThrow(/invalid stop file name/);
    }
  });

  test('a failing write exits non-zero, leaves the old state alone and no temp file behind', async () => {
    // The stop directory cannot be created (a regular file is in the way), so the script fails.
    await writeFile(join(dir, 'blocker'), 'not a directory\n');
    await expect(asSshdWould(remoteCommand(at(join(dir, 'blocker', 'stop.d')), { action: 'write', file: 'auto-abc123' }, false), content)).rejects.toThrow();
    expect(await readdir(dir)).toEqual(['blocker']);
    expect(await readFile(join(dir, 'blocker'), 'utf8')).toBe('not a directory\n');
  });

  test("clearing one issuer's file leaves another issuer's file alone", async () => {
    const d = join(dir, 'stop.d');
    await asSshdWould(remoteCommand(at(d), { action: 'write', file: 'auto-abc123' }, false), content);
    await asSshdWould(remoteCommand(at(d), { action: 'write', file: 'manual-all' }, false), content.replace('"abc123"', '"*"'));
    await asSshdWould(remoteCommand(at(d), { action: 'clear', file: 'auto-abc123', ifRevision: 'abc123' }, false));
    expect(await readdir(d)).toEqual(['manual-all']);
  });

  test('filtered clear: removes a file naming the revision, keeps and reports another one, succeeds when absent; removes the legacy file naming it', async () => {
    const d = join(dir, 'stop.d');
    const legacy = join(dir, 'stop');
    await asSshdWould(remoteCommand(at(d), { action: 'write', file: 'auto-abc123' }, false), other);
    const kept = await asSshdWould(remoteCommand(at(d, legacy), { action: 'clear', file: 'auto-abc123', ifRevision: 'abc123' }, false));
    expect(kept.stdout.trim()).toBe(LEFT_IN_PLACE_MARKER);
    expect(await readdir(d)).toEqual(['auto-abc123']);
    await writeFile(join(d, 'auto-abc123'), content);
    await writeFile(legacy, other);
    const removed = await asSshdWould(remoteCommand(at(d, legacy), { action: 'clear', file: 'auto-abc123', ifRevision: 'abc123' }, false));
    expect(removed.stdout).toBe('');
    expect(await readdir(d)).toEqual([]);
    // The legacy file names another revision: it stays.
    expect(await readFile(legacy, 'utf8')).toBe(other);
    await writeFile(legacy, content);
    const legacyGone = await asSshdWould(remoteCommand(at(d, legacy), { action: 'clear', file: 'auto-abc123', ifRevision: 'abc123' }, false));
    expect(legacyGone.stdout.trim()).toBe(LEGACY_REMOVED_MARKER);
    expect(await readdir(dir)).toEqual(['stop.d']);
    // An unfiltered clear never touches the legacy file.
    await writeFile(legacy, content);
    await asSshdWould(remoteCommand(at(d, legacy), { action: 'clear', file: 'auto-abc123' }, false));
    expect(await readFile(legacy, 'utf8')).toBe(content);
  });

  test('list: every file of the directory (dot-files skipped) and the legacy file, parsed back exactly; read-only', async () => {
    const d = join(dir, "stop 'd'");
    const legacy = join(dir, 'stop');
    await asSshdWould(remoteCommand(at(d), { action: 'write', file: 'auto-abc123' }, false), content);
    await writeFile(join(d, 'handmade file'), 'not json\nsecond line\n');
    await writeFile(join(d, '.auto-x.tmp.1'), 'partial');
    await writeFile(join(d, 'empty'), '');
    await writeFile(join(d, 'big'), 'x'.repeat(MAX_LISTED_FILE_BYTES + 1));
    await writeFile(legacy, other);
    const before = (await readdir(d)).sort();
    const { stdout } = await asSshdWould(remoteCommand(at(d, legacy), { action: 'list' }, false));
    expect(parseListing(stdout)).toEqual({
      files: [
        { name: 'auto-abc123', size: Buffer.byteLength(content), text: content },
        { name: 'big', size: MAX_LISTED_FILE_BYTES + 1, error: `too large to show (${MAX_LISTED_FILE_BYTES + 1} bytes)` },
        { name: 'empty', size: 0, text: '' },
        { name: 'handmade file', size: 21, text: 'not json\nsecond line\n' },
        { name: 'stop', legacy: true, size: Buffer.byteLength(other), text: other },
      ],
      truncated: false,
    });
    expect((await readdir(d)).sort()).toEqual(before);
  });

  test('list: a missing directory and no legacy file list nothing; a flood is cut at the bound', async () => {
    const none = await asSshdWould(remoteCommand(at(join(dir, 'nope')), { action: 'list' }, false));
    expect(parseListing(none.stdout)).toEqual({ files: [], truncated: false });
    const d = join(dir, 'flood');
    await mkdir(d);
    for (let i = 0; i <= MAX_LISTED_FILES; i++) await writeFile(join(d, `manual-r${i}`), '{}');
    const flood = parseListing((await asSshdWould(remoteCommand(at(d), { action: 'list' }, false))).stdout);
    expect(flood.files).toHaveLength(MAX_LISTED_FILES);
    expect(flood.truncated).toBe(true);
  });

  test('sudo wraps the same quoted script with sudo -n (never a password prompt)', () => {
    const p = at('/var/run/telemetry-rollout/stop.d', '/var/run/telemetry-rollout/stop');
    const cmd = remoteCommand(p, { action: 'write', file: 'auto-abc' }, true);
    expect(cmd.startsWith('sudo -n sh -c ')).toBe(true);
    expect(cmd.slice('sudo -n '.length)).toBe(remoteCommand(p, { action: 'write', file: 'auto-abc' }, false));
    expect(remoteScript(p, { action: 'write', file: 'auto-abc' })).toBe(
      "umask 022; mkdir -p -- '/var/run/telemetry-rollout/stop.d' && cat > '/var/run/telemetry-rollout/stop.d/.auto-abc.tmp.'$$ && chmod 0644 '/var/run/telemetry-rollout/stop.d/.auto-abc.tmp.'$$ && mv -f -- '/var/run/telemetry-rollout/stop.d/.auto-abc.tmp.'$$ '/var/run/telemetry-rollout/stop.d/auto-abc' || { rc=$?; rm -f -- '/var/run/telemetry-rollout/stop.d/.auto-abc.tmp.'$$; exit $rc; }",
    );
  });

  test('relative or non-normalised paths and invalid revisions are refused', () => {
    expect(() => remoteScript(at('var/run/stop.d'), { action: 'write', file: 'auto-abc' })).toThrow(TransportConfigError);
    expect(() => remoteScript(at('/var/run/../../etc'), { action: 'write', file: 'auto-abc' })).toThrow(TransportConfigError);
    expect(() => remoteScript(at('/var/run/stop.d', 'relative'), { action: 'list' })).toThrow(TransportConfigError);
    expect(() => remoteScript(at('/var/run/stop.d'), { action: 'clear', file: 'auto-abc', ifRevision: `x"; rm -rf /; "` })).toThrow(/invalid revision/);
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
      const outcomes = await t.write([{ name: 'evil', addresses: [{ type: 'InternalIP', address }] }], 'auto-abc', 'x');
      expect(outcomes[0]?.result).toBe('failed');
    },
  );

  test('invalid settings are configuration errors', () => {
    const base = { user: 'core', privateKeyPath: '/k', knownHostsPath: '/h' };
    expect(() => new SshTransport({ ...base, user: '-oProxyCommand=x' })).toThrow(TransportConfigError);
    expect(() => new SshTransport({ ...base, port: 70000 })).toThrow(TransportConfigError);
    expect(() => new SshTransport({ ...base, concurrency: 0 })).toThrow(TransportConfigError);
    expect(() => new SshTransport({ ...base, stopFilePath: 'relative' })).toThrow(TransportConfigError);
    expect(() => new SshTransport({ ...base, stopDirectory: '/var/run/x/' })).toThrow(TransportConfigError);
  });
});
