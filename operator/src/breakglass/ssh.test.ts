/**
 * The ssh transport against a REAL OpenSSH server on loopback (Debian's openssh-server), started and
 * stopped by this test (sshd-fixture.ts). Nothing is mocked: ssh, sshd, host keys, the remote shell.
 * Without /usr/sbin/sshd the suite fails with a message telling to install openssh-server.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeClock } from '../../../testkit/core/fakeclock.js';
import { memoryLogger } from '../../../testkit/operator/util/logging.js';
import { issueBreakGlass, transportFromSpec, type SecretKeyReader } from './breakglass.js';
import { freePort, sshKeygen, startLoopbackSshd, type LoopbackSshd } from '../../../testkit/operator/breakglass/sshd-fixture.js';
import { SshTransport, materializeSshCredentials } from './ssh.js';
import { encodeStopFile, parseStopFile, type StopFile } from './stopfile.js';
import type { NodeTarget } from './transport.js';

let sshd: LoopbackSshd;
let work: string;

beforeAll(async () => {
  sshd = await startLoopbackSshd();
  work = await mkdtemp(join(tmpdir(), 'tro-ssh-test-'));
}, 30_000);

afterAll(async () => {
  await sshd?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const loopbackNode = (name: string): NodeTarget => ({ name, addresses: [{ type: 'InternalIP', address: '127.0.0.1' }] });
const stop: StopFile = { rollout: 'ns/agent', revision: 'abc123', reason: 'api server unreachable', issuedAt: '2026-11-25T10:00:00.000Z' };

function transport(overrides: Partial<ConstructorParameters<typeof SshTransport>[0]> = {}): SshTransport {
  return new SshTransport({
    user: sshd.user,
    port: sshd.port,
    privateKeyPath: sshd.privateKeyPath,
    knownHostsPath: sshd.knownHostsPath,
    timeoutSeconds: 10,
    // One sshd stands for many nodes: each node gets its own root directory under `work`.
    remoteRootFor: (n) => join(work, n.name),
    ...overrides,
  });
}

describe('SshTransport against a real sshd', () => {
  test('write puts the JSON as the named file of the stop directory, atomically renamed (no temp file left); clear removes it', async () => {
    const t = transport();
    const nodes = [loopbackNode('node-a'), loopbackNode('node-b')];
    const content = encodeStopFile(stop);
    const written = await t.write(nodes, 'auto-abc123', content);
    expect(written.map((o) => [o.node, o.result, o.message])).toEqual([
      ['node-a', 'ok', undefined],
      ['node-b', 'ok', undefined],
    ]);
    for (const n of ['node-a', 'node-b']) {
      const path = join(work, n, 'var/run/telemetry-rollout/stop.d/auto-abc123');
      expect(parseStopFile(await readFile(path, 'utf8'))).toEqual(stop);
      expect(await readdir(join(work, n, 'var/run/telemetry-rollout/stop.d'))).toEqual(['auto-abc123']);
      expect((await stat(path)).mode & 0o777).toBe(0o644);
    }

    const cleared = await t.clear(nodes, { file: 'auto-abc123' });
    expect(cleared.map((o) => o.result)).toEqual(['ok', 'ok']);
    for (const n of ['node-a', 'node-b']) {
      await expect(stat(join(work, n, 'var/run/telemetry-rollout/stop.d/auto-abc123'))).rejects.toMatchObject({ code: 'ENOENT' });
    }
    // Clearing again is idempotent.
    expect((await t.clear(nodes, { file: 'auto-abc123' })).map((o) => o.result)).toEqual(['ok', 'ok']);
  }, 30_000);

  test("list reads every node's stop files with a read-only remote command; clearing the Auto file leaves a person's stop", async () => {
    const t = transport();
    const node = loopbackNode('node-list');
    const manual = encodeStopFile({ ...stop, revision: '*', reason: 'by hand' });
    await t.write([node], 'auto-abc123', encodeStopFile(stop));
    await t.write([node], 'manual-all', manual);
    const [listed] = await t.list([node, { name: 'no-address', addresses: [] }]);
    expect(listed).toMatchObject({
      node: 'node-list',
      result: 'ok',
      files: [
        { name: 'auto-abc123', text: encodeStopFile(stop) },
        { name: 'manual-all', text: manual },
      ],
    });
    await t.clear([node], { file: 'auto-abc123', ifRevision: 'abc123' });
    const [after, noAddress] = await t.list([node, { name: 'no-address', addresses: [] }]);
    expect(after?.files?.map((f) => f.name)).toEqual(['manual-all']);
    expect(noAddress).toMatchObject({ result: 'failed', message: 'node has no InternalIP address' });
    expect(noAddress?.files).toBeUndefined();
  }, 30_000);

  test('a hostile path (quotes, $(), spaces, ;) is written literally and nothing is executed', async () => {
    const hostileDir = join(work, `it's a "dir" $(touch pwned) ; touch pwned2 \`touch pwned3\``);
    const t = transport({ remoteRootFor: () => hostileDir, stopDirectory: '/stop $HOME *' });
    const path = join(hostileDir, 'stop $HOME *', 'auto-abc123');
    const [o] = await t.write([loopbackNode('n1')], 'auto-abc123', encodeStopFile(stop));
    expect(o).toMatchObject({ result: 'ok' });
    expect(parseStopFile(await readFile(path, 'utf8'))).toEqual(stop);
    for (const f of ['pwned', 'pwned2', 'pwned3']) {
      await expect(stat(join(work, f))).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(stat(join(sshd.dir, f))).rejects.toMatchObject({ code: 'ENOENT' });
    }
    const [c] = await t.clear([loopbackNode('n1')], { file: 'auto-abc123' });
    expect(c).toMatchObject({ result: 'ok' });
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
  }, 30_000);

  test('a filtered clear leaves a stop file of another revision in place', async () => {
    const t = transport();
    const node = loopbackNode('node-filter');
    const path = join(work, 'node-filter', 'var/run/telemetry-rollout/stop.d/auto-abc123');
    await t.write([node], 'auto-abc123', encodeStopFile({ ...stop, revision: 'other9' }));
    const [kept] = await t.clear([node], { file: 'auto-abc123', ifRevision: 'abc123' });
    expect(kept).toMatchObject({ result: 'ok', message: expect.stringContaining('left in place') });
    expect(parseStopFile(await readFile(path, 'utf8')).revision).toBe('other9');
    const [removed] = await t.clear([node], { file: 'auto-abc123', ifRevision: 'other9' });
    expect(removed).toMatchObject({ result: 'ok' });
    expect(removed?.message).toBeUndefined();
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
  }, 30_000);

  test('check proves connectivity, keys and a writable directory without writing a stop file', async () => {
    const t = transport();
    const [o] = await t.check([loopbackNode('node-check')]);
    expect(o).toMatchObject({ result: 'ok' });
    expect(await readdir(join(work, 'node-check', 'var/run/telemetry-rollout/stop.d'))).toEqual([]);
  }, 30_000);

  test('host keys are honoured: a wrong known_hosts entry fails the node with a host-key message and writes nothing', async () => {
    const otherKey = join(work, 'other_host_key');
    await sshKeygen(otherKey, 'impostor');
    const pub = (await readFile(`${otherKey}.pub`, 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
    const wrongKnownHosts = join(work, 'wrong_known_hosts');
    await writeFile(wrongKnownHosts, `[127.0.0.1]:${sshd.port} ${pub}\n`);
    const emptyKnownHosts = join(work, 'empty_known_hosts');
    await writeFile(emptyKnownHosts, '# no entries\n');

    for (const knownHostsPath of [wrongKnownHosts, emptyKnownHosts]) {
      const t = transport({ knownHostsPath, remoteRootFor: (n) => join(work, 'hostkey', n.name) });
      const [o] = await t.write([loopbackNode('node-hk')], 'auto-abc123', encodeStopFile(stop));
      expect(o).toMatchObject({ node: 'node-hk', result: 'failed' });
      expect(o?.message).toMatch(/^host key verification failed for 127\.0\.0\.1/);
      await expect(stat(join(work, 'hostkey'))).rejects.toMatchObject({ code: 'ENOENT' });
    }
  }, 30_000);

  test('a port nobody listens on fails fast (connection refused), not at the timeout', async () => {
    const t = transport({ port: await freePort(), timeoutSeconds: 30 });
    const [o] = await t.write([loopbackNode('node-closed')], 'auto-abc123', encodeStopFile(stop));
    expect(o).toMatchObject({ result: 'failed' });
    // `failed` with ssh's own message, not `timedOut`: the answer came from ssh, not from our 30 s timer.
    expect(o?.message).toMatch(/Connection refused/);
  }, 30_000);

  test('a server that never answers the ssh handshake is killed at the per-node timeout and recorded as timedOut', async () => {
    const sockets = new Set<Socket>();
    const blackhole: Server = createServer((s) => {
      sockets.add(s);
      s.on('error', () => sockets.delete(s));
    });
    await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
    const port = (blackhole.address() as { port: number }).port;
    try {
      const t = transport({ port, timeoutSeconds: 1 });
      const outcomes = await t.write([loopbackNode('node-hang-1'), loopbackNode('node-hang-2')], 'auto-abc123', encodeStopFile(stop));
      expect(outcomes.map((o) => o.result)).toEqual(['timedOut', 'timedOut']);
      expect(outcomes[0]?.message).toMatch(/no result within 1s/);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => blackhole.close(() => resolve()));
    }
  }, 30_000);

  test('partial failure: reachable and unreachable nodes in one call each get their own outcome', async () => {
    const t = transport({ timeoutSeconds: 5 });
    const nodes: NodeTarget[] = [loopbackNode('good-1'), { name: 'no-address', addresses: [{ type: 'Hostname', address: 'x' }] }, loopbackNode('good-2')];
    const outcomes = await t.write(nodes, 'auto-abc123', encodeStopFile(stop));
    expect(outcomes.map((o) => [o.node, o.result])).toEqual([
      ['good-1', 'ok'],
      ['no-address', 'failed'],
      ['good-2', 'ok'],
    ]);
    expect(outcomes[1]?.message).toBe('node has no InternalIP address');
  }, 30_000);

  test('credentials from a Secret: materialised privately, never in outcomes or logs, removed on close', async () => {
    const reads: string[] = [];
    const secrets: SecretKeyReader = {
      readSecretKey: async (ref) => {
        reads.push(`${ref.name}/${ref.key}`);
        if (ref.name === 'bg-key') return sshd.privateKeyPem;
        return sshd.knownHostsLine;
      },
    };
    const t = await transportFromSpec(
      {
        type: 'ssh',
        concurrency: 4,
        timeoutSeconds: 10,
        stopDirectory: join(work, 'from-secret', 'stop.d'),
        ssh: {
          user: sshd.user,
          port: sshd.port,
          addressType: 'InternalIP',
          sudo: false,
          privateKeySecretRef: { name: 'bg-key', key: 'id_ed25519' },
          knownHostsSecretRef: { name: 'bg-known-hosts', key: 'known_hosts' },
        },
      },
      { secrets },
    );
    expect(reads).toEqual(['bg-key/id_ed25519', 'bg-known-hosts/known_hosts']);
    const { logger, entries } = memoryLogger();
    const clock = new FakeClock(Date.parse('2026-11-25T10:00:00Z'));
    const nodes = [
      { name: 'n-ok', labels: { 'telemetry.rollout.dev/revision': 'abc123' }, addresses: [{ type: 'InternalIP', address: '127.0.0.1' }], ready: true },
      // sshd listens on 127.0.0.1 only: 127.0.0.2 refuses, so a failure message is produced and logged.
      { name: 'n-bad', labels: { 'telemetry.rollout.dev/revision': 'abc123' }, addresses: [{ type: 'InternalIP', address: '127.0.0.2' }], ready: false },
    ];
    const result = await issueBreakGlass({ transport: t, nodes, rollout: 'ns/agent', revision: 'abc123', reason: 'test', clock, logger });
    expect(result).toMatchObject({ nodesTargeted: 2, nodesStopped: 1, nodesFailed: 1, nodesTimedOut: 0 });
    expect(parseStopFile(await readFile(join(work, 'from-secret', 'stop.d', 'auto-abc123'), 'utf8')).revision).toBe('abc123');
    await clock.flush();
    expect(entries.some((e) => e.message === 'break-glass node not done' && e.node === 'n-bad')).toBe(true);

    const keyBody = sshd.privateKeyPem.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'));
    expect(keyBody.length).toBeGreaterThan(0);
    const everything = JSON.stringify({ result, entries });
    for (const line of keyBody) expect(everything).not.toContain(line);
    expect(everything).not.toContain('PRIVATE KEY');

    // The private temp directory exists while the transport is open, and is gone after close().
    const keyPath = (t as unknown as { opts: { privateKeyPath: string } }).opts.privateKeyPath;
    expect((await stat(keyPath)).mode & 0o777).toBe(0o600);
    expect((await stat(join(keyPath, '..'))).mode & 0o777).toBe(0o700);
    await t.close();
    await expect(stat(join(keyPath, '..'))).rejects.toMatchObject({ code: 'ENOENT' });
  }, 30_000);

  test('materializeSshCredentials rejects a non-key without echoing it', async () => {
    const secretish = 'hunter2-super-secret-value';
    await expect(materializeSshCredentials(secretish, sshd.knownHostsLine)).rejects.toThrow(/not a PEM or OpenSSH private key/);
    await materializeSshCredentials(secretish, sshd.knownHostsLine).catch((err: Error) => {
      expect(`${err.message}${String(err.stack)}`).not.toContain(secretish);
    });
  });
});
