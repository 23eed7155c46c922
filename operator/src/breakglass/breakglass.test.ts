import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiException, type V1Secret } from '@kubernetes/client-node';
import { REVISION_LABEL, type NodeInfo } from '../rollout/interfaces.js';
import { FakeClock } from '../../../testkit/core/fakeclock.js';
import { TerminalError } from '../util/errors.js';
import { memoryLogger } from '../../../testkit/operator/util/logging.js';
import {
  breakGlassListing,
  breakGlassStatus,
  clearBreakGlass,
  issueBreakGlass,
  KubeSecretReader,
  selectTargets,
  transportFromSpec,
  type SecretKeyReader,
} from './breakglass.js';
import { ExecTransport } from './exec.js';
import { LocalTransport } from './local.js';
import { SshTransport } from './ssh.js';
import { encodeStopFile, parseStopFile } from './stopfile.js';
import type { BreakGlassTransport, ClearOptions, ListedStopFile, NodeListing, NodeOutcome, NodeTarget } from './transport.js';

const node = (name: string, revision?: string): NodeInfo => ({
  name,
  labels: revision === undefined ? {} : { [REVISION_LABEL]: revision },
  addresses: [{ type: 'InternalIP', address: `10.0.0.${name.length}` }],
  ready: true,
});

/** A transport that records calls and answers per node from a table (default ok). */
class RecordingTransport implements BreakGlassTransport {
  readonly kind = 'local' as const;
  readonly stopDirectory = '/var/run/telemetry-rollout/stop.d';
  readonly stopFilePath = '/var/run/telemetry-rollout/stop';
  readonly concurrency = 20;
  readonly writes: Array<{ nodes: string[]; file: string; content: string }> = [];
  readonly clears: Array<{ nodes: string[]; options: ClearOptions | undefined }> = [];
  /** What `list` answers per node (default: no files). */
  readonly listings: Record<string, ListedStopFile[]> = {};
  private readonly answers: Record<string, Omit<NodeOutcome, 'node' | 'durationMs'>>;
  constructor(answers: Record<string, Omit<NodeOutcome, 'node' | 'durationMs'>> = {}) {
    this.answers = answers;
  }
  private answer(nodes: readonly NodeTarget[]): NodeOutcome[] {
    return nodes.map((n) => ({ node: n.name, durationMs: 5, ...(this.answers[n.name] ?? { result: 'ok' }) }));
  }
  async write(nodes: readonly NodeTarget[], file: string, content: string): Promise<NodeOutcome[]> {
    this.writes.push({ nodes: nodes.map((n) => n.name), file, content });
    return this.answer(nodes);
  }
  async clear(nodes: readonly NodeTarget[], options: ClearOptions): Promise<NodeOutcome[]> {
    this.clears.push({ nodes: nodes.map((n) => n.name), options });
    return this.answer(nodes);
  }
  async list(nodes: readonly NodeTarget[]): Promise<NodeListing[]> {
    return this.answer(nodes).map((o) => (o.result === 'ok' ? { ...o, files: this.listings[o.node] ?? [] } : o));
  }
  async close(): Promise<void> {}
}

const fleet: NodeInfo[] = [node('a1', 'bad1234567'), node('a2', 'old7654321'), node('a3'), node('a4', 'bad1234567'), node('a5')];

describe('selectTargets (revision scoping)', () => {
  test.each([
    ['only the nodes labelled with the revision', { revision: 'bad1234567', scope: 'revision' as const }, ['a1', 'a4']],
    [
      'the stable revision also covers unlabelled nodes',
      { revision: 'old7654321', scope: 'revision' as const, stableRevision: 'old7654321' },
      ['a2', 'a3', 'a5'],
    ],
    ['a non-stable revision never takes unlabelled nodes', { revision: 'bad1234567', scope: 'revision' as const, stableRevision: 'old7654321' }, ['a1', 'a4']],
    ['"*" means every node', { revision: '*', scope: 'revision' as const }, ['a1', 'a2', 'a3', 'a4', 'a5']],
    ['scope all means every node', { revision: 'bad1234567', scope: 'all' as const }, ['a1', 'a2', 'a3', 'a4', 'a5']],
    ['an unknown revision selects nothing', { revision: 'nope000000', scope: 'revision' as const }, []],
  ])('%s', (_name, sel, want) => {
    expect(selectTargets(fleet, sel).map((n) => n.name)).toEqual(want);
  });
});

