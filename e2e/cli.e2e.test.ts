// The kubectl-tro plugin against the real management cluster, every command run through the real wrapper
// (operator/bin/kubectl-tro) as a separate process, in text (piped) and JSON output, plus the error
// cases and `kubectl tro` through kubectl's plugin mechanism. There is no operator here: the test writes a
// realistic status itself (kubectl patch --subresource=status) and checks what the plugin shows and
// which requests (spec.paused, annotations) it writes. Offline break-glass and the error cases are in
// cli-offline.e2e.test.ts.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { validBase } from '../testkit/operator/api/fixtures.js';
import type { HistoryEntry, TelemetryRollout } from '../operator/src/api/types.generated.js';
import { gateFailureStatus } from '../testkit/operator/cli/fixtures.js';
import { installCrd } from './support/api.js';
import { createNamespace, dumpOnFailure, eventually, kubectl, kubectlBinary, kubectlJSON } from './controlplane/testing.js';
import { annotationsOf, createRollout, exec, mgmt, ROOT, troIn, WRAPPER } from './support/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tro-cli-e2e-'));
let ns = '';
const tro = (args: string[], o: { kubeconfig?: string } = {}) => troIn(ns, args, o);
const annotations = (name: string) => annotationsOf(ns, name);

describe('kubectl-tro against the management cluster', () => {
  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace(mgmt(), 'cli');
    await createRollout(ns, 'collector-v2', true);
    await createRollout(ns, 'fresh', false);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(
    'get: the tree as plain text when piped, and the object with -o json and -o yaml',
    dumpOnFailure(async () => {
      const text = await tro(['get', 'collector-v2']);
      expect({ code: text.code, stderr: text.stderr }).toEqual({ code: 0, stderr: '' });
      expect(text.stdout).not.toContain('\x1b[');
      const lines = text.stdout.split('\n');
      expect(lines[0]).toMatch(
        new RegExp(`^collector-v2 \\(${ns}\\) {2}RollingBack \\(GateFailed\\) {2}revision 5d2c9a1f ← 1f0e3b7c {2}0/3 clusters {2}health Fail {2}age \\S+$`),
      );
      expect(text.stdout).toContain('├── stage canary (current)\n│   └── prod-east-1  RollingBack  reachable  nodes 8/150  step 2/4 at 5%\n');
      expect(text.stdout).toMatch(/│ {7}│ {3}├── ✗ apiServerP99Seconds {6}1\.42s {5}> 315ms\n/);
      expect(text.stdout).toMatch(/│ {7}│ {3}├── ✓ apiServerErrorRatio {6}0\.12% {5}≤ 1%\n/);
      expect(text.stdout).toContain('projection ✗ Fail  p99 at 100% 9.8s  3900/s');
      expect(text.stdout).toContain('└── stage rest\n    ├── prod-west-1  Pending  nodes 0/60\n    └── prod-north-1  Pending  nodes 0/20\n');

      const served = await kubectlJSON<TelemetryRollout>(mgmt(), ['get', 'tro', 'collector-v2', '-n', ns]);
      const json = await tro(['get', 'collector-v2', '-o', 'json']);
      expect(json.code).toBe(0);
      expect(JSON.parse(json.stdout)).toEqual(served);
      expect((JSON.parse(json.stdout) as TelemetryRollout).status).toEqual(gateFailureStatus());
      const yaml = await tro(['get', 'collector-v2', '-o', 'yaml']);
      expect(yaml.code).toBe(0);
      expect(parse(yaml.stdout)).toEqual(served);
    }),
  );

  it(
    'list: the namespace as a table and as JSON, and every namespace with -A',
    dumpOnFailure(async () => {
      const text = await tro(['list']);
      expect(text.code).toBe(0);
      const rows = text.stdout.trimEnd().split('\n');
      expect(rows[0]).toMatch(/^NAME\s+PHASE\s+REASON\s+STAGE\s+PROGRESS\s+HEALTH\s+REVISION\s+AGE$/);
      expect(rows.slice(1).map((r) => r.split(/\s+/).slice(0, 3))).toEqual([
        ['collector-v2', 'RollingBack', 'GateFailed'],
        ['fresh', '-', '-'],
      ]);
      const json = await tro(['list', '-o', 'json']);
      const list = JSON.parse(json.stdout) as { kind: string; items: TelemetryRollout[] };
      expect({ code: json.code, kind: list.kind, names: list.items.map((i) => i.metadata?.name) }).toEqual({
        code: 0,
        kind: 'List',
        names: ['collector-v2', 'fresh'],
      });
      const all = await tro(['list', '-A']);
      expect(all.code).toBe(0);
      expect(all.stdout).toMatch(/^NAMESPACE\s+NAME\s+PHASE/);
      expect(all.stdout).toMatch(new RegExp(`^${ns}\\s+collector-v2\\s+RollingBack`, 'm'));
    }),
  );

  it(
    'pause and resume: merge-patch spec.paused, in text and JSON',
    dumpOnFailure(async () => {
      const paused = await tro(['pause', 'collector-v2']);
      expect(paused).toEqual({
        code: 0,
        stdout: `telemetryrollout "collector-v2" in namespace "${ns}": spec.paused set to true\nthe operator will: nothing now (phase is RollingBack); the rollout will not progress while spec.paused is true\n`,
        stderr: '',
      });
      expect(await kubectl(mgmt(), ['get', 'tro', 'collector-v2', '-n', ns, '-o', 'jsonpath={.spec.paused}'])).toBe('true');
      const resumed = await tro(['resume', 'collector-v2', '-o', 'json']);
      expect(resumed.code).toBe(0);
      expect((JSON.parse(resumed.stdout) as TelemetryRollout).spec.paused).toBe(false);
      expect(await kubectl(mgmt(), ['get', 'tro', 'collector-v2', '-n', ns, '-o', 'jsonpath={.spec.paused}'])).toBe('false');
    }),
  );

  it(
    'abort, retry and promote: set their annotation to a fresh value each time and say what the operator will do',
    dumpOnFailure(async () => {
      const abort = await tro(['abort', 'collector-v2', '--reason', 'p99 regression on prod-east-1']);
      expect(abort.code).toBe(0);
      const abortValue = (await annotations('collector-v2'))['telemetry.rollout.dev/abort'];
      expect(abortValue).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z-[0-9a-z]{6} p99 regression on prod-east-1$/);
      expect(abort.stdout).toBe(
        `telemetryrollout "collector-v2" in namespace "${ns}": abort requested (telemetry.rollout.dev/abort=${JSON.stringify(abortValue)})\nthe operator will: nothing new: the rollout is already rolling back\n`,
      );

      const retry = await tro(['retry', 'collector-v2', '-o', 'json']);
      expect(retry.code).toBe(0);
      const retryValue = (await annotations('collector-v2'))['telemetry.rollout.dev/retry'];
      expect(retryValue).toMatch(/^\d{4}-\d\d-\d\dT.*Z-[0-9a-z]{6}$/);
      expect((JSON.parse(retry.stdout) as TelemetryRollout).metadata?.annotations?.['telemetry.rollout.dev/retry']).toBe(retryValue);

      const promote = await tro(['promote', 'collector-v2']);
      expect(promote.code).toBe(0);
      expect(promote.stdout).toContain('the operator will: nothing: no cluster is baking; the request is recorded and ignored\n');
      const first = (await annotations('collector-v2'))['telemetry.rollout.dev/promote'];
      expect((await tro(['promote', 'collector-v2'])).code).toBe(0);
      const second = (await annotations('collector-v2'))['telemetry.rollout.dev/promote'];
      expect(first).toMatch(/Z-[0-9a-z]{6}$/);
      expect(second).not.toBe(first);

      // The requests are pending until the operator records them in status.handledRequests.
      expect((await tro(['get', 'collector-v2'])).stdout).toContain('│ pending: abort, retry, promote (not yet handled by the operator)\n');
    }),
  );

  it(
    'history: status.history as a table and as JSON',
    dumpOnFailure(async () => {
      const text = await tro(['history', 'collector-v2']);
      expect(text.code).toBe(0);
      const rows = text.stdout.trimEnd().split('\n');
      expect(rows[0]).toMatch(/^TIME\s+AGE\s+REASON\s+CLUSTER\s+MESSAGE$/);
      expect(rows[4]).toMatch(/^2026-11-25T09:59:48Z\s+\S+\s+GateFailed\s+prod-east-1\s+apiServerP99Seconds 1\.42 > 0\.315; rolling back$/);
      const json = await tro(['history', 'collector-v2', '-o', 'json']);
      expect(JSON.parse(json.stdout) as HistoryEntry[]).toEqual(gateFailureStatus().history);
      const none = await tro(['history', 'fresh']);
      expect(none).toEqual({ code: 0, stdout: '', stderr: 'No history recorded for fresh yet.\n' });
    }),
  );

  it(
    'get --watch --until-done: re-renders on change and exits 1 when the rollout ends RolledBack',
    dumpOnFailure(async () => {
      await createRollout(ns, 'watched', true);
      const child = spawn(WRAPPER, ['--kubeconfig', mgmt().kubeconfigPath, '-n', ns, 'get', 'watched', '--watch', '--until-done', '--interval', '0.5'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      try {
        await eventually('the first render', () => stdout.includes('RollingBack (GateFailed)'));
        await kubectl(mgmt(), [
          'patch',
          'tro',
          'watched',
          '-n',
          ns,
          '--subresource=status',
          '--type=merge',
          '-p',
          JSON.stringify({ status: { phase: 'RolledBack', completedAt: new Date().toISOString() } }),
        ]);
        expect(await exited).toBe(1);
      } finally {
        child.kill();
      }
      const renders = stdout.split('\n\n');
      expect(renders).toHaveLength(2);
      expect(renders[0]).toMatch(/^watched \(\S+\) {2}RollingBack \(GateFailed\)/);
      expect(renders[1]).toMatch(/^watched \(\S+\) {2}RolledBack \(GateFailed\)/);
      expect(stderr).toBe('rollout watched ended RolledBack (GateFailed)\n');
    }),
  );

  it(
    'validate: exit 0 for valid files, 1 with `file: doc N: path: message` lines for invalid ones',
    dumpOnFailure(async () => {
      const sample = join(ROOT, 'config', 'samples', 'minimal.yaml');
      const ok = await tro(['validate', '-f', sample]);
      expect(ok).toEqual({ code: 0, stdout: `${sample}: doc 1 (collector-minimal): valid\n`, stderr: '' });
      const bad = join(dir, 'invalid.yaml');
      const broken = validBase('broken');
      (broken.spec as { strategy?: unknown }).strategy = { stages: [{ name: 'canary', nodeSteps: [50, 10] }] };
      writeFileSync(bad, `${stringify(validBase('fine'))}---\n${stringify(broken)}`);
      const ko = await tro(['validate', '-f', bad]);
      expect(ko.code).toBe(1);
      const lines = ko.stdout.trimEnd().split('\n');
      expect(lines[0]).toBe(`${bad}: doc 1 (fine): valid`);
      expect(lines.slice(1).length).toBeGreaterThan(0);
      for (const l of lines.slice(1)) expect(l).toMatch(new RegExp(`^${bad.replace(/[.]/g, '\\.')}: doc 2: spec\\.strategy\\.stages\\[0\\]\\.nodeSteps: .+`));
      const json = await tro(['validate', '-f', bad, '-o', 'json']);
      expect(json.code).toBe(1);
      expect((JSON.parse(json.stdout) as Array<{ result: string }>).map((r) => r.result)).toEqual(['valid', 'invalid']);
    }),
  );

  it(
    'works as `kubectl tro` through kubectl’s plugin mechanism',
    dumpOnFailure(async () => {
      const env = { ...process.env, PATH: `${join(ROOT, 'operator', 'bin')}${delimiter}${process.env.PATH ?? ''}` };
      const plugins = await exec(kubectlBinary(), ['plugin', 'list', '--name-only'], env);
      expect(plugins.stdout.split('\n')).toContain('kubectl-tro');
      const r = await exec(kubectlBinary(), ['tro', 'get', 'collector-v2', '--kubeconfig', mgmt().kubeconfigPath, '-n', ns], env);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      expect(r.stdout).toMatch(/^collector-v2 \(\S+\) {2}RollingBack \(GateFailed\)/);
      expect(r.stdout).toContain('├── stage canary (current)');
    }),
  );
});
