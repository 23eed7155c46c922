// The kubectl-tro plugin against the real management cluster, every command run through the real wrapper
// (operator/bin/kubectl-tro) as a separate process, in text (piped) and JSON output, plus the error
// cases and `kubectl tro` through kubectl's plugin mechanism. There is no operator here: the test writes a
// realistic status itself (kubectl patch --subresource=status) and checks what the plugin shows and
// which requests (spec.paused, annotations) it writes. Break-glass runs offline on the local transport
// from an inventory exported out of the management cluster.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { findRepoRoot } from '../operator/src/api/crd.js';
import { validBase } from '../testkit/operator/api/fixtures.js';
import type { HistoryEntry, TelemetryRollout } from '../operator/src/api/types.generated.js';
import { ConfigMapInventoryStore } from '../operator/src/breakglass/configmapstore.js';
import { loadInventoryFile, type NodeInventory } from '../operator/src/breakglass/inventory.js';
import { parseStopFile } from '../operator/src/breakglass/stopfile.js';
import { fixtureManifest, gateFailureStatus } from '../testkit/operator/cli/fixtures.js';
import { installCrd } from './support/api.js';
import { createNamespace, dumpOnFailure, eventually, kubectl, kubectlBinary, kubectlJSON, managementCluster } from './controlplane/testing.js';

const ROOT = findRepoRoot();
const WRAPPER = join(ROOT, 'operator', 'bin', 'kubectl-tro');
const mgmt = () => managementCluster();
const dir = mkdtempSync(join(tmpdir(), 'tro-cli-e2e-'));
let ns = '';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command and collects its exit code and output; stdout is a pipe, so no colour. */
function exec(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Result> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(new Error(`${file} ${args.join(' ')}`, { cause: err }));
      resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
    });
  });
}

/** `kubectl-tro --kubeconfig <mgmt> -n <ns> ...args` through the wrapper. */
function tro(args: string[], o: { kubeconfig?: string } = {}): Promise<Result> {
  return exec(WRAPPER, ['--kubeconfig', o.kubeconfig ?? mgmt().kubeconfigPath, '-n', ns, ...args]);
}

/** A copy of the management kubeconfig with `edit` applied (kept in the test's private temp dir). */
function kubeconfigVariant(
  file: string,
  edit: (kc: { clusters: Array<{ cluster: { server: string } }>; users: Array<{ user: { token?: string } }> }) => void,
): string {
  const kc = parse(readFileSync(mgmt().kubeconfigPath, 'utf8')) as Parameters<typeof edit>[0];
  edit(kc);
  const path = join(dir, file);
  writeFileSync(path, stringify(kc), { mode: 0o600 });
  return path;
}

const annotations = async (name: string) => (await kubectlJSON<TelemetryRollout>(mgmt(), ['get', 'tro', name, '-n', ns])).metadata?.annotations ?? {};

async function createRollout(name: string, withStatus: boolean): Promise<void> {
  await kubectl(mgmt(), ['apply', '-n', ns, '-f', '-'], { input: JSON.stringify(fixtureManifest(name)) });
  if (withStatus) {
    await kubectl(mgmt(), ['patch', 'tro', name, '-n', ns, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: gateFailureStatus() })]);
  }
}

