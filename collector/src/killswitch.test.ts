import { describe, it, expect } from '@jest/globals';
import { KillSwitch, MAX_STOP_FILES, STOP_FILE_POLL_MS, combine, decide, parseStopFile, type KillSwitchState } from './killswitch.js';
import { StoppedError } from './errors.js';
import { FakeClock, flushAsync } from '../../testkit/core/fakeclock.js';
import { FakeFs } from '../../testkit/collector/fakefs.js';
import { RecordingLogger } from '../../testkit/core/fakelogger.js';

/** The legacy single file (deprecated, still obeyed) and the stop directory. */
const PATH = '/var/run/telemetry-rollout/stop';
const DIR = '/var/run/telemetry-rollout/stop.d';
const OURS = 'rev-abc123';
const stopFile = (revision: string, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ rollout: 'telemetry/agent', revision, reason: 'apiserver unreachable', issuedAt: '2026-11-25T12:00:00Z', ...extra });

function setup() {
  const clock = new FakeClock();
  const fs = new FakeFs();
  const logger = new RecordingLogger();
  const ks = new KillSwitch({ path: PATH, directory: DIR, revision: OURS, reader: fs, clock, logger });
  const changes: KillSwitchState[] = [];
  ks.onChange((s) => changes.push(s));
  const stopsChanges: KillSwitchState[] = [];
  ks.onStopsChange((s) => stopsChanges.push(s));
  return { clock, fs, logger, ks, changes, stopsChanges };
}

describe('stop file decision', () => {
  it.each([
    ['absent', false, 'absent', { error: Object.assign(new Error('nope'), { code: 'ENOENT' }) }],
    ['parent dir missing', false, 'absent', { error: Object.assign(new Error('nope'), { code: 'ENOTDIR' }) }],
    ['our revision', true, 'revision-match', { text: stopFile(OURS) }],
    ['wildcard', true, 'wildcard', { text: stopFile('*') }],
    ['another revision', false, 'other-revision', { text: stopFile('rev-other') }],
    ['minimal valid file', true, 'revision-match', { text: `{"revision":"${OURS}"}` }],
    ['not JSON', true, 'malformed', { text: '{"revision": "rev-ab' }],
    ['empty file', true, 'malformed', { text: '' }],
    ['JSON array', true, 'malformed', { text: '[]' }],
    ['no revision', true, 'malformed', { text: '{"rollout":"a/b"}' }],
    ['empty revision', true, 'malformed', { text: '{"revision":""}' }],
    ['numeric revision', true, 'malformed', { text: '{"revision":42}' }],
    ['reason not a string', true, 'malformed', { text: `{"revision":"${OURS}","reason":{}}` }],
    ['permission denied', true, 'unreadable', { error: Object.assign(new Error('EACCES'), { code: 'EACCES' }) }],
    ['a directory', true, 'unreadable', { error: Object.assign(new Error('EISDIR'), { code: 'EISDIR' }) }],
  ] as const)('%s → stopped=%s (%s)', (_name, stopped, reason, read) => {
    const s = decide(OURS, read);
    expect([s.stopped, s.reason]).toEqual([stopped, reason]);
  });

  it('parses the documented fields', () => {
    expect(parseStopFile(stopFile('*'))).toEqual({
      rollout: 'telemetry/agent',
      revision: '*',
      reason: 'apiserver unreachable',
      issuedAt: '2026-11-25T12:00:00Z',
    });
    expect(parseStopFile('x'.repeat(70_000))).toHaveProperty('error');
  });
});