describe('issueBreakGlass', () => {
  test('writes the revision-scoped stop file to exactly the nodes running that revision, and counts outcomes', async () => {
    const clock = new FakeClock(Date.parse('2026-11-25T10:00:00Z'));
    const transport = new RecordingTransport({ a4: { result: 'timedOut', message: 'no result within 10s' } });
    const r = await issueBreakGlass({
      transport,
      nodes: fleet,
      rollout: 'tro-system/agent',
      revision: 'bad1234567',
      reason: 'API server unreachable for 60s',
      clock,
    });
    expect(transport.writes).toHaveLength(1);
    expect(transport.writes[0]?.nodes).toEqual(['a1', 'a4']);
    // Issued by the operator by default: its own file, named after the revision.
    expect(transport.writes[0]?.file).toBe('auto-bad1234567');
    expect(r.file).toBe('auto-bad1234567');
    expect(parseStopFile(transport.writes[0]!.content)).toEqual({
      rollout: 'tro-system/agent',
      revision: 'bad1234567',
      reason: 'API server unreachable for 60s',
      issuedAt: '2026-11-25T10:00:00.000Z',
    });
    expect(r).toMatchObject({
      issuedAt: '2026-11-25T10:00:00.000Z',
      revision: 'bad1234567',
      nodesTargeted: 2,
      nodesStopped: 1,
      nodesFailed: 0,
      nodesTimedOut: 1,
      message: 'stop file auto-bad1234567 for revision bad1234567 written to 1/2 nodes via local (0 failed, 1 timed out)',
    });
    expect(r.outcomes.map((o) => o.node)).toEqual(['a1', 'a4']);
    expect(breakGlassStatus(r)).toEqual({
      issuedAt: '2026-11-25T10:00:00.000Z',
      revision: 'bad1234567',
      nodesTargeted: 2,
      nodesStopped: 1,
      nodesFailed: 0,
      nodesTimedOut: 1,
      message: r.message,
    });
  });

  test('no node on the revision: nothing written, said so', async () => {
    const transport = new RecordingTransport();
    const r = await issueBreakGlass({ transport, nodes: fleet, rollout: 'ns/x', revision: 'nope000000', reason: '', clock: new FakeClock() });
    expect(transport.writes).toHaveLength(0);
    expect(r).toMatchObject({ nodesTargeted: 0, nodesStopped: 0, message: 'no node runs revision nope000000: no stop file written' });
  });

  test('scope all sends the revision-scoped file everywhere (robust to a stale inventory)', async () => {
    const transport = new RecordingTransport();
    await issueBreakGlass({ transport, nodes: fleet, rollout: 'ns/x', revision: 'bad1234567', reason: 'r', clock: new FakeClock(), scope: 'all' });
    expect(transport.writes[0]?.nodes).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);
    expect(parseStopFile(transport.writes[0]!.content).revision).toBe('bad1234567');
  });

  test("a person's stop is the issuer's own file: manual-<rev>, manual-all for every revision", async () => {
    const transport = new RecordingTransport();
    const clock = new FakeClock();
    await issueBreakGlass({ transport, nodes: fleet, rollout: 'ns/x', revision: 'bad1234567', reason: 'r', clock, issuer: 'manual' });
    await issueBreakGlass({ transport, nodes: fleet, rollout: 'ns/x', revision: '*', reason: 'r', clock, issuer: 'manual' });
    expect(transport.writes.map((w) => [w.file, w.nodes.length])).toEqual([
      ['manual-bad1234567', 2],
      ['manual-all', 5],
    ]);
  });

  test('an invalid revision is refused before anything is written', async () => {
    const transport = new RecordingTransport();
    await expect(issueBreakGlass({ transport, nodes: fleet, rollout: 'ns/x', revision: 'a b', reason: '', clock: new FakeClock() })).rejects.toThrow(
      /invalid revision/,
    );
    expect(transport.writes).toHaveLength(0);
  });

  test('logs a summary and the failed nodes (first 20 by name, then a count), with credentials redacted', async () => {
    const { logger, entries } = memoryLogger();
    const nodes = Array.from({ length: 30 }, (_, i) => node(`n${i}`, 'bad1234567'));
    const pem = '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAB3NzaC1yc2EAAAADAQABAAABAQC7\n-----END OPENSSH PRIVATE KEY-----';
    const answers = Object.fromEntries(
      nodes.slice(0, 25).map((n) => [n.name, { result: 'failed' as const, message: `Load key ${pem}: bad permissions token=s3cr3t` }]),
    );
    const clock = new FakeClock();
    await issueBreakGlass({ transport: new RecordingTransport(answers), nodes, rollout: 'ns/x', revision: 'bad1234567', reason: 'r', clock, logger });
    await clock.flush();
    expect(entries[0]).toMatchObject({ level: 'warn', message: 'break-glass stop file issued', summary: expect.stringContaining('5/30') });
    const perNode = entries.filter((e) => e.message === 'break-glass node not done');
    expect(perNode).toHaveLength(20);
    expect(entries.at(-1)).toMatchObject({ message: 'break-glass: more nodes not done', count: 5 });
    const all = JSON.stringify(entries);
    expect(all).not.toContain('AAAAB3NzaC1yc2EAAAADAQABAAABAQC7');
    expect(all).not.toContain('s3cr3t');
  });
});