describe('kubectl-tro against the management cluster', () => {
  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace(mgmt(), 'cli');
    await createRollout('collector-v2', true);
    await createRollout('fresh', false);
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
      await createRollout('watched', true);
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
    'inventory export, then break-glass and --clear from that file with no API server at all',
    dumpOnFailure(async () => {
      // The inventory as the operator keeps it, built from the management cluster's real (kwok) nodes.
      const served = await kubectlJSON<{ items: Array<{ metadata: { name: string }; status?: { addresses?: Array<{ type: string; address: string }> } }> }>(
        mgmt(),
        ['get', 'nodes'],
      );
      const revision = '5d2c9a1f';
      const inventory: NodeInventory = {
        cluster: 'prod-east-1',
        capturedAt: '2026-11-25T09:00:00.000Z',
        nodes: served.items.map((n, i): NodeInventory['nodes'][number] => ({
          name: n.metadata.name,
          labels: i === 0 ? {} : { 'telemetry.rollout.dev/revision': revision },
          addresses: n.status?.addresses ?? [],
          ready: true,
        })),
      };
      expect(inventory.nodes.length).toBeGreaterThanOrEqual(2);
      await new ConfigMapInventoryStore({ api: mgmt().kubeConfig(), namespace: ns }).save(inventory);

      const file = join(dir, 'prod-east-1.inventory.yaml');
      const exported = await tro(['inventory', 'export', 'prod-east-1', '--inventory-namespace', ns, '--file', file]);
      expect(exported).toEqual({
        code: 0,
        stdout: `wrote the node inventory of cluster prod-east-1 (${inventory.nodes.length} nodes, captured 2026-11-25T09:00:00.000Z) to ${file}\n`,
        stderr: '',
      });
      expect(await loadInventoryFile(file)).toEqual(inventory);
      const json = await tro(['inventory', 'export', 'prod-east-1', '--inventory-namespace', ns, '-o', 'json']);
      expect(JSON.parse(json.stdout)).toEqual({ apiVersion: 'telemetry.rollout.dev/v1alpha1', kind: 'NodeInventory', ...inventory });
      const missing = await tro(['inventory', 'export', 'prod-west-1', '--inventory-namespace', ns]);
      expect(missing).toEqual({
        code: 3,
        stdout: '',
        stderr: `error: no node inventory of cluster prod-west-1 in namespace ${ns} (the operator records it while the cluster is healthy)\n`,
      });

      // Break-glass is offline: pointing --kubeconfig at nothing changes nothing.
      const root = join(dir, 'node-roots');
      const stopAt = (node: string) => join(root, node, 'var/run/telemetry-rollout/stop');
      const common = [
        '--kubeconfig',
        join(dir, 'no-such-kubeconfig'),
        'break-glass',
        'prod-east-1',
        '--inventory',
        file,
        '--revision',
        revision,
        '--local-root',
        root,
      ];
      const issued = await exec(WRAPPER, [...common, '--reason', 'API server of prod-east-1 down', '--rollout', `${ns}/collector-v2`]);
      const targeted = inventory.nodes.slice(1).map((n) => n.name);
      expect(issued).toEqual({
        code: 0,
        stdout: `cluster prod-east-1: stop file for revision ${revision} written to ${targeted.length}/${targeted.length} nodes via local\n`,
        stderr: '',
      });
      for (const n of targeted)
        expect(parseStopFile(readFileSync(stopAt(n), 'utf8'))).toMatchObject({
          rollout: `${ns}/collector-v2`,
          revision,
          reason: 'API server of prod-east-1 down',
        });
      expect(existsSync(stopAt(inventory.nodes[0]!.name))).toBe(false);

      const cleared = await exec(WRAPPER, [...common, '--clear', '-o', 'json']);
      expect(cleared.code).toBe(0);
      expect(JSON.parse(cleared.stdout)).toMatchObject({
        action: 'clear',
        cluster: 'prod-east-1',
        result: { nodesTargeted: inventory.nodes.length, nodesCleared: inventory.nodes.length, nodesFailed: 0 },
      });
      for (const n of targeted) expect(existsSync(stopAt(n))).toBe(false);

      const wrongCluster = await exec(WRAPPER, [
        'break-glass',
        'prod-west-1',
        '--inventory',
        file,
        '--revision',
        revision,
        '--reason',
        'x',
        '--local-root',
        root,
      ]);
      expect(wrongCluster).toEqual({ code: 2, stdout: '', stderr: `error: ${file} is the inventory of cluster prod-east-1, not prod-west-1\n` });
    }),
  );

  describe('errors: one line on stderr and a documented exit code', () => {
    it(
      'a rollout that does not exist: exit 3',
      dumpOnFailure(async () => {
        for (const args of [
          ['get', 'nope'],
          ['pause', 'nope'],
          ['abort', 'nope'],
          ['history', 'nope', '-o', 'json'],
        ]) {
          const r = await tro(args);
          expect(r).toEqual({ code: 3, stdout: '', stderr: `error: telemetryrollout "nope" not found in namespace "${ns}"\n` });
        }
      }),
    );

    it(
      'an unreachable API server: exit 4 at once, and a server that never answers: exit 4 after --request-timeout',
      dumpOnFailure(async () => {
        const unreachable = kubeconfigVariant('unreachable.kubeconfig', (kc) => {
          for (const c of kc.clusters) c.cluster.server = 'https://127.0.0.1:1';
        });
        for (const args of [
          ['get', 'collector-v2'],
          ['list', '-o', 'json'],
          ['pause', 'collector-v2'],
        ]) {
          const r = await tro(args, { kubeconfig: unreachable });
          expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 4, stdout: '' });
          expect(r.stderr).toMatch(/^error: .*: cannot reach https:\/\/127\.0\.0\.1:1: .+\n$/);
        }

        // Accepts connections and never says a word (an overloaded or wedged API server).
        const silent = net.createServer(() => {});
        await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
        try {
          const port = (silent.address() as net.AddressInfo).port;
          const wedged = kubeconfigVariant('wedged.kubeconfig', (kc) => {
            for (const c of kc.clusters) c.cluster.server = `https://127.0.0.1:${port}`;
          });
          const r = await tro(['get', 'collector-v2', '--request-timeout', '1'], { kubeconfig: wedged });
          expect(r).toEqual({
            code: 4,
            stdout: '',
            stderr: `error: get telemetryrollout "collector-v2" in namespace "${ns}": cannot reach https://127.0.0.1:${port}: no answer within 1s (--request-timeout)\n`,
          });
        } finally {
          silent.close();
        }
      }),
    );

    it(
      'bad credentials (401) and a user without RBAC (403): exit 5, no token printed',
      dumpOnFailure(async () => {
        const bogus = 'bogus-token-0123456789abcdef';
        const badToken = kubeconfigVariant('badtoken.kubeconfig', (kc) => {
          for (const u of kc.users) u.user.token = bogus;
        });
        const unauthorized = await tro(['get', 'collector-v2'], { kubeconfig: badToken });
        expect({ code: unauthorized.code, stdout: unauthorized.stdout }).toEqual({ code: 5, stdout: '' });
        expect(unauthorized.stderr).toMatch(/^error: get telemetryrollout "collector-v2" in namespace "\S+": .*\n$/);
        expect(unauthorized.stderr).not.toContain(bogus);

        const user = 'system:serviceaccount:telemetry-system:telemetry-rollout-operator';
        // Precondition: nothing in this fresh namespace lets the extra user read rollouts.
        expect(
          (
            await exec(kubectlBinary(), [
              '--kubeconfig',
              mgmt().kubeconfigPath,
              'auth',
              'can-i',
              'get',
              'telemetryrollouts.telemetry.rollout.dev',
              '-n',
              ns,
              `--as=${user}`,
            ])
          ).stdout.trim(),
        ).toBe('no');
        const forbidden = await tro(['get', 'collector-v2'], { kubeconfig: mgmt().user(user).kubeconfigPath });
        expect({ code: forbidden.code, stdout: forbidden.stdout }).toEqual({ code: 5, stdout: '' });
        expect(forbidden.stderr).toMatch(/^error: get telemetryrollout "collector-v2" in namespace "\S+": .*forbidden.*\n$/);
        expect(forbidden.stderr.split('\n')).toHaveLength(2);
      }),
    );

    it(
      'usage errors: exit 2, including an unusable --kubeconfig or --context',
      dumpOnFailure(async () => {
        const cases: Array<[string[], RegExp]> = [
          [['get'], /^error: missing required argument 'name'\n$/],
          [['get', 'x', '-o', 'xml'], /^error: option '-o, --output <format>' argument 'xml' is invalid/],
          [['frobnicate'], /^error: unknown command 'frobnicate'/],
          [['get', 'x', '--context', 'no-such-context'], /^error: context "no-such-context" not found in the kubeconfig\n$/],
        ];
        for (const [args, err] of cases) {
          const r = await tro(args);
          expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 2, stdout: '' });
          expect(r.stderr).toMatch(err);
        }
        const missing = await tro(['get', 'x'], { kubeconfig: join(dir, 'no-such-kubeconfig') });
        expect(missing).toEqual({ code: 2, stdout: '', stderr: `error: cannot load kubeconfig ${join(dir, 'no-such-kubeconfig')}: no such file\n` });
      }),
    );
  });

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
