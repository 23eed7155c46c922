// The README's main command: each demo scenario once, non-interactively, exactly as `npm run demo` runs
// it (e2e/demo/main.ts with Node's type stripping and the repository's resolve hook; the operator it
// starts is dist/, which `npm test` builds before the e2e tier). Each scenario starts and removes its own
// fleet; the test checks the outcome and the summary it prints.
import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { findRepoRoot } from '../operator/src/api/crd.js';

const ROOT = findRepoRoot();
const MAIN = join(ROOT, 'e2e', 'demo', 'main.ts');
const TS_RESOLVE_HOOK = pathToFileURL(join(ROOT, 'operator', 'src', 'cli', 'ts-resolve-hook.ts')).href;
const NODE = join(ROOT, 'node_modules', '.bin', 'node');
/** The compiled operator the demo starts (e2e/support/operator.ts). */
const OPERATOR_MAIN = join(ROOT, 'dist', 'operator', 'src', 'main.js');

function demo(scenario: string): Promise<{ code: number; out: string }> {
  if (!existsSync(OPERATOR_MAIN)) throw new Error(`${OPERATOR_MAIN} is missing: run npm run build first (npm test does)`);
  return new Promise((resolve) => {
    execFile(
      NODE,
      ['--import', TS_RESOLVE_HOOK, MAIN, '--scenario', scenario, '--quiet'],
      { timeout: 900_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1' } },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}\n${stderr}` });
      },
    );
  });
}

function summary(out: string): string {
  const i = out.indexOf('===== summary =====');
  return i < 0 ? '' : out.slice(i);
}

describe('npm run demo', () => {
  it.each([
    ['regression', 'RolledBack (GateFailed)'],
    ['healthy', 'Succeeded'],
    ['apiserver-down', 'RolledBack (BreakGlass)'],
    ['dns', 'RolledBack (GateFailed)'],
  ])('--scenario %s ends %s with a summary', async (scenario, outcome) => {
    const r = await demo(scenario);
    const s = summary(r.out);
    if (r.code !== 0 || !s) console.log(r.out.slice(-6000));
    expect(r.code).toBe(0);
    expect(s).toContain(`outcome:         ${outcome}`);
    for (const line of ['what happened:', 'nodes exposed:', 'detection time:', 'time to recover:']) expect(s).toContain(line);
    expect(r.out).toContain('cleaning up: operator, agents, fleet');
    if (scenario === 'regression') {
      // Caught at the first node step of the largest cluster: no more than its first batch ran the bad revision.
      const exposed = Number(/nodes exposed:\s+(\d+)/.exec(s)?.[1]);
      expect(exposed).toBeGreaterThan(0);
      expect(exposed).toBeLessThanOrEqual(15);
    }
  });
});
