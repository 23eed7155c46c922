/**
 * The exec transport with real child processes (sh, sleep, cat): argv templates without a shell, the
 * JSON on stdin, exit codes, the concurrency bound counted on live children, and timeouts that kill the
 * whole process group.
 */
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExecTransport, expandTemplate } from './exec.js';
import { listScript } from './listing.js';
import { encodeStopFile, parseStopFile } from './stopfile.js';
import { TransportConfigError, type NodeTarget } from './transport.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tro-exec-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const node = (name: string, address = '10.0.0.1'): NodeTarget => ({ name, addresses: [{ type: 'InternalIP', address }] });
const content = encodeStopFile({ rollout: 'ns/agent', revision: 'abc123', reason: 'test', issuedAt: '2026-11-25T10:00:00.000Z' });

/** Whether a process still runs: a zombie (killed, waiting for its reaper, here PID 1) counts as dead. */
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
};

/** Polls a condition on real I/O (children writing files); a bound on waiting, not a timed assertion. */
async function waitFor(what: string, cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('expandTemplate', () => {
  test('replaces placeholders inside arguments and nothing else', () => {
    expect(
      expandTemplate(['run', '--node={{node}}', '{{ address }}', '{{path}}', '{{dir}}:{{file}}', '{{action}}', '$(id) {{node}}'], {
        node: 'n1',
        address: '10.0.0.1',
        path: '/var/run/x/auto-a',
        dir: '/var/run/x',
        file: 'auto-a',
        action: 'write',
      }),
    ).toEqual(['run', '--node=n1', '10.0.0.1', '/var/run/x/auto-a', '/var/run/x:auto-a', 'write', '$(id) n1']);
  });

  test('an unknown placeholder is a configuration error at construction', () => {
    expect(() => new ExecTransport({ command: ['x', '{{nodes}}'] })).toThrow(TransportConfigError);
    expect(() => new ExecTransport({ command: [] })).toThrow(TransportConfigError);
  });
});

describe('ExecTransport', () => {
  test('runs the command per node without a shell, the JSON on stdin, the facts in argv and environment', async () => {
    // sh is the program the template names; the transport itself never involves a shell, so the
    // hostile node address below reaches sh as "$2" verbatim and is only ever printed.
    const script =
      'mkdir -p "$1" && cat > "$1/stop" && printf "%s|%s|%s|%s|%s|%s|%s|%s|%s" "$2" "$3" "$TRO_ACTION" "$TRO_NODE" "$TRO_ADDRESS" "$TRO_PATH" "$TRO_DIR" "$TRO_FILE" "$TRO_LEGACY_PATH" > "$1/facts"';
    const t = new ExecTransport({
      command: ['sh', '-c', script, 'sh', `${dir}/{{node}}`, '{{address}}', '{{path}}'],
      stopDirectory: '/var/run/tro/stop.d',
      stopFilePath: '/var/run/tro/stop',
    });
    const outcomes = await t.write([node('n1'), node('n2', '$(touch pwned)')], 'manual-abc123', content);
    expect(outcomes.map((o) => [o.node, o.result])).toEqual([
      ['n1', 'ok'],
      ['n2', 'ok'],
    ]);
    expect(parseStopFile(await readFile(join(dir, 'n1/stop'), 'utf8')).revision).toBe('abc123');
    // {{path}} / TRO_PATH is the named file in the directory, so a command written for the single-file
    // layout (which writes TRO_PATH) keeps working.
    expect(await readFile(join(dir, 'n2/facts'), 'utf8')).toBe(
      '$(touch pwned)|/var/run/tro/stop.d/manual-abc123|write|n2|$(touch pwned)|/var/run/tro/stop.d/manual-abc123|/var/run/tro/stop.d|manual-abc123|/var/run/tro/stop',
    );
    await expect(access(join(dir, 'pwned'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(access('pwned')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('clear: empty stdin, action "clear", the file, and the revision filter in TRO_IF_REVISION; the markers become messages', async () => {
    const t = new ExecTransport({
      command: [
        'sh',
        '-c',
        'printf "%s|%s|%s|%s" "$1" "$TRO_FILE" "$TRO_IF_REVISION" "$(cat)" > "$2"; echo tro-removed-legacy',
        'sh',
        '{{action}}',
        `${dir}/{{node}}.out`,
      ],
    });
    expect((await t.clear([node('n1')], { file: 'auto-abc123', ifRevision: 'abc123' }))[0]).toMatchObject({
      result: 'ok',
      message: 'removed the legacy stop file too',
    });
    expect(await readFile(join(dir, 'n1.out'), 'utf8')).toBe('clear|auto-abc123|abc123|');
  });

  test('list: action "list" with empty path and file, the directory given; the output is parsed as a listing', async () => {
    // The command prints the listing of a local directory with the very script the ssh transport runs.
    const stops = join(dir, 'stops');
    await mkdir(stops);
    await writeFile(join(stops, 'auto-abc123'), content);
    const script = `[ "$1" = list ] && [ -z "$2" ] && [ -z "$TRO_FILE" ] && ${listScript(stops, join(dir, 'legacy'))}`;
    const t = new ExecTransport({ command: ['sh', '-c', script, 'sh', '{{action}}', '{{path}}'] });
    const [ok] = await t.list([node('n1')]);
    expect(ok).toMatchObject({ node: 'n1', result: 'ok', files: [{ name: 'auto-abc123', size: Buffer.byteLength(content), text: content }] });
    const garbled = new ExecTransport({ command: ['sh', '-c', 'echo "tro-stop-file dir x"'] });
    const [g] = await garbled.list([node('n1')]);
    expect(g).toMatchObject({ result: 'failed', message: expect.stringMatching(/garbled stop-file listing/) });
    // A command written before `list` existed, treating every action but clear as a write, fails
    // (the path is empty) rather than writing anything.
    const old = new ExecTransport({ command: ['sh', '-c', 'if [ "$TRO_ACTION" = clear ]; then rm -f "$TRO_PATH"; else cat > "$TRO_PATH"; fi'] });
    const [o] = await old.list([node('n1')]);
    expect(o?.result).toBe('failed');
    expect(o?.files).toBeUndefined();
  });

  test('exit code decides: non-zero fails the node with the tail of stderr; a missing program fails with a clear message', async () => {
    const t = new ExecTransport({
      command: ['sh', '-c', 'if [ "$1" = bad ]; then echo "run-command: instance not found" >&2; exit 3; fi; cat >/dev/null', 'sh', '{{node}}'],
    });
    const outcomes = await t.write([node('good'), node('bad'), node('good2')], 'auto-abc123', content);
    expect(outcomes.map((o) => [o.node, o.result, o.message])).toEqual([
      ['good', 'ok', undefined],
      ['bad', 'failed', 'sh failed (exit 3): run-command: instance not found'],
      ['good2', 'ok', undefined],
    ]);
    const missing = new ExecTransport({ command: [join(dir, 'no-such-binary'), '{{node}}'] });
    const [o] = await missing.write([node('n1')], 'auto-abc123', content);
    expect(o).toMatchObject({ result: 'failed', message: expect.stringMatching(/^cannot run .*no-such-binary: .*ENOENT/) });
  });

  test('{{address}} falls back through the address types; a node without any address fails when the template needs one', async () => {
    const t = new ExecTransport({ command: ['sh', '-c', 'printf %s "$1" > "$2"', 'sh', '{{address}}', `${dir}/{{node}}`], addressType: 'ExternalIP' });
    const outcomes = await t.write(
      [
        {
          name: 'ext',
          addresses: [
            { type: 'InternalIP', address: '10.0.0.1' },
            { type: 'ExternalIP', address: '203.0.113.9' },
          ],
        },
        { name: 'int', addresses: [{ type: 'InternalIP', address: '10.0.0.2' }] },
        { name: 'none', addresses: [] },
      ],
      'auto-abc123',
      content,
    );
    expect(outcomes.map((o) => o.result)).toEqual(['ok', 'ok', 'failed']);
    expect(await readFile(join(dir, 'ext'), 'utf8')).toBe('203.0.113.9');
    expect(await readFile(join(dir, 'int'), 'utf8')).toBe('10.0.0.2');
    expect(outcomes[2]?.message).toBe('node has no address');
  });

  test('the concurrency bound holds on live child processes, and every slot is used', async () => {
    const limit = 3;
    const log = join(dir, 'log');
    const release = join(dir, 'release');
    // Each child logs its start, waits until the test releases everyone, then logs its end. Appends of
    // one short line are atomic (O_APPEND), so the log is the true order of starts and ends.
    const script = 'echo "start $1" >> "$2"; while [ ! -e "$3" ]; do sleep 0.01; done; echo "end $1" >> "$2"';
    const t = new ExecTransport({ command: ['sh', '-c', script, 'sh', '{{node}}', log, release], concurrency: limit, timeoutSeconds: 60 });
    const run = t.write(
      Array.from({ length: 10 }, (_, i) => node(`n${i}`)),
      'auto-abc123',
      content,
    );
    const lines = async (): Promise<string[]> => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');
    await waitFor(`${limit} children to start`, async () => (await lines()).length >= limit);
    await writeFile(release, '');
    const outcomes = await run;
    expect(outcomes.every((o) => o.result === 'ok')).toBe(true);

    let inFlight = 0;
    let max = 0;
    for (const l of await lines()) {
      inFlight += l.startsWith('start') ? 1 : -1;
      max = Math.max(max, inFlight);
    }
    expect(max).toBe(limit);
    expect(await lines()).toHaveLength(20);
  });

  test('a command past the timeout is killed with its whole process group and recorded as timedOut', async () => {
    const pids = join(dir, 'pids');
    // The shell starts a grandchild (sleep) and waits: killing only the shell would leave sleep behind.
    const script = 'sleep 30 & echo "$$ $!" > "$1"; wait';
    const t = new ExecTransport({ command: ['sh', '-c', script, 'sh', pids], timeoutSeconds: 0.5 });
    const [o] = await t.write([node('slow')], 'auto-abc123', content);
    expect(o).toMatchObject({ node: 'slow', result: 'timedOut', message: expect.stringMatching(/^no result within 0.5s; killed/) });
    const [shell, grandchild] = (await readFile(pids, 'utf8')).trim().split(' ').map(Number) as [number, number];
    await waitFor('the process group to be reaped', async () => !alive(shell) && !alive(grandchild));
    expect(alive(grandchild)).toBe(false);
  });

  test('key material a command prints never reaches the outcome', async () => {
    const pem =
      '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----';
    const keyFile = join(dir, 'key');
    await writeFile(keyFile, pem);
    const t = new ExecTransport({ command: ['sh', '-c', 'cat "$1" >&2; echo "Authorization: Bearer abcdef123456" >&2; exit 1', 'sh', keyFile] });
    const [o] = await t.write([node('n1')], 'auto-abc123', content);
    expect(o?.result).toBe('failed');
    expect(o?.message).not.toContain('b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ');
    expect(o?.message).not.toContain('abcdef123456');
    expect(o?.message).toContain('[REDACTED PEM]');
    expect((await stat(keyFile)).isFile()).toBe(true);
  });
});