describe('clearBreakGlass', () => {
  test('by default visits every node and removes only files naming the revision (labels are rolled back by then)', async () => {
    const transport = new RecordingTransport({ a5: { result: 'failed', message: 'Connection refused' } });
    const clock = new FakeClock(Date.parse('2026-11-25T11:00:00Z'));
    const r = await clearBreakGlass({ transport, nodes: fleet, revision: 'bad1234567', clock });
    expect(transport.clears).toEqual([
      { nodes: ['a1', 'a2', 'a3', 'a4', 'a5'], options: { file: 'auto-bad1234567', signal: undefined, ifRevision: 'bad1234567' } },
    ]);
    expect(r).toMatchObject({
      clearedAt: '2026-11-25T11:00:00.000Z',
      file: 'auto-bad1234567',
      nodesTargeted: 5,
      nodesCleared: 4,
      nodesFailed: 1,
      nodesTimedOut: 0,
    });

    const issued = await issueBreakGlass({ transport, nodes: fleet, rollout: 'ns/x', revision: 'bad1234567', reason: 'r', clock });
    // clearedAt only once every node was cleared: a failed node still has its file.
    expect(breakGlassStatus(issued, r).clearedAt).toBeUndefined();
    const ok = await clearBreakGlass({ transport: new RecordingTransport(), nodes: fleet, revision: 'bad1234567', clock });
    expect(breakGlassStatus(issued, ok)).toMatchObject({ clearedAt: '2026-11-25T11:00:00.000Z', nodesStopped: 2 });
  });

  test('force removes whatever the file says; scope revision narrows to the labelled nodes', async () => {
    const transport = new RecordingTransport();
    await clearBreakGlass({ transport, nodes: fleet, revision: 'bad1234567', clock: new FakeClock(), force: true, scope: 'revision' });
    expect(transport.clears).toEqual([{ nodes: ['a1', 'a4'], options: { file: 'auto-bad1234567', signal: undefined } }]);
  });

  test('a manual clear removes the manual file it names, never the Auto one', async () => {
    const transport = new RecordingTransport();
    await clearBreakGlass({ transport, nodes: fleet, revision: '*', clock: new FakeClock(), issuer: 'manual' });
    expect(transport.clears[0]?.options).toMatchObject({ file: 'manual-all', ifRevision: '*' });
  });
});