describe('KillSwitch', () => {
  it('runs while the file is absent', async () => {
    const { ks, clock } = setup();
    ks.start();
    await clock.advance(5000);
    expect(ks.isStopped()).toBe(false);
    expect(ks.signal.aborted).toBe(false);
    await ks.close();
  });

  it('stops within one poll interval (500 ms, well under 2 s) of the file appearing and aborts the signal', async () => {
    const { ks, clock, fs, changes } = setup();
    ks.start();
    await clock.advance(1200); // polls at 0, 500, 1000
    const signalBefore = ks.signal;
    const pollsBefore = ks.pollCount;
    fs.write(PATH, stopFile(OURS));
    // The next poll is at most one interval away, whenever the file lands.
    await clock.advance(STOP_FILE_POLL_MS - 1);
    expect(STOP_FILE_POLL_MS).toBeLessThan(2000);
    expect(ks.pollCount).toBe(pollsBefore + 1);
    expect(ks.isStopped()).toBe(true);
    expect(signalBefore.aborted).toBe(true);
    expect(signalBefore.reason).toBeInstanceOf(StoppedError);
    expect(changes.map((c) => c.reason)).toEqual(['revision-match']);
    expect(() => ks.throwIfStopped()).toThrow(StoppedError);
    await ks.close();
  });

  it('the poll interval bounds detection for every arrival time within a period', async () => {
    for (const offset of [0, 1, 250, 499]) {
      const { ks, clock, fs } = setup();
      ks.start();
      await clock.advance(1000 + offset);
      fs.write(PATH, stopFile('*'));
      const appeared = clock.nowMs();
      while (!ks.isStopped()) await clock.advance(1);
      expect([offset, clock.nowMs() - appeared <= STOP_FILE_POLL_MS]).toEqual([offset, true]);
      await ks.close();
    }
  });

  it('idles (no exit) and resumes with a fresh signal when the file is removed', async () => {
    const { ks, clock, fs, changes } = setup();
    fs.write(PATH, stopFile(OURS));
    await ks.poll();
    ks.start();
    const stoppedSignal = ks.signal;
    expect(stoppedSignal.aborted).toBe(true);
    let resumed = false;
    const waiting = ks.waitUntilRunning().then(() => (resumed = true));
    await clock.advance(10_000);
    expect(resumed).toBe(false);
    fs.remove(PATH);
    await clock.advance(STOP_FILE_POLL_MS);
    await waiting;
    expect(resumed).toBe(true);
    expect(ks.isStopped()).toBe(false);
    expect(ks.signal).not.toBe(stoppedSignal);
    expect(ks.signal.aborted).toBe(false);
    expect(changes.map((c) => c.stopped)).toEqual([true, false]);
    await ks.close();
  });

  it('resumes when the file is rewritten to name another revision', async () => {
    const { ks, clock, fs } = setup();
    fs.write(PATH, stopFile('*'));
    ks.start();
    await clock.advance(0);
    expect(ks.isStopped()).toBe(true);
    fs.write(PATH, stopFile('rev-other'));
    await clock.advance(STOP_FILE_POLL_MS);
    expect(ks.isStopped()).toBe(false);
    await ks.close();
  });

  it('ignores another revision, logging it once rather than every poll', async () => {
    const { ks, clock, fs, logger } = setup();
    fs.write(PATH, stopFile('rev-other'));
    ks.start();
    await clock.advance(10_000);
    expect(ks.isStopped()).toBe(false);
    const ignored = logger.entries.filter((e) => e.message.startsWith('ignoring stop file'));
    expect(ignored).toHaveLength(1);
    expect(ignored[0]?.meta).toMatchObject({ stopRevision: 'rev-other', revision: OURS });
    await ks.close();
  });

  it('a malformed file stops and is logged as an error, once', async () => {
    const { ks, clock, fs, logger } = setup();
    fs.write(PATH, '{"revision":');
    ks.start();
    await clock.advance(5000);
    expect(ks.state).toMatchObject({ stopped: true, reason: 'malformed' });
    expect(logger.at('error')).toHaveLength(1);
    expect(logger.at('error')[0]?.message).toContain('malformed');
    await ks.close();
  });

  it('a present but unreadable file stops and is logged as an error', async () => {
    const { ks, fs, logger } = setup();
    fs.failWith(PATH, 'EACCES');
    await ks.poll();
    expect(ks.state).toMatchObject({ stopped: true, reason: 'unreadable' });
    expect(logger.at('error')[0]?.meta).toMatchObject({ err: { code: 'EACCES' } });
  });

  it('waitUntilRunning rejects with the caller signal reason', async () => {
    const { ks, fs } = setup();
    fs.write(PATH, stopFile(OURS));
    await ks.poll();
    const ac = new AbortController();
    const p = ks.waitUntilRunning(ac.signal);
    ac.abort(new Error('shutdown'));
    await expect(p).rejects.toThrow('shutdown');
  });

  it('close() stops polling', async () => {
    const { ks, clock, fs } = setup();
    ks.start();
    await flushAsync();
    await ks.close();
    const reads = fs.reads.get(PATH);
    await clock.advance(10_000);
    expect(fs.reads.get(PATH)).toBe(reads);
    expect(clock.pendingTimers()).toBe(0);
  });
});

