// The real operator/bin/kubectl-tro wrapper, run as a person or kubectl would: it must pick a Node that
// can run the CLI (falling back to the pinned one when the node on PATH is too old), run the TypeScript
// entry through the resolve hook, and pass exit codes through. Offline commands only; the commands
// against a cluster are covered by e2e/cli.e2e.test.ts.
import { afterAll, describe, expect, it, jest } from '@jest/globals';
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { findRepoRoot } from '../api/crd.js';
import { validBase } from '../../../testkit/operator/api/fixtures.js';

const root = findRepoRoot();
const wrapper = join(root, 'operator', 'bin', 'kubectl-tro');
const dir = mkdtempSync(join(tmpdir(), 'tro-cli-wrapper-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A `node` that claims to be 20 and fails if it is ever used to run anything.
const oldNodeDir = join(dir, 'old-node');
mkdirSync(oldNodeDir);
writeFileSync(join(oldNodeDir, 'node'), '#!/bin/sh\nif [ "$1" = "--version" ]; then echo v20.20.2; exit 0; fi\necho "the old node was used" >&2\nexit 99\n');
chmodSync(join(oldNodeDir, 'node'), 0o755);
const SYSTEM_PATH = '/usr/local/bin:/usr/bin:/bin';
// Each case starts real Node processes; on a loaded machine that takes seconds (no assertion is timed).
jest.setTimeout(120_000);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function runWrapper(file: string, args: string[], env: Record<string, string | undefined> = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: { HOME: process.env.HOME, PATH: `${oldNodeDir}:${SYSTEM_PATH}`, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(new Error(`run ${file}`, { cause: err }));
      resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
    });
  });
}

describe('operator/bin/kubectl-tro', () => {
  it('falls back to the pinned Node when the node on PATH is too old', async () => {
    const r = await runWrapper(wrapper, ['--version']);
    expect(r).toEqual({ code: 0, stdout: expect.stringMatching(/^\d+\.\d+\.\d+\n$/) as unknown as string, stderr: '' });
  });

  it('runs through a symlink (kubectl and npm link plugins) and validates files offline', async () => {
    const link = join(dir, 'kubectl-tro');
    symlinkSync(wrapper, link);
    const good = join(dir, 'good.yaml');
    writeFileSync(good, stringify(validBase('good')));
    const ok = await runWrapper(link, ['validate', '-f', good]);
    expect(ok).toEqual({ code: 0, stdout: `${good}: doc 1 (good): valid\n`, stderr: '' });
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, `${stringify(validBase('good'))}---\n${stringify({ ...validBase('bad'), spec: {} })}`);
    const ko = await runWrapper(link, ['validate', '-f', bad]);
    expect(ko.code).toBe(1);
    expect(ko.stdout.split('\n')).toEqual(expect.arrayContaining([`${bad}: doc 1 (good): valid`, `${bad}: doc 2: spec.collector: Required value`]));
  });

  it('passes usage errors through as exit 2 with one line on stderr', async () => {
    const r = await runWrapper(wrapper, ['get']);
    expect(r).toEqual({ code: 2, stdout: '', stderr: "error: missing required argument 'name'\n" });
  });

  it('refuses a TRO_NODE that is too old, and says what to do when no usable Node exists (exit 127)', async () => {
    const forced = await runWrapper(wrapper, ['--version'], { TRO_NODE: join(oldNodeDir, 'node') });
    expect(forced).toMatchObject({ code: 127, stderr: expect.stringContaining('is not a Node.js >= 22.19') as unknown as string });
    // A copy of the wrapper in a package without node_modules: nothing to fall back to.
    const bare = join(dir, 'bare', 'operator', 'bin');
    mkdirSync(bare, { recursive: true });
    copyFileSync(wrapper, join(bare, 'kubectl-tro'));
    const none = await runWrapper(join(bare, 'kubectl-tro'), ['--version']);
    expect(none.code).toBe(127);
    expect(none.stderr).toMatch(/^kubectl-tro: needs Node\.js >= 22\.19: .*run npm ci there, or set TRO_NODE\)\n$/);
  });
});
