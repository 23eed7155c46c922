import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalTransport } from './local.js';
import { DEFAULT_STOP_FILE_PATH, encodeStopFile, parseStopFile } from './stopfile.js';
import { TransportConfigError, type NodeTarget } from './transport.js';

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
  test('writes <rootDir>/<node>/<stopFilePath> for every node, creating directories, and clears them', async () => {
    const t = new LocalTransport({ rootDir: root, concurrency: 4 });
    const nodes = Array.from({ length: 10 }, (_, i) => node(`kwok-node-${i}`));
    const written = await t.write(nodes, stopOf('abc123'));
    expect(written.every((o) => o.result === 'ok')).toBe(true);
    expect(written.map((o) => o.node)).toEqual(nodes.map((n) => n.name));
    for (const n of nodes) {
      const path = join(root, n.name, DEFAULT_STOP_FILE_PATH);
      expect(t.pathFor(n.name)).toBe(path);
      expect(parseStopFile(await readFile(path, 'utf8')).revision).toBe('abc123');
      expect((await stat(path)).mode & 0o777).toBe(0o644);
      expect(await readdir(join(path, '..'))).toEqual(['stop']);
    }
    const cleared = await t.clear(nodes);
    expect(cleared.every((o) => o.result === 'ok' && o.message === undefined)).toBe(true);
    for (const n of nodes) await expect(stat(t.pathFor(n.name))).rejects.toMatchObject({ code: 'ENOENT' });
    const again = await t.clear(nodes.slice(0, 1));
    expect(again[0]).toMatchObject({ result: 'ok', message: 'no stop file' });
  });

  test('node names that would escape rootDir fail that node only', async () => {
    const t = new LocalTransport({ rootDir: join(root, 'nodes') });
    const outcomes = await t.write([node('../../etc'), node('ok-node'), node('a/b'), node('UPPER')], stopOf('abc123'));
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
    const outcomes = await t.write([node('fine'), node('broken')], stopOf('abc123'));
    expect(outcomes.map((o) => o.result)).toEqual(['ok', 'failed']);
    expect(outcomes[1]?.message).toMatch(/ENOTDIR|EEXIST/);
  });

  test('a filtered clear removes only files naming the revision and leaves others (and unparsable ones) in place', async () => {
    const t = new LocalTransport({ rootDir: root });
    await t.write([node('mine')], stopOf('abc123'));
    await t.write([node('theirs')], stopOf('zzz999'));
    await mkdir(join(root, 'handmade', 'var/run/telemetry-rollout'), { recursive: true });
    await writeFile(t.pathFor('handmade'), 'stop everything\n');
    const outcomes = await t.clear([node('mine'), node('theirs'), node('handmade'), node('none')], { ifRevision: 'abc123' });
    expect(outcomes.map((o) => [o.node, o.result, o.message])).toEqual([
      ['mine', 'ok', undefined],
      ['theirs', 'ok', 'left in place: the stop file names revision zzz999'],
      ['handmade', 'ok', 'left in place: the stop file is not one this revision wrote'],
      ['none', 'ok', 'no stop file'],
    ]);
    await expect(stat(t.pathFor('mine'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(t.pathFor('theirs'), 'utf8')).toBe(stopOf('zzz999'));
    expect(await readFile(t.pathFor('handmade'), 'utf8')).toBe('stop everything\n');
  });

  test('a custom stop-file path, and invalid settings', async () => {
    const t = new LocalTransport({ rootDir: root, stopFilePath: '/run/custom/stop.json' });
    await t.write([node('n1')], stopOf('abc123'));
    expect(await readFile(join(root, 'n1/run/custom/stop.json'), 'utf8')).toBe(stopOf('abc123'));
    expect(() => new LocalTransport({ rootDir: '' })).toThrow(TransportConfigError);
    expect(() => new LocalTransport({ rootDir: root, stopFilePath: '../stop' })).toThrow(TransportConfigError);
    expect(() => new LocalTransport({ rootDir: root, timeoutSeconds: 0 })).toThrow(TransportConfigError);
  });
});