describe('KillSwitch over the stop directory', () => {
  it('stops when any file of the directory names our revision, and names the file', async () => {
    const { ks, fs, stopsChanges } = setup();
    fs.write(`${DIR}/auto-rev-other`, stopFile('rev-other'));
    await ks.poll();
    expect(ks.state).toMatchObject({ stopped: false, reason: 'other-revision' });
    fs.write(`${DIR}/auto-${OURS}`, stopFile(OURS));
    await ks.poll();
    expect(ks.state).toMatchObject({
      stopped: true,
      reason: 'revision-match',
      source: `${DIR}/auto-${OURS}`,
      stops: [{ source: `${DIR}/auto-${OURS}`, reason: 'revision-match' }],
    });
    expect(ks.state.detail).toContain(`${DIR}/auto-${OURS}`);
    expect(stopsChanges).toHaveLength(1);
  });

  it('a wildcard file stops every revision', async () => {
    const { ks, fs } = setup();
    fs.write(`${DIR}/manual-all`, stopFile('*'));
    await ks.poll();
    expect(ks.state).toMatchObject({ stopped: true, reason: 'wildcard', source: `${DIR}/manual-all` });
  });

  it('files naming only other revisions do not stop', async () => {
    const { ks, fs } = setup();
    fs.write(`${DIR}/auto-rev-1`, stopFile('rev-1'));
    fs.write(`${DIR}/manual-rev-2`, stopFile('rev-2'));
    await ks.poll();
    expect(ks.state).toMatchObject({ stopped: false, reason: 'other-revision' });
    expect(ks.state.detail).toBe('stop files name revision(s) rev-1, rev-2, not ours');
  });

  it('a malformed or oversized file in the directory stops (fail-safe), whatever its name', async () => {
    const { ks, fs, logger } = setup();
    fs.write(`${DIR}/handmade`, '{"revision":');
    await ks.poll();
    expect(ks.state).toMatchObject({ stopped: true, reason: 'malformed', source: `${DIR}/handmade` });
    expect(logger.at('error')[0]?.meta).toMatchObject({ stopFile: `${DIR}/handmade`, stopDirectory: DIR });
    fs.write(`${DIR}/handmade`, JSON.stringify({ revision: 'rev-other', reason: 'x'.repeat(70_000) }));
    await ks.poll();
    expect(ks.state).toMatchObject({ stopped: true, reason: 'malformed' });
    expect(ks.state.detail).toContain('larger than');
  });

  it('an unreadable directory or file stops (fail-safe); a missing directory does not', async () => {
    const { ks, fs } = setup();
    await ks.poll();
    expect(ks.state).toMatchObject({ stopped: false, reason: 'absent' });
    fs.failWith(DIR, 'EACCES');
    await ks.poll();
    expect(ks.state).toMatchObject({ stopped: true, reason: 'unreadable', source: DIR });
    fs.failWith(DIR);
    fs.write(`${DIR}/auto-rev-1`, stopFile('rev-1'));
    fs.failWith(`${DIR}/auto-rev-1`, 'EACCES');
    await ks.poll();
    expect(ks.state).toMatchObject({ stopped: true, reason: 'unreadable', source: `${DIR}/auto-rev-1` });
  });

  it('skips dot-files (temp files of atomic writes) and subdirectories', async () => {
    const { ks, fs } = setup();
    fs.write(`${DIR}/.auto-${OURS}.tmp-1-abc`, '{"revis');
    fs.write(`${DIR}/sub/manual-all`, stopFile('*'));
    await ks.poll();
    expect(ks.state).toMatchObject({ stopped: false, reason: 'absent' });
  });

  it('still obeys the legacy single file next to the directory', async () => {
    const { ks, fs } = setup();
    fs.write(`${DIR}/auto-rev-1`, stopFile('rev-1'));
    fs.write(PATH, stopFile(OURS));
    await ks.poll();
    expect(ks.state).toMatchObject({ stopped: true, reason: 'revision-match', source: PATH });
    fs.remove(PATH);
    await ks.poll();
    expect(ks.isStopped()).toBe(false);
  });

  it("removing one of two stops keeps the agent stopped (an Auto clear never lifts a person's stop)", async () => {
    const { ks, fs, clock, changes, stopsChanges } = setup();
    fs.write(`${DIR}/auto-${OURS}`, stopFile(OURS));
    ks.start();
    await clock.advance(0);
    expect(ks.isStopped()).toBe(true);
    fs.write(`${DIR}/manual-all`, stopFile('*'));
    await clock.advance(STOP_FILE_POLL_MS);
    expect(ks.state.stops?.map((x) => x.source)).toEqual([`${DIR}/auto-${OURS}`, `${DIR}/manual-all`]);
    fs.remove(`${DIR}/auto-${OURS}`);
    await clock.advance(STOP_FILE_POLL_MS * 4);
    expect(ks.state).toMatchObject({ stopped: true, reason: 'wildcard', source: `${DIR}/manual-all` });
    // One transition (stop), no resume; the set of stopping files changed three times.
    expect(changes.map((c) => c.stopped)).toEqual([true]);
    expect(stopsChanges.map((c) => c.stops?.length)).toEqual([1, 2, 1]);
    fs.remove(`${DIR}/manual-all`);
    await clock.advance(STOP_FILE_POLL_MS);
    expect(changes.map((c) => c.stopped)).toEqual([true, false]);
    await ks.close();
  });

  it('does not re-read an unchanged file, and reads it again once it is replaced', async () => {
    const { ks, fs, clock } = setup();
    fs.write(`${DIR}/auto-rev-1`, stopFile('rev-1'));
    ks.start();
    await clock.advance(STOP_FILE_POLL_MS * 10);
    expect(fs.reads.get(`${DIR}/auto-rev-1`)).toBe(1);
    fs.write(`${DIR}/auto-rev-1`, stopFile(OURS));
    await clock.advance(STOP_FILE_POLL_MS);
    expect(fs.reads.get(`${DIR}/auto-rev-1`)).toBe(2);
    expect(ks.isStopped()).toBe(true);
    await ks.close();
  });

  it(`stops without reading when the directory holds more than ${MAX_STOP_FILES} files`, async () => {
    const { ks, fs } = setup();
    for (let i = 0; i <= MAX_STOP_FILES; i++) fs.write(`${DIR}/auto-rev-${i}`, stopFile(`rev-${i}`));
    await ks.poll();
    expect(ks.state).toMatchObject({ stopped: true, reason: 'too-many', source: DIR });
    expect(ks.readCount).toBe(1); // the legacy file only
    fs.remove(`${DIR}/auto-rev-0`);
    await ks.poll();
    expect(ks.state).toMatchObject({ stopped: false, reason: 'other-revision' });
  });
});

describe('combine', () => {
  it('names a valid match before a malformed file, and counts the others', () => {
    const { state } = combine([
      { path: '/d/x', state: decide(OURS, { text: 'nope' }) },
      { path: '/d/auto-a', state: decide(OURS, { text: stopFile(OURS) }) },
      { path: '/d/other', state: decide(OURS, { text: stopFile('rev-other') }) },
    ]);
    expect(state).toMatchObject({ stopped: true, reason: 'revision-match', source: '/d/auto-a' });
    expect(state.detail).toBe('stop file names this revision (/d/auto-a); 1 more stop file(s)');
    expect(state.stops).toEqual([
      { source: '/d/x', reason: 'malformed' },
      { source: '/d/auto-a', reason: 'revision-match' },
    ]);
  });
});
