import { afterAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { parseStopFile } from '../breakglass/stopfile.js';
import { FakeClock } from '../../../testkit/core/fakeclock.js';
import { breakGlassExitCode, renderBreakGlass, runBreakGlass, transportFromFile, type BreakGlassOptions } from './breakglass.js';
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
const stopFile = (root: string, n: string) => join(root, n, 'var/run/telemetry-rollout/stop');
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
  it('writes the stop file on the nodes of the revision, then clears it', async () => {
    const root = join(dir, 'nodes-1');
    const issued = await runBreakGlass(
      'prod-east-1',
      { inventory: inventoryFile, localRoot: root, revision: REV, reason: 'API server down', rollout: 'fleet/collector-v2' },
      env(),
    );
    expect(breakGlassExitCode(issued)).toBe(0);
    expect(renderBreakGlass(issued)).toBe(`cluster prod-east-1: stop file for revision ${REV} written to 2/2 nodes via local\n`);
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
    expect(renderBreakGlass(cleared)).toBe(`cluster prod-east-1: stop files of revision ${REV} cleared on 3/3 nodes via local\n`);
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
    expect(parseStopFile(readFileSync(stopFile(root, 'n3'), 'utf8')).rollout).toBe('fleet/collector-v2');
  });
});

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
