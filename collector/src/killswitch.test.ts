import { describe, it, expect } from '@jest/globals';
import { KillSwitch, STOP_FILE_POLL_MS, decide, parseStopFile, type KillSwitchState } from './killswitch.js';
import { StoppedError } from './errors.js';
import { FakeClock, flushAsync } from '../../testkit/core/fakeclock.js';
import { FakeFs } from '../../testkit/collector/fakefs.js';
import { RecordingLogger } from '../../testkit/core/fakelogger.js';

const PATH = '/var/run/telemetry-rollout/stop';
const OURS = 'rev-abc123';
const stopFile = (revision: string, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ rollout: 'telemetry/agent', revision, reason: 'apiserver unreachable', issuedAt: '2026-11-25T12:00:00Z', ...extra });

function setup() {
  const clock = new FakeClock();
  const fs = new FakeFs();
  const logger = new RecordingLogger();
  const ks = new KillSwitch({ path: PATH, revision: OURS, reader: fs, clock, logger });
  const changes: KillSwitchState[] = [];
  ks.onChange((s) => changes.push(s));
  return { clock, fs, logger, ks, changes };
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