describe('end to end on the local transport', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'tro-bg-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const stopDir = (n: string): string => join(root, n, 'var/run/telemetry-rollout/stop.d');

  test('issue writes only the bad revision nodes; a later stop of another revision survives our clear', async () => {
    const transport = await transportFromSpec({ type: 'local', local: { rootDir: root } });
    const clock = new FakeClock(Date.parse('2026-11-25T10:00:00Z'));
    const issued = await issueBreakGlass({ transport, nodes: fleet, rollout: 'ns/agent', revision: 'bad1234567', reason: 'unreachable', clock });
    expect(issued.nodesStopped).toBe(2);
    expect((await readdir(root)).sort()).toEqual(['a1', 'a4']);
    // Someone stops another revision on a4 afterwards.
    await issueBreakGlass({ transport, nodes: [node('a4', 'zzz0000000')], rollout: 'ns/other', revision: 'zzz0000000', reason: 'other', clock });
    const cleared = await clearBreakGlass({ transport, nodes: fleet, revision: 'bad1234567', clock });
    expect(cleared.outcomes.map((o) => [o.node, o.result, o.message])).toEqual([
      ['a1', 'ok', undefined],
      ['a2', 'ok', 'no stop file'],
      ['a3', 'ok', 'no stop file'],
      ['a4', 'ok', undefined],
      ['a5', 'ok', 'no stop file'],
    ]);
    expect(await readdir(stopDir('a1'))).toEqual([]);
    expect(await readdir(stopDir('a4'))).toEqual(['auto-zzz0000000']);
    expect(parseStopFile(await readFile(join(stopDir('a4'), 'auto-zzz0000000'), 'utf8')).revision).toBe('zzz0000000');
    await transport.close();
  });

  test("composition: a person's manual-all during an Auto stop survives the operator's clear, and the status shows both issuers", async () => {
    const transport = await transportFromSpec({ type: 'local', local: { rootDir: root } });
    const clock = new FakeClock(Date.parse('2026-11-25T10:00:00Z'));
    // The operator stops the bad revision (Auto)...
    await issueBreakGlass({ transport, nodes: fleet, rollout: 'ns/agent', revision: 'bad1234567', reason: 'API server unreachable', clock });
    // ...and a person stops every revision by hand meanwhile (what the CLI does).
    clock.set(Date.parse('2026-11-25T10:05:00Z'));
    await issueBreakGlass({ transport, nodes: fleet, rollout: 'kubectl-tro/break-glass', revision: '*', reason: 'stop everything', clock, issuer: 'manual' });
    const during = await breakGlassListing(transport, fleet);
    expect(during.nodes.find((n) => n.node === 'a1')?.files).toEqual([
      {
        name: 'auto-bad1234567',
        issuer: 'auto',
        rollout: 'ns/agent',
        revision: 'bad1234567',
        reason: 'API server unreachable',
        issuedAt: '2026-11-25T10:00:00.000Z',
      },
      {
        name: 'manual-all',
        issuer: 'manual',
        rollout: 'kubectl-tro/break-glass',
        revision: '*',
        reason: 'stop everything',
        issuedAt: '2026-11-25T10:05:00.000Z',
      },
    ]);
    // Recovery: the operator clears its own stop only (what the actuator calls: no issuer, so auto).
    const cleared = await clearBreakGlass({ transport, nodes: fleet, revision: 'bad1234567', clock });
    expect(cleared.nodesFailed + cleared.nodesTimedOut).toBe(0);
    for (const n of fleet) expect(await readdir(stopDir(n.name))).toEqual(['manual-all']);
    const after = await breakGlassListing(transport, fleet);
    expect(after).toMatchObject({ nodesListed: 5, nodesWithStops: 5, nodesFailed: 0 });
    expect(after.nodes.every((n) => n.files.map((f) => f.issuer).join() === 'manual')).toBe(true);
    // The person's own clear lifts it.
    await clearBreakGlass({ transport, nodes: fleet, revision: '*', clock, issuer: 'manual' });
    expect((await breakGlassListing(transport, fleet)).nodesWithStops).toBe(0);
    await transport.close();
  });
});

describe('breakGlassListing', () => {
  test('issuer from the name, the rest from the content; bad content and foreign names are shown with why, never hidden', async () => {
    const transport = new RecordingTransport({ a2: { result: 'failed', message: 'Connection refused' } });
    const good = encodeStopFile({ rollout: 'ns/a', revision: 'bad1234567', reason: 'r', issuedAt: '2026-11-25T10:00:00.000Z' });
    transport.listings.a1 = [
      { name: 'auto-bad1234567', text: good },
      { name: 'manual-old7654321', text: good },
      { name: 'notes', text: 'stop it' },
      { name: 'big', size: 70000, error: 'too large to show (70000 bytes)' },
      { name: 'stop', legacy: true, text: good },
    ];
    const l = await breakGlassListing(transport, [node('a1'), node('a2'), node('a3')]);
    expect(l).toMatchObject({ nodesListed: 2, nodesWithStops: 1, nodesFailed: 1, nodesTimedOut: 0 });
    expect(l.nodes[0]?.files).toEqual([
      { name: 'auto-bad1234567', issuer: 'auto', rollout: 'ns/a', revision: 'bad1234567', reason: 'r', issuedAt: '2026-11-25T10:00:00.000Z' },
      {
        name: 'manual-old7654321',
        issuer: 'manual',
        rollout: 'ns/a',
        revision: 'bad1234567',
        reason: 'r',
        issuedAt: '2026-11-25T10:00:00.000Z',
        error: 'the name says revision old7654321, the content bad1234567',
      },
      { name: 'notes', issuer: 'unknown', error: 'stop file is not valid JSON' },
      { name: 'big', issuer: 'unknown', error: 'too large to show (70000 bytes)' },
      { name: 'stop', issuer: 'legacy', rollout: 'ns/a', revision: 'bad1234567', reason: 'r', issuedAt: '2026-11-25T10:00:00.000Z' },
    ]);
    expect(l.nodes[1]).toEqual({ node: 'a2', result: 'failed', message: 'Connection refused', files: [] });
  });
});

