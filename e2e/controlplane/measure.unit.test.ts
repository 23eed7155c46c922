import { describe, expect, it } from '@jest/globals';
import { buildSecondsFromLog } from './measure.js';

describe('buildSecondsFromLog', () => {
  it('takes the last "all binaries ready" figure', () => {
    const log = '[controlplane build 03:41:42] all binaries ready in /c/bin-x (457s)\n...\n[controlplane build 03:45:04] all binaries ready in /c/bin-x (0s)\n';
    expect(buildSecondsFromLog(log)).toBe(0);
    expect(buildSecondsFromLog(log.split('\n')[0] ?? '')).toBe(457);
    expect(buildSecondsFromLog('nothing')).toBeUndefined();
  });
});
