/**
 * kubectl-tro with no API server, and when things go wrong: the node inventory exported to a file, then
 * break-glass and --clear from that file alone; and every error is one line on stderr with a documented
 * exit code. Its own namespace and rollout, its own temp dir.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigMapInventoryStore } from '../operator/src/breakglass/configmapstore.js';
import { loadInventoryFile, type NodeInventory } from '../operator/src/breakglass/inventory.js';
import { parseStopFile } from '../operator/src/breakglass/stopfile.js';
import { installCrd } from './support/api.js';
import { createNamespace, dumpOnFailure, kubectlBinary, kubectlJSON } from './controlplane/testing.js';
import { createRollout, exec, kubeconfigVariant as variantIn, mgmt, troIn, WRAPPER } from './support/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tro-cli-offline-e2e-'));
let ns = '';
const tro = (args: string[], o: { kubeconfig?: string } = {}) => troIn(ns, args, o);
const kubeconfigVariant = (file: string, edit: Parameters<typeof variantIn>[2]) => variantIn(dir, file, edit);

describe('kubectl-tro offline and on errors', () => {
  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace(mgmt(), 'cli-offline');
    await createRollout(ns, 'collector-v2', true);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

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
      // A person's stop is their own file in the node's stop directory.
      const stopAt = (node: string) => join(root, node, 'var/run/telemetry-rollout/stop.d', `manual-${revision}`);
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
        stdout: `cluster prod-east-1: stop file manual-${revision} for revision ${revision} written to ${targeted.length}/${targeted.length} nodes via local\n`,
        stderr: '',
      });
      for (const n of targeted)
        expect(parseStopFile(readFileSync(stopAt(n), 'utf8'))).toMatchObject({
          rollout: `${ns}/collector-v2`,
          revision,
          reason: 'API server of prod-east-1 down',
        });
      expect(existsSync(stopAt(inventory.nodes[0]!.name))).toBe(false);

      // Who stopped what, offline too.
      const status = await exec(WRAPPER, [
        '--kubeconfig',
        join(dir, 'no-such-kubeconfig'),
        'break-glass',
        'status',
        `${ns}/collector-v2`,
        '--cluster',
        'prod-east-1',
        '--inventory',
        file,
        '--local-root',
        root,
        '-o',
        'json',
      ]);
      expect(status.code).toBe(0);
      const listed = JSON.parse(status.stdout) as { nodesWithStops: number; nodes: Array<{ node: string; files: Array<{ name: string; issuer: string }> }> };
      expect(listed.nodesWithStops).toBe(targeted.length);
      for (const n of listed.nodes) expect(n.files.map((f) => [f.name, f.issuer])).toEqual(targeted.includes(n.node) ? [[`manual-${revision}`, 'manual']] : []);

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
});