describe('transportFromSpec', () => {
  test('applies the CRD defaults and builds each type', async () => {
    const local = await transportFromSpec({ type: 'local', local: { rootDir: '/tmp/x' } });
    expect(local).toBeInstanceOf(LocalTransport);
    expect(local).toMatchObject({ concurrency: 20, stopDirectory: '/var/run/telemetry-rollout/stop.d', stopFilePath: '/var/run/telemetry-rollout/stop' });
    const exec = await transportFromSpec({
      type: 'exec',
      concurrency: 7,
      stopDirectory: '/run/stops',
      stopFilePath: '/run/stop',
      exec: { command: ['run', '{{node}}'] },
    });
    expect(exec).toBeInstanceOf(ExecTransport);
    expect(exec).toMatchObject({ concurrency: 7, stopDirectory: '/run/stops', stopFilePath: '/run/stop' });
    const ssh = await transportFromSpec(
      { type: 'ssh', ssh: { user: 'core' } },
      { sshCredentialFiles: { privateKeyPath: '/keys/id', knownHostsPath: '/keys/known_hosts' } },
    );
    expect(ssh).toBeInstanceOf(SshTransport);
    expect((ssh as SshTransport).sshArgs('10.0.0.1', 'c')).toEqual(
      expect.arrayContaining(['-p', '22', '-i', '/keys/id', 'UserKnownHostsFile=/keys/known_hosts']),
    );
  });

  test.each([
    ['local without rootDir', { type: 'local' as const }],
    ['exec without command', { type: 'exec' as const, exec: { command: [] } }],
    ['exec with an unknown placeholder', { type: 'exec' as const, exec: { command: ['x', '{{host}}'] } }],
    ['ssh without user', { type: 'ssh' as const, ssh: {} }],
    ['ssh without any credentials', { type: 'ssh' as const, ssh: { user: 'core' } }],
    ['a relative stop-file path', { type: 'local' as const, stopFilePath: 'stop', local: { rootDir: '/x' } }],
    ['a relative stop directory', { type: 'local' as const, stopDirectory: 'stop.d', local: { rootDir: '/x' } }],
    ['concurrency 0', { type: 'local' as const, concurrency: 0, local: { rootDir: '/x' } }],
    ['an unknown type', { type: 'carrier-pigeon' as 'local' }],
  ])('%s is a TerminalError InvalidBreakGlassTransport', async (_name, spec) => {
    const err = await transportFromSpec(spec).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TerminalError);
    expect(err).toMatchObject({ reason: 'InvalidBreakGlassTransport' });
  });

  test('a Secret that cannot be read is not terminal (it may appear) and leaves no temp files', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'tro-cred-'));
    try {
      const secrets: SecretKeyReader = {
        readSecretKey: async (ref) => {
          throw new Error(`Secret ns/${ref.name} not found`);
        },
      };
      const spec = {
        type: 'ssh' as const,
        ssh: { user: 'core', privateKeySecretRef: { name: 'k', key: 'id' }, knownHostsSecretRef: { name: 'h', key: 'known_hosts' } },
      };
      const err = await transportFromSpec(spec, { secrets, credentialsDir: parent }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(TerminalError);
      expect(await readdir(parent)).toEqual([]);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});

describe('KubeSecretReader', () => {
  const secret: V1Secret = {
    data: { id: Buffer.from('-----BEGIN OPENSSH PRIVATE KEY-----\nsecretbody\n-----END OPENSSH PRIVATE KEY-----\n').toString('base64') },
  };
  const api = {
    readNamespacedSecret: async (p: { name: string; namespace: string }): Promise<V1Secret> => {
      if (p.name === 'bg') return secret;
      throw new ApiException(404, 'not found', { reason: 'NotFound', code: 404 }, {});
    },
  };

  test('decodes the key', async () => {
    expect(await new KubeSecretReader(api, 'tro').readSecretKey({ name: 'bg', key: 'id' })).toContain('secretbody');
  });

  test('errors name the Secret and key, never the content', async () => {
    const reader = new KubeSecretReader(api, 'tro');
    await expect(reader.readSecretKey({ name: 'missing', key: 'id' })).rejects.toThrow('Secret tro/missing not found');
    const err = (await reader.readSecretKey({ name: 'bg', key: 'other' }).catch((e: unknown) => e)) as Error;
    expect(err.message).toBe('Secret tro/bg has no key "other"');
    expect(JSON.stringify(err) + err.message).not.toContain('secretbody');
  });
});
