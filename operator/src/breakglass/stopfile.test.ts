import { describe, expect, test } from '@jest/globals';
import { mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decide, parseStopFile as collectorParseStopFile } from '#collector/killswitch.js';
import {
  checkStopFileName,
  encodeStopFile,
  isStopFileName,
  isValidRevision,
  parseStopFile,
  parseStopFileName,
  removeFile,
  StopFileError,
  stopFileName,
  validateStopDirectory,
  validateStopFilePath,
  writeFileAtomic,
  type StopFile,
} from './stopfile.js';
import { TransportConfigError } from './transport.js';

const valid: StopFile = { rollout: 'tro-system/agent', revision: 'a1b2c3d4e5', reason: 'API server unreachable for 60s', issuedAt: '2026-11-25T10:00:00.000Z' };

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'tro-stopfile-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('stop file encoding', () => {
  test('round-trips, compact with a fixed key order and a trailing newline', () => {
    const text = encodeStopFile(valid);
    expect(text).toBe(
      '{"rollout":"tro-system/agent","revision":"a1b2c3d4e5","reason":"API server unreachable for 60s","issuedAt":"2026-11-25T10:00:00.000Z"}\n',
    );
    expect(parseStopFile(text)).toEqual(valid);
  });

  test('the collector reads what we write and stops the named revision only (the contract between the two)', () => {
    const text = encodeStopFile(valid);
    expect(collectorParseStopFile(text)).toEqual(valid);
    expect(decide('a1b2c3d4e5', { text })).toMatchObject({ stopped: true, reason: 'revision-match' });
    expect(decide('ffffffffff', { text })).toMatchObject({ stopped: false, reason: 'other-revision' });
    expect(decide('ffffffffff', { text: encodeStopFile({ ...valid, revision: '*' }) })).toMatchObject({ stopped: true, reason: 'wildcard' });
  });

  test('control characters in the reason become spaces (one clean line for a person reading the file)', () => {
    const text = encodeStopFile({ ...valid, reason: 'line1\nline2\ttab\u0007' });
    expect(text.split('\n')).toHaveLength(2);
    expect(parseStopFile(text).reason).toBe('line1 line2 tab ');
  });

  test.each([
    ['empty rollout', { ...valid, rollout: '' }],
    ['rollout with newline', { ...valid, rollout: 'a\nb' }],
    ['empty revision', { ...valid, revision: '' }],
    ['revision with a quote', { ...valid, revision: 'ab"c' }],
    ['revision with a space', { ...valid, revision: 'ab c' }],
    ['revision too long', { ...valid, revision: 'a'.repeat(64) }],
    ['reason too long', { ...valid, reason: 'x'.repeat(1025) }],
    ['issuedAt not RFC 3339', { ...valid, issuedAt: 'yesterday' }],
    ['issuedAt without zone', { ...valid, issuedAt: '2026-11-25T10:00:00' }],
  ])('encode rejects %s', (_name, f) => {
    expect(() => encodeStopFile(f)).toThrow(StopFileError);
  });

  test.each([
    ['not JSON', '{"rollout":'],
    ['an array', '[]'],
    ['missing revision', JSON.stringify({ rollout: 'a/b', reason: '', issuedAt: valid.issuedAt })],
    ['revision not a string', JSON.stringify({ ...valid, revision: 5 })],
    ['too large', JSON.stringify({ ...valid, reason: 'x'.repeat(70_000) })],
  ])('parse rejects %s', (_name, text) => {
    expect(() => parseStopFile(text)).toThrow(StopFileError);
  });

  test('revisions: label values and "*"', () => {
    expect(['*', 'a1b2c3d4e5', 'v1.2-rc_3', 'A'].map(isValidRevision)).toEqual([true, true, true, true]);
    expect(['**', '-a', 'a-', '', 'a/b', '$(x)'].map(isValidRevision)).toEqual([false, false, false, false, false, false]);
  });

  test.each(['relative/stop', '/var/run/../etc/passwd', '/var/run/dir/', '/', '/var//run/stop', '/var/run/\0stop'])('stop file path %j is rejected', (p) => {
    expect(() => validateStopFilePath(p)).toThrow(TransportConfigError);
  });
});

