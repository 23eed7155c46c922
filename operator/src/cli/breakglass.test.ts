import { afterAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { parseStopFile } from '../breakglass/stopfile.js';
import { FakeClock } from '../../../testkit/core/fakeclock.js';
import {
  breakGlassExitCode,
  breakGlassStatusExitCode,
  renderBreakGlass,
  renderBreakGlassStatus,
  runBreakGlass,
  runBreakGlassStatus,
  transportFromFile,
  type BreakGlassOptions,
  type BreakGlassStatusOptions,
} from './breakglass.js';
import { CliError, EXIT } from './errors.js';
import { FIXTURE_NOW, fixtureManifest } from '../../../testkit/operator/cli/fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'tro-cli-bg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const REV = '5d2c9a1f';
const node = (name: string, revision?: string) => ({
  name,
  labels: revision ? { 'telemetry.rollout.dev/revision': revision } : {},
  addresses: [{ type: 'InternalIP', address: '10.0.0.1' }],
  ready: true,
});
const inventoryFile = join(dir, 'east.yaml');
writeFileSync(
  inventoryFile,
  stringify({
    apiVersion: 'telemetry.rollout.dev/v1alpha1',
    kind: 'NodeInventory',
    cluster: 'prod-east-1',
    capturedAt: '2026-11-25T09:00:00Z',
    nodes: [node('n1', REV), node('n2', REV), node('n3', 'old')],
  }),
);
/** A node's stop file `file` (manual-<rev>, manual-all, auto-<rev>) under the local transport's root. */
const stopFile = (root: string, n: string, file = `manual-${REV}`) => join(root, n, 'var/run/telemetry-rollout/stop.d', file);
const env = () => ({ clock: new FakeClock(FIXTURE_NOW), signal: new AbortController().signal });

async function usageError(o: BreakGlassOptions, cluster = 'prod-east-1'): Promise<string> {
  try {
    await runBreakGlass(cluster, o, env());
  } catch (err) {
    if (err instanceof CliError && err.exitCode === EXIT.usage) return err.message;
    throw err;
  }
  throw new Error('expected a usage error');
}

describe('runBreakGlass with the local transport', () => {
  it("writes a person's stop file (manual-<rev>) on the nodes of the revision, then clears it", async () => {
    const root = join(dir, 'nodes-1');
    const issued = await runBreakGlass(
      'prod-east-1',
      { inventory: inventoryFile, localRoot: root, revision: REV, reason: 'API server down', rollout: 'fleet/collector-v2' },
      env(),
    );
    expect(breakGlassExitCode(issued)).toBe(0);
    expect(renderBreakGlass(issued)).toBe(`cluster prod-east-1: stop file manual-${REV} for revision ${REV} written to 2/2 nodes via local\n`);
    expect(parseStopFile(readFileSync(stopFile(root, 'n1'), 'utf8'))).toEqual({
      rollout: 'fleet/collector-v2',
      revision: REV,
      reason: 'API server down',
      issuedAt: FIXTURE_NOW.toISOString(),
    });
    expect(existsSync(stopFile(root, 'n2'))).toBe(true);
    expect(existsSync(stopFile(root, 'n3'))).toBe(false);

    const cleared = await runBreakGlass('prod-east-1', { inventory: inventoryFile, localRoot: root, revision: REV, clear: true }, env());
    expect(breakGlassExitCode(cleared)).toBe(0);
    expect(renderBreakGlass(cleared)).toBe(`cluster prod-east-1: stop file manual-${REV} of revision ${REV} cleared on 3/3 nodes via local\n`);
    expect(existsSync(stopFile(root, 'n1'))).toBe(false);
  });

  it('lists the nodes in a dry run without writing, and every node with --scope all', async () => {
    const root = join(dir, 'nodes-2');
    const dry = await runBreakGlass('prod-east-1', { inventory: inventoryFile, localRoot: root, revision: REV, dryRun: true }, env());
    expect(renderBreakGlass(dry)).toBe(`dry run: would reach the nodes of revision ${REV} of cluster prod-east-1 via local: 2 node(s)\n  n1\n  n2\n`);
    expect(existsSync(root)).toBe(false);
    const all = await runBreakGlass('prod-east-1', { inventory: inventoryFile, localRoot: root, revision: REV, dryRun: true, scope: 'all' }, env());
    expect(all).toMatchObject({ action: 'dry-run', nodes: ['n1', 'n2', 'n3'] });
  });

  it('exits 1 when no node runs the revision, and suggests --scope all', async () => {
    const out = await runBreakGlass('prod-east-1', { inventory: inventoryFile, localRoot: join(dir, 'nodes-3'), revision: 'other', reason: 'r' }, env());
    expect(breakGlassExitCode(out)).toBe(EXIT.failed);
    expect(renderBreakGlass(out)).toContain('retry with --scope all');
  });

  it('takes the transport and the rollout name from a rollout manifest', async () => {
    const root = join(dir, 'nodes-4');
    const manifest = fixtureManifest('collector-v2', 'fleet') as unknown as { spec: Record<string, unknown> };
    manifest.spec.breakGlass = { transport: { type: 'local', local: { rootDir: root } } };
    const file = join(dir, 'rollout.yaml');
    writeFileSync(file, `${stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'fleet' } })}---\n${stringify(manifest)}`);
    const out = await runBreakGlass('prod-east-1', { inventory: inventoryFile, filename: file, revision: '*', reason: 'all of them' }, env());
    expect(out).toMatchObject({ action: 'issue', result: { nodesTargeted: 3, nodesStopped: 3 } });
    expect(parseStopFile(readFileSync(stopFile(root, 'n3', 'manual-all'), 'utf8')).rollout).toBe('fleet/collector-v2');
  });

  it("a person's clear leaves the operator's file; --issuer auto reaches it when the operator cannot", async () => {
    const root = join(dir, 'nodes-5');
    const base = { inventory: inventoryFile, localRoot: root, revision: REV };
    await runBreakGlass('prod-east-1', { ...base, reason: 'operator down, stopping as it would', issuer: 'auto' }, env());
    await runBreakGlass('prod-east-1', { ...base, reason: 'by hand' }, env());
    expect(readdirSync(join(root, 'n1/var/run/telemetry-rollout/stop.d'))).toEqual([`auto-${REV}`, `manual-${REV}`]);
    await runBreakGlass('prod-east-1', { ...base, clear: true }, env());
    expect(readdirSync(join(root, 'n1/var/run/telemetry-rollout/stop.d'))).toEqual([`auto-${REV}`]);
    await runBreakGlass('prod-east-1', { ...base, clear: true, issuer: 'auto' }, env());
    expect(readdirSync(join(root, 'n1/var/run/telemetry-rollout/stop.d'))).toEqual([]);
  });
});

describe('runBreakGlassStatus', () => {
  it('lists per node the stop files, who issued them and what they say; a table and JSON', async () => {
    const root = join(dir, 'nodes-status');
    const base = { inventory: inventoryFile, localRoot: root };
    await runBreakGlass('prod-east-1', { ...base, revision: REV, reason: 'API server down', issuer: 'auto', rollout: 'fleet/collector-v2' }, env());
    await runBreakGlass('prod-east-1', { ...base, revision: '*', reason: 'stop everything', scope: 'revision' }, env());
    writeFileSync(join(root, 'n2/var/run/telemetry-rollout/stop.d/notes'), 'stop please');
    const report = await runBreakGlassStatus('fleet/collector-v2', { ...base, cluster: 'prod-east-1' }, env());
    expect(report).toMatchObject({
      rollout: 'fleet/collector-v2',
      cluster: 'prod-east-1',
      transport: 'local',
      stopDirectory: '/var/run/telemetry-rollout/stop.d',
      nodesListed: 3,
      nodesWithStops: 3,
      nodesFailed: 0,
    });
    const at = FIXTURE_NOW.toISOString();
    expect(report.nodes[0]).toEqual({
      node: 'n1',
      result: 'ok',
      files: [
        { name: `auto-${REV}`, issuer: 'auto', rollout: 'fleet/collector-v2', revision: REV, reason: 'API server down', issuedAt: at },
        { name: 'manual-all', issuer: 'manual', rollout: 'kubectl-tro/break-glass', revision: '*', reason: 'stop everything', issuedAt: at },
      ],
    });
    expect(renderBreakGlassStatus(report)).toBe(
      [
        `rollout fleet/collector-v2, cluster prod-east-1: 3/3 node(s) with stop files in /var/run/telemetry-rollout/stop.d via local (inventory captured 2026-11-25T09:00:00.000Z)`,
        `NODE   FILE            ISSUER    REVISION   ISSUED                     ROLLOUT                   REASON`,
        `n1     auto-${REV}   auto      ${REV}   ${at}   fleet/collector-v2        API server down`,
        `n1     manual-all      manual    *          ${at}   kubectl-tro/break-glass   stop everything`,
        `n2     auto-${REV}   auto      ${REV}   ${at}   fleet/collector-v2        API server down`,
        `n2     manual-all      manual    *          ${at}   kubectl-tro/break-glass   stop everything`,
        `n2     notes           unknown   -          -                          -                         INVALID (stop file is not valid JSON): agents stop every revision`,
        `n3     manual-all      manual    *          ${at}   kubectl-tro/break-glass   stop everything`,
        '',
      ].join('\n'),
    );
    expect(breakGlassStatusExitCode(report)).toBe(0);
  });

  it('says so for a node without stop files and for a node that could not be listed (exit 1)', async () => {
    const root = join(dir, 'nodes-status-2');
    // n2's stop directory is a symlink loop: listing it fails (ELOOP), unlike a directory that is absent.
    mkdirSync(join(root, 'n2/var/run/telemetry-rollout'), { recursive: true });
    symlinkSync('stop.d', join(root, 'n2/var/run/telemetry-rollout/stop.d'));
    const report = await runBreakGlassStatus('collector-v2', { cluster: 'prod-east-1', inventory: inventoryFile, localRoot: root }, env());
    expect(report).toMatchObject({ nodesListed: 2, nodesWithStops: 0, nodesFailed: 1 });
    const lines = renderBreakGlassStatus(report).split('\n');
    expect(lines[0]).toBe(
      'rollout collector-v2, cluster prod-east-1: 0/3 node(s) with stop files in /var/run/telemetry-rollout/stop.d via local, 1 not listed (inventory captured 2026-11-25T09:00:00.000Z)',
    );
    expect(lines[2]).toMatch(/^n1 +- +- +- +- +- +no stop file$/);
    expect(lines[3]).toMatch(/^n2 +- +- +- +- +- +not listed: failed: list .*stop\.d/);
    expect(breakGlassStatusExitCode(report)).toBe(EXIT.failed);
  });

  it('needs --cluster, and picks the named rollout out of a file with several', async () => {
    expect(await statusUsageError({ inventory: inventoryFile, localRoot: dir })).toBe(
      'break-glass status needs --cluster NAME (the target cluster of the inventory)',
    );
    const file = join(dir, 'two-rollouts.yaml');
    const one = (name: string, rootDir: string) => ({
      apiVersion: 'telemetry.rollout.dev/v1alpha1',
      kind: 'TelemetryRollout',
      metadata: { name, namespace: 'fleet' },
      spec: { breakGlass: { transport: { type: 'local', local: { rootDir } } } },
    });
    writeFileSync(file, `${stringify(one('a', join(dir, 'roots-a')))}---\n${stringify(one('b', join(dir, 'roots-b')))}`);
    await runBreakGlass('prod-east-1', { inventory: inventoryFile, localRoot: join(dir, 'roots-b'), revision: '*', reason: 'r' }, env());
    const b = await runBreakGlassStatus('fleet/b', { cluster: 'prod-east-1', inventory: inventoryFile, filename: file }, env());
    expect(b).toMatchObject({ rollout: 'fleet/b', nodesWithStops: 3 });
    const a = await runBreakGlassStatus('a', { cluster: 'prod-east-1', inventory: inventoryFile, filename: file }, env());
    expect(a).toMatchObject({ rollout: 'fleet/a', nodesWithStops: 0 });
    expect(await statusUsageError({ cluster: 'prod-east-1', inventory: inventoryFile, filename: file }, 'c')).toBe(`${file}: no TelemetryRollout named c`);
  });
});

async function statusUsageError(o: BreakGlassStatusOptions, rollout = 'r'): Promise<string> {
  try {
    await runBreakGlassStatus(rollout, o, env());
  } catch (err) {
    if (err instanceof CliError && err.exitCode === EXIT.usage) return err.message;
    throw err;
  }
  throw new Error('expected a usage error');
}

describe('input checks (usage errors, exit 2)', () => {
  it.each<[string, BreakGlassOptions, RegExp]>([
    ['no inventory', { localRoot: dir, revision: REV, reason: 'r' }, /needs --inventory FILE/],
    ['no revision', { inventory: inventoryFile, localRoot: dir, reason: 'r' }, /needs --revision REV/],
    ['no reason', { inventory: inventoryFile, localRoot: dir, revision: REV }, /needs --reason TEXT/],
    ['no transport', { inventory: inventoryFile, revision: REV, reason: 'r' }, /exactly one of -f FILE .* and --local-root DIR/],
    ['two transports', { inventory: inventoryFile, revision: REV, reason: 'r', localRoot: dir, filename: 'x' }, /exactly one of/],
    ['--force without --clear', { inventory: inventoryFile, localRoot: dir, revision: REV, reason: 'r', force: true }, /--force only applies to --clear/],
    ['a bad revision', { inventory: inventoryFile, localRoot: dir, revision: 'not a label!', reason: 'r' }, /is not a revision/],
    ['a missing inventory', { inventory: join(dir, 'nope.yaml'), localRoot: dir, revision: REV, reason: 'r' }, /read inventory file .*nope\.yaml: ENOENT/],
    [
      'half the ssh credentials',
      { inventory: inventoryFile, localRoot: dir, revision: REV, reason: 'r', sshKey: 'k' },
      /--ssh-key and --known-hosts go together/,
    ],
  ])('%s', async (_t, o, want) => {
    expect(await usageError(o)).toMatch(want);
  });

  it('refuses an inventory of another cluster', async () => {
    expect(await usageError({ inventory: inventoryFile, localRoot: dir, revision: REV, reason: 'r' }, 'prod-west-1')).toBe(
      `${inventoryFile} is the inventory of cluster prod-east-1, not prod-west-1`,
    );
  });

  it('needs credential files for an ssh transport, and reports an invalid transport', async () => {
    const ssh = join(dir, 'ssh.yaml');
    writeFileSync(ssh, stringify({ type: 'ssh', ssh: { user: 'tro' } }));
    expect(await usageError({ inventory: inventoryFile, filename: ssh, revision: REV, reason: 'r' })).toMatch(/needs --ssh-key FILE and --known-hosts FILE/);
    const bad = join(dir, 'exec.yaml');
    writeFileSync(bad, stringify({ type: 'exec', exec: {} }));
    expect(await usageError({ inventory: inventoryFile, filename: bad, revision: REV, reason: 'r' })).toBe(
      'spec.breakGlass.transport: type exec needs exec.command',
    );
  });
});

describe('transportFromFile', () => {
  it('reads a rollout manifest or a bare transport spec', () => {
    expect(transportFromFile('f', stringify({ type: 'local', local: { rootDir: '/x' } }))).toEqual({ spec: { type: 'local', local: { rootDir: '/x' } } });
    const m = { kind: 'TelemetryRollout', metadata: { name: 'r' }, spec: { breakGlass: { transport: { type: 'exec', exec: { command: ['true'] } } } } };
    expect(transportFromFile('f', stringify(m))).toEqual({ spec: { type: 'exec', exec: { command: ['true'] } }, rollout: 'default/r' });
  });

  it('says what is missing', () => {
    expect(() => transportFromFile('f', stringify({ kind: 'TelemetryRollout', metadata: { name: 'r' }, spec: {} }))).toThrow(
      'f: the TelemetryRollout r has no spec.breakGlass.transport',
    );
    expect(() => transportFromFile('f', 'a: [')).toThrow(/^f: not valid YAML: /);
    expect(() => transportFromFile('f', 'kind: ConfigMap\n')).toThrow(/neither a TelemetryRollout/);
  });
});
