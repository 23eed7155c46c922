import { describe, expect, it } from '@jest/globals';
import { FakeClock } from '../../testkit/core/fakeclock.js';
import { SystemClock } from './clock.js';

describe('FakeClock', () => {
  it('fires due timers in due order, ties in creation order, with now() at each due time', async () => {
    const clock = new FakeClock(0);
    const fired: string[] = [];
    clock.setTimer(30, () => fired.push(`c@${clock.nowMs()}`));
    clock.setTimer(10, () => fired.push(`a@${clock.nowMs()}`));
    clock.setTimer(10, () => fired.push(`b@${clock.nowMs()}`));
    clock.setTimer(50, () => fired.push('late'));
    await clock.advance(30);
    expect(fired).toEqual(['a@10', 'b@10', 'c@30']);
    expect(clock.nowMs()).toBe(30);
    expect(clock.pendingTimers()).toBe(1);
    expect(clock.nextTimerInMs()).toBe(20);
  });

  it('does not fire cancelled timers', async () => {
    const clock = new FakeClock(0);
    let fired = false;
    const cancel = clock.setTimer(5, () => {
      fired = true;
    });
    cancel();
    cancel();
    await clock.advance(10);
    expect(fired).toBe(false);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('fires timers that async code re-arms within the advanced window', async () => {
    const clock = new FakeClock(0);
    const ticks: number[] = [];
    const loop = async (): Promise<void> => {
      for (let i = 0; i < 3; i++) {
        await clock.sleep(100);
        ticks.push(clock.nowMs());
      }
    };
    const done = loop();
    await clock.advance(1000);
    await done;
    expect(ticks).toEqual([100, 200, 300]);
    expect(clock.nowMs()).toBe(1000);
  });

  it('sleep rejects with the abort reason and cancels its timer', async () => {
    const clock = new FakeClock(0);
    const ac = new AbortController();
    const p = clock.sleep(1000, ac.signal);
    ac.abort(new Error('stop'));
    await expect(p).rejects.toThrow('stop');
    expect(clock.pendingTimers()).toBe(0);
    await expect(clock.sleep(1, ac.signal)).rejects.toThrow('stop');
  });

  it('rejects negative advances', async () => {
    await expect(new FakeClock().advance(-1)).rejects.toThrow('negative');
  });

  it('starts at a stable date', () => {
    expect(new FakeClock().now().toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(new FakeClock(new Date('2026-11-25T00:00:00Z')).now().toISOString()).toBe('2026-11-25T00:00:00.000Z');
  });
});

describe('SystemClock', () => {
  it('sleeps zero ms and honours an aborted signal', async () => {
    const clock = new SystemClock();
    await clock.sleep(0);
    const ac = new AbortController();
    ac.abort(new Error('gone'));
    await expect(clock.sleep(10_000, ac.signal)).rejects.toThrow('gone');
    expect(clock.now()).toBeInstanceOf(Date);
  });
});
