import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalTransport } from './local.js';
import { DEFAULT_STOP_DIRECTORY, encodeStopFile, parseStopFile } from './stopfile.js';
import { MAX_LISTED_FILE_BYTES, TransportConfigError, type NodeTarget } from './transport.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'tro-local-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const node = (name: string): NodeTarget => ({ name, addresses: [] });
const stopOf = (revision: string): string => encodeStopFile({ rollout: 'ns/agent', revision, reason: 'test', issuedAt: '2026-11-25T10:00:00.000Z' });

describe('LocalTransport', () => {
  test('writes <rootDir>/<node>/<stopDirectory>/<file> for every node, creating directories, and clears it', async () => {
    const t = new LocalTransport({ rootDir: root, concurrency: 4 });
    const nodes = Array.from({ length: 10 }, (_, i) => node(`kwok-node-${i}`));
    const written = await t.write(nodes, 'auto-abc123', stopOf('abc123'));
    expect(written.every((o) => o.result === 'ok')).toBe(true);
    expect(written.map((o) => o.node)).toEqual(nodes.map((n) => n.name));
    for (const n of nodes) {
      const path = join(root, n.name, DEFAULT_STOP_DIRECTORY, 'auto-abc123');
      expect(t.pathFor(n.name, 'auto-abc123')).toBe(path);
      expect(parseStopFile(await readFile(path, 'utf8')).revision).toBe('abc123');
      expect((await stat(path)).mode & 0o777).toBe(0o644);
      // No temp file left behind.
      expect(await readdir(join(path, '..'))).toEqual(['auto-abc123']);
    }
    const cleared = await t.clear(nodes, { file: 'auto-abc123' });
    expect(cleared.every((o) => o.result === 'ok' && o.message === undefined)).toBe(true);
    for (const n of nodes) await expect(stat(t.pathFor(n.name, 'auto-abc123'))).rejects.toMatchObject({ code: 'ENOENT' });
    const again = await t.clear(nodes.slice(0, 1), { file: 'auto-abc123' });
    expect(again[0]).toMatchObject({ result: 'ok', message: 'no stop file' });
  });

  test("stops compose: clearing the operator's file leaves a person's files, and each file is its own", async () => {
    const t = new LocalTransport({ rootDir: root });
    const n = [node('n1')];
    await t.write(n, 'auto-abc123', stopOf('abc123'));
    await t.write(n, 'manual-all', stopOf('*'));
    await t.write(n, 'manual-abc123', stopOf('abc123'));
    expect(await readdir(t.directoryFor('n1'))).toEqual(['auto-abc123', 'manual-abc123', 'manual-all']);
    await t.clear(n, { file: 'auto-abc123', ifRevision: 'abc123' });
    expect(await readdir(t.directoryFor('n1'))).toEqual(['manual-abc123', 'manual-all']);
    await t.clear(n, { file: 'manual-all', ifRevision: '*' });
    expect(await readdir(t.directoryFor('n1'))).toEqual(['manual-abc123']);
  });

  test('a file name outside the fixed alphabet is refused as a programming error', async () => {
    const t = new LocalTransport({ rootDir: root });
    for (const file of ['../../etc/passwd', '.hidden', 'auto-a/b', 'stop', 'auto-']) {
      expect(() => t.write([node('n1')], file, stopOf('abc123'))).toThrow(/invalid stop file name/);
      expect(() => t.clear([node('n1')], { file })).toThrow(/invalid stop file name/);
    }
    expect(await readdir(root)).toEqual([]);
  });

  test('node names that would escape rootDir fail that node only', async () => {
    const t = new LocalTransport({ rootDir: join(root, 'nodes') });
    const outcomes = await t.write([node('../../etc'), node('ok-node'), node('a/b'), node('UPPER')], 'auto-abc123', stopOf('abc123'));
    expect(outcomes.map((o) => [o.node, o.result])).toEqual([
      ['../../etc', 'failed'],
      ['ok-node', 'ok'],
      ['a/b', 'failed'],
      ['UPPER', 'failed'],
    ]);
    expect(outcomes[0]?.message).toMatch(/invalid node name/);
    expect(await readdir(root)).toEqual(['nodes']);
  });

  test('a node whose root cannot hold the file fails with the reason, the others succeed', async () => {
    // A regular file where the node's var/ directory should be.
    await mkdir(join(root, 'broken'), { recursive: true });
    await writeFile(join(root, 'broken', 'var'), 'x');
    const t = new LocalTransport({ rootDir: root });
    const outcomes = await t.write([node('fine'), node('broken')], 'auto-abc123', stopOf('abc123'));
    expect(outcomes.map((o) => o.result)).toEqual(['ok', 'failed']);
    expect(outcomes[1]?.message).toMatch(/ENOTDIR|EEXIST/);
  });

  test('a filtered clear removes only a file naming the revision and leaves others (and unparsable ones) in place', async () => {
    const t = new LocalTransport({ rootDir: root });
    await t.write([node('mine')], 'auto-abc123', stopOf('abc123'));
    await t.write([node('theirs')], 'auto-abc123', stopOf('zzz999'));
    await mkdir(t.directoryFor('handmade'), { recursive: true });
    await writeFile(t.pathFor('handmade', 'auto-abc123'), 'stop everything\n');
    const outcomes = await t.clear([node('mine'), node('theirs'), node('handmade'), node('none')], { file: 'auto-abc123', ifRevision: 'abc123' });
    expect(outcomes.map((o) => [o.node, o.result, o.message])).toEqual([
      ['mine', 'ok', undefined],
      ['theirs', 'ok', 'left in place: the stop file names revision zzz999'],
      ['handmade', 'ok', 'left in place: the stop file is not one this revision wrote'],
      ['none', 'ok', 'no stop file'],
    ]);
    await expect(stat(t.pathFor('mine', 'auto-abc123'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(t.pathFor('theirs', 'auto-abc123'), 'utf8')).toBe(stopOf('zzz999'));
    expect(await readFile(t.pathFor('handmade', 'auto-abc123'), 'utf8')).toBe('stop everything\n');
  });

  test('a filtered clear also removes the legacy single file naming the revision (a stop from before an upgrade), never another', async () => {
    const t = new LocalTransport({ rootDir: root });
    await mkdir(join(root, 'old', 'var/run/telemetry-rollout'), { recursive: true });
    await mkdir(join(root, 'other', 'var/run/telemetry-rollout'), { recursive: true });
    await writeFile(t.legacyPathFor('old'), stopOf('abc123'));
    await writeFile(t.legacyPathFor('other'), stopOf('*'));
    const outcomes = await t.clear([node('old'), node('other')], { file: 'auto-abc123', ifRevision: 'abc123' });
    expect(outcomes.map((o) => o.message)).toEqual(['no stop file; removed the legacy stop file too', 'no stop file']);
    await expect(stat(t.legacyPathFor('old'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(t.legacyPathFor('other'), 'utf8')).toBe(stopOf('*'));
    // Unfiltered (forced) clears never touch it.
    await t.clear([node('other')], { file: 'auto-abc123' });
    expect(await readFile(t.legacyPathFor('other'), 'utf8')).toBe(stopOf('*'));
  });

  test('list: the files of each node (dot-files skipped, the legacy file last), read-only; a node without files lists none', async () => {
    const t = new LocalTransport({ rootDir: root });
    await t.write([node('n1')], 'manual-all', stopOf('*'));
    await t.write([node('n1')], 'auto-abc123', stopOf('abc123'));
    await writeFile(join(t.directoryFor('n1'), '.auto-x.tmp-1-2'), 'partial');
    await writeFile(join(t.directoryFor('n1'), 'big'), 'x'.repeat(MAX_LISTED_FILE_BYTES + 1));
    await writeFile(t.legacyPathFor('n1'), stopOf('old1'));
    const [n1, n2, bad] = await t.list([node('n1'), node('n2'), node('../x')]);
    expect(n1).toMatchObject({
      node: 'n1',
      result: 'ok',
      files: [
        { name: 'auto-abc123', text: stopOf('abc123') },
        { name: 'big', size: MAX_LISTED_FILE_BYTES + 1, error: `too large to show (${MAX_LISTED_FILE_BYTES + 1} bytes)` },
        { name: 'manual-all', text: stopOf('*') },
        { name: 'stop', legacy: true, text: stopOf('old1') },
      ],
    });
    expect(n1?.files).toHaveLength(4);
    expect(n2).toMatchObject({ node: 'n2', result: 'ok', files: [] });
    expect(bad).toMatchObject({ result: 'failed', message: expect.stringMatching(/invalid node name/) });
    await expect(stat(join(root, 'n2'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('custom paths, and invalid settings', async () => {
    const t = new LocalTransport({ rootDir: root, stopDirectory: '/run/custom/stops' });
    await t.write([node('n1')], 'auto-abc123', stopOf('abc123'));
    expect(await readFile(join(root, 'n1/run/custom/stops/auto-abc123'), 'utf8')).toBe(stopOf('abc123'));
    expect(() => new LocalTransport({ rootDir: '' })).toThrow(TransportConfigError);
    expect(() => new LocalTransport({ rootDir: root, stopFilePath: '../stop' })).toThrow(TransportConfigError);
    expect(() => new LocalTransport({ rootDir: root, stopDirectory: 'stop.d' })).toThrow(TransportConfigError);
    expect(() => new LocalTransport({ rootDir: root, stopDirectory: '/var/run/x', stopFilePath: '/var/run/x' })).toThrow(TransportConfigError);
    expect(() => new LocalTransport({ rootDir: root, timeoutSeconds: 0 })).toThrow(TransportConfigError);
  });
});
