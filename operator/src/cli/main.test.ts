import { describe, expect, it } from '@jest/globals';
import { abortableSleep } from './main.js';

describe('abortableSleep', () => {
  it('resolves (never rejects) when the signal aborts, also when it already has', async () => {
    const ac = new AbortController();
    const sleeping = abortableSleep(3_600_000, ac.signal);
    ac.abort(new Error('Ctrl-C'));
    await expect(sleeping).resolves.toBeUndefined();
    await expect(abortableSleep(3_600_000, ac.signal)).resolves.toBeUndefined();
  });

  it('resolves after the time when nothing aborts', async () => {
    await expect(abortableSleep(1, new AbortController().signal)).resolves.toBeUndefined();
  });
});
