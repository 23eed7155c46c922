import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { ExecTransport } from '../../operator/src/breakglass/exec.js';
import { encodeStopFile, parseStopFile, stopFileName } from '../../operator/src/breakglass/stopfile.js';
import { validateRollout } from '../../operator/src/api/validate.js';
import { benchNodes, defaultTransportConcurrency, execCommand, exists, stopFileOnDisk } from './breakglass-setup.js';

describe("the benchmark's exec command keeps the exec transport's contract", () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'tro-bench-exec-test-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('writes stdin as the named file of each node’s stop directory, keeps a file naming another revision on a filtered clear, removes its own', async () => {
    const t = new ExecTransport({ command: execCommand(root), concurrency: 3 });
    const nodes = benchNodes(3);
    const file = stopFileName('auto', 'rev1');
    const content = encodeStopFile({ rollout: 'ns/r', revision: 'rev1', reason: 'test', issuedAt: new Date(0).toISOString() });
    expect((await t.write(nodes, file, content)).map((o) => o.result)).toEqual(['ok', 'ok', 'ok']);
    const path = (n: string) => stopFileOnDisk(root, n, t.stopDirectory, file);
    for (const n of nodes) expect(parseStopFile(await readFile(path(n.name), 'utf8')).revision).toBe('rev1');
    // The temp file was renamed away: the directory holds the stop file alone.
    expect(await readdir(join(root, nodes[0]!.name, t.stopDirectory))).toEqual([file]);

    const kept = await t.clear(nodes, { file, ifRevision: 'rev2' });
    expect(kept.map((o) => [o.result, o.message])).toEqual(Array(3).fill(['ok', 'left in place: the stop file names another revision']));
    expect(await exists(path(nodes[0]!.name))).toBe(true);

    expect((await t.clear(nodes, { file, ifRevision: 'rev1' })).map((o) => o.result)).toEqual(['ok', 'ok', 'ok']);
    for (const n of nodes) expect(await exists(path(n.name))).toBe(false);
    // Clearing what is not there is fine.
    expect((await t.clear(nodes, { file })).map((o) => o.result)).toEqual(['ok', 'ok', 'ok']);
  });

  it('clears only the named file: another issuer’s stop in the same directory stays', async () => {
    const t = new ExecTransport({ command: execCommand(root), concurrency: 1 });
    const nodes = benchNodes(1);
    const content = encodeStopFile({ rollout: 'ns/r', revision: 'rev1', reason: 'test', issuedAt: new Date(0).toISOString() });
    await t.write(nodes, stopFileName('auto', 'rev1'), content);
    await t.write(nodes, stopFileName('manual', 'rev1'), content);
    expect((await t.clear(nodes, { file: stopFileName('auto', 'rev1') })).map((o) => o.result)).toEqual(['ok']);
    expect(await readdir(join(root, nodes[0]!.name, t.stopDirectory))).toEqual([stopFileName('manual', 'rev1')]);
  });

  it('refuses to list rather than treating list as a write', async () => {
    const t = new ExecTransport({ command: execCommand(root), concurrency: 1 });
    const [listing] = await t.list(benchNodes(1));
    expect(listing?.result).toBe('failed');
    expect(listing?.message).toContain('action list not supported');
    expect(await exists(join(root, benchNodes(1)[0]!.name, t.stopDirectory))).toBe(false);
  });
});

describe('defaultTransportConcurrency', () => {
  it('is the concurrency a rollout gets when its transport names none', () => {
    const r = validateRollout({
      apiVersion: 'telemetry.rollout.dev/v1alpha1',
      kind: 'TelemetryRollout',
      metadata: { name: 'r', namespace: 'default' },
      spec: {
        collector: { image: 'collector:1' },
        targets: { clusters: [{ name: 'a', kubeconfigSecretRef: { name: 'a-kc' } }] },
        breakGlass: { transport: { type: 'local', local: { rootDir: '/tmp/x' } } },
      },
    });
    expect(r.valid).toBe(true);
    const spec = (r.defaulted as { spec: { breakGlass: { transport: { concurrency: number } } } }).spec;
    expect(spec.breakGlass.transport.concurrency).toBe(defaultTransportConcurrency());
  });
});