describe('writeFileAtomic', () => {
  test('creates missing directories and writes the content with mode 0644 whatever the umask', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'a/b/c/stop');
      const old = process.umask(0o077);
      try {
        await writeFileAtomic(path, 'hello\n');
      } finally {
        process.umask(old);
      }
      expect(await readFile(path, 'utf8')).toBe('hello\n');
      expect((await stat(path)).mode & 0o777).toBe(0o644);
      expect(await readdir(join(dir, 'a/b/c'))).toEqual(['stop']);
    });
  });

  test('replaces by rename: a new inode, and a reader that opened the old file keeps reading the old content whole', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'stop');
      await writeFileAtomic(path, 'old content\n');
      const before = await stat(path);
      const reader = await open(path, 'r');
      try {
        await writeFileAtomic(path, 'new content\n');
        const after = await stat(path);
        expect(after.ino).not.toBe(before.ino);
        expect(await readFile(path, 'utf8')).toBe('new content\n');
        // An in-place rewrite would have truncated what this descriptor sees.
        expect((await reader.readFile()).toString()).toBe('old content\n');
      } finally {
        await reader.close();
      }
    });
  });

  test('no partial file is ever visible: a reader polling during 200 rewrites of 256 KiB only ever sees a whole version', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'stop');
      const a = 'A'.repeat(256 * 1024);
      const b = 'B'.repeat(256 * 1024);
      await writeFileAtomic(path, a);
      let done = false;
      const seen = { a: 0, b: 0, other: 0 };
      const reader = (async () => {
        while (!done) {
          const text = await readFile(path, 'utf8');
          if (text === a) seen.a++;
          else if (text === b) seen.b++;
          else seen.other++;
        }
      })();
      try {
        for (let i = 0; i < 200; i++) await writeFileAtomic(path, i % 2 === 0 ? b : a);
      } finally {
        done = true;
        await reader;
      }
      expect(seen.other).toBe(0);
      expect(seen.a + seen.b).toBeGreaterThan(0);
      // And no temp file was left behind.
      expect(await readdir(dir)).toEqual(['stop']);
    });
  });

  test('the temp file lives in the same directory under another name and never at the final path', async () => {
    await withDir(async (dir) => {
      // A directory at the final path makes the rename fail after the temp file was written: the error
      // names the path, the temp file is cleaned up, and the final path is untouched.
      const path = join(dir, 'stop');
      await writeFile(join(dir, 'keep'), 'x');
      const { mkdir } = await import('node:fs/promises');
      await mkdir(path);
      await expect(writeFileAtomic(path, 'content')).rejects.toThrow(/write .*stop atomically/);
      expect((await readdir(dir)).sort()).toEqual(['keep', 'stop']);
      expect((await stat(path)).isDirectory()).toBe(true);
    });
  });

  test('removeFile is idempotent and says whether the file existed', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'stop');
      await writeFileAtomic(path, 'x');
      expect(await removeFile(path)).toBe(true);
      expect(await removeFile(path)).toBe(false);
    });
  });
});

describe('stop file names (one file per issuer and scope)', () => {
  test('the issuer and the revision, "all" for every revision, and back', () => {
    expect(stopFileName('auto', 'abc1234567')).toBe('auto-abc1234567');
    expect(stopFileName('manual', '*')).toBe('manual-all');
    expect(stopFileName('manual', 'v1.2_x-3')).toBe('manual-v1.2_x-3');
    expect(parseStopFileName('auto-abc1234567')).toEqual({ issuer: 'auto', revision: 'abc1234567' });
    expect(parseStopFileName('manual-all')).toEqual({ issuer: 'manual', revision: '*' });
    expect(parseStopFileName('manual-v1.2_x-3')).toEqual({ issuer: 'manual', revision: 'v1.2_x-3' });
  });

  test.each(['stop', 'other-abc', 'auto-', 'auto-.x', 'auto-a/b', '.auto-abc', 'auto-abc.tmp-', 'auto-*', 'Auto-abc', 'auto-a b'])(
    '%j is none of ours',
    (name) => {
      expect(parseStopFileName(name)).toBeUndefined();
      expect(isStopFileName(name)).toBe(false);
      expect(() => checkStopFileName(name)).toThrow(/invalid stop file name/);
    },
  );

  test('an invalid revision, an unknown issuer and the ambiguous revision "all" have no name', () => {
    expect(() => stopFileName('auto', 'a b')).toThrow(StopFileError);
    expect(() => stopFileName('auto', '../x')).toThrow(StopFileError);
    expect(() => stopFileName('root' as 'auto', 'abc')).toThrow(/unknown issuer/);
    expect(() => stopFileName('manual', 'all')).toThrow(/cannot be told apart/);
  });
});

describe('validateStopDirectory', () => {
  test.each(['/var/run/telemetry-rollout/stop.d', '/run/x'])('accepts %s', (p) => {
    expect(validateStopDirectory(p)).toBe(p);
  });
  test.each(['stop.d', '/', '/var/run/x/', '/var/run/../etc', '/var/./run', ''])('refuses %j', (p) => {
    expect(() => validateStopDirectory(p)).toThrow(TransportConfigError);
  });
});
