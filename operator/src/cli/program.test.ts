import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { validBase } from '../../../testkit/operator/api/fixtures.js';
import type { NodeInventory } from '../breakglass/inventory.js';
import { MemoryInventoryStore } from '../../../testkit/operator/breakglass/inventory.js';
import { FakeClock } from '../../../testkit/core/fakeclock.js';
import type { TelemetryRollout } from '../api/types.generated.js';
import type { ConnectOptions, RolloutApi } from './client.js';
import { CliError, EXIT } from './errors.js';
import { FIXTURE_NOW, fixtureRollout, gateFailureStatus } from '../../../testkit/operator/cli/fixtures.js';
import { run, type CliDeps } from './program.js';
import { renderRollout, stripAnsi } from './render.js';

/** A scripted API: `get` answers from `script` (the last entry repeats), patches are recorded. */
class FakeApi implements RolloutApi {
  readonly patches: Array<{ namespace: string; name: string; patch: object }> = [];
  readonly lists: Array<string | undefined> = [];
  gets = 0;
  public script: Array<TelemetryRollout | CliError>;
  private readonly items: TelemetryRollout[];
  constructor(script: Array<TelemetryRollout | CliError>, items: TelemetryRollout[] = []) {
    this.script = script;
    this.items = items;
  }
  async get(namespace: string, name: string): Promise<TelemetryRollout> {
    const r = this.script[Math.min(this.gets++, this.script.length - 1)];
    if (r === undefined) throw new CliError(`telemetryrollout "${name}" not found in namespace "${namespace}"`, EXIT.notFound);
    if (r instanceof CliError) throw r;
    return r;
  }
  async list(namespace: string | undefined): Promise<TelemetryRollout[]> {
    this.lists.push(namespace);
    return this.items;
  }
  async patch(namespace: string, name: string, patch: object): Promise<TelemetryRollout> {
    this.patches.push({ namespace, name, patch });
    const base = this.script[0];
    if (!base || base instanceof CliError) throw new CliError(`telemetryrollout "${name}" not found in namespace "${namespace}"`, EXIT.notFound);
    const p = patch as { spec?: object; metadata?: { annotations?: Record<string, string> } };
    return {
      ...base,
      metadata: { ...base.metadata, annotations: { ...base.metadata?.annotations, ...p.metadata?.annotations } },
      spec: { ...base.spec, ...p.spec },
    };
  }
}

interface Harness {
  code: number;
  out: string;
  err: string;
  api: FakeApi;
  connects: ConnectOptions[];
  sleeps: number[];
}

async function cli(
  argv: string[],
  o: {
    api?: FakeApi;
    isTTY?: boolean;
    env?: Record<string, string | undefined>;
    stdin?: string;
    onSleep?: (n: number, abort: () => void) => void;
    inventories?: CliDeps['inventories'];
  } = {},
): Promise<Harness> {
  const out: string[] = [];
  const err: string[] = [];
  const connects: ConnectOptions[] = [];
  const sleeps: number[] = [];
  const api = o.api ?? new FakeApi([fixtureRollout(gateFailureStatus())]);
  const interrupt = new AbortController();
  const deps: CliDeps = {
    stdout: { write: (s: string) => out.push(s), ...(o.isTTY !== undefined ? { isTTY: o.isTTY } : {}) },
    stderr: { write: (s: string) => err.push(s) },
    env: o.env ?? {},
    now: () => FIXTURE_NOW,
    random: () => 0.5,
    sleep: async (ms) => {
      sleeps.push(ms);
      o.onSleep?.(sleeps.length, () => interrupt.abort());
    },
    signal: interrupt.signal,
    connect: async (c) => {
      connects.push(c);
      return { api, namespace: c.namespace ?? 'fleet', server: 'https://127.0.0.1:6443' };
    },
    readStdin: () => o.stdin ?? '',
    clock: new FakeClock(FIXTURE_NOW),
    inventories:
      o.inventories ??
      (async () => {
        throw new Error('no inventory store in this test');
      }),
  };
  const code = await run(argv, deps);
  return { code, out: out.join(''), err: err.join(''), api, connects, sleeps };
}

const at = (phase: TelemetryRollout['status'] extends infer S ? (S extends { phase?: infer P } ? P : never) : never, rv: string): TelemetryRollout => {
  const ro = fixtureRollout({ ...gateFailureStatus(), phase });
  ro.metadata = { ...ro.metadata, resourceVersion: rv };
  return ro;
};

describe('get', () => {
  const ro = fixtureRollout(gateFailureStatus());

  it('prints the plain tree when piped, passing the global options to connect', async () => {
    const r = await cli(['get', 'collector-v2', '--kubeconfig', '/k', '--context', 'c1', '-n', 'fleet', '--request-timeout', '3']);
    expect(r).toMatchObject({ code: 0, err: '', out: renderRollout(ro, { color: false, now: FIXTURE_NOW }) });
    expect(r.connects).toEqual([{ kubeconfig: '/k', context: 'c1', namespace: 'fleet', requestTimeoutSeconds: 3 }]);
  });

  it('colours on a TTY unless NO_COLOR is set', async () => {
    const coloured = await cli(['get', 'collector-v2'], { isTTY: true });
    expect(coloured.out).toBe(renderRollout(ro, { color: true, now: FIXTURE_NOW }));
    expect(coloured.out).not.toBe(stripAnsi(coloured.out));
    const noColor = await cli(['get', 'collector-v2'], { isTTY: true, env: { NO_COLOR: '1' } });
    expect(noColor.out).toBe(renderRollout(ro, { color: false, now: FIXTURE_NOW }));
  });

  it('prints the object with -o json and -o yaml', async () => {
    const json = await cli(['-o', 'json', 'get', 'collector-v2']);
    expect(JSON.parse(json.out)).toEqual(ro);
    const yaml = await cli(['get', 'collector-v2', '-o', 'yaml']);
    expect(parse(yaml.out)).toEqual(ro);
  });

  it('hides metadata.managedFields in -o json|yaml unless --show-managed-fields, as kubectl does', async () => {
    const withFields = fixtureRollout(gateFailureStatus());
    (withFields.metadata as Record<string, unknown>).managedFields = [{ manager: 'kubectl-patch', operation: 'Update' }];
    const hidden = await cli(['get', 'collector-v2', '-o', 'json'], { api: new FakeApi([withFields]) });
    expect(JSON.parse(hidden.out)).toEqual(ro);
    const kept = await cli(['get', 'collector-v2', '-o', 'yaml', '--show-managed-fields'], { api: new FakeApi([withFields]) });
    expect(parse(kept.out)).toEqual(withFields);
    const listed = await cli(['list', '-o', 'json'], { api: new FakeApi([], [withFields]) });
    expect((JSON.parse(listed.out) as { items: unknown[] }).items).toEqual([ro]);
  });

  it('exits 3 with one line when the rollout does not exist', async () => {
    const r = await cli(['get', 'nope'], { api: new FakeApi([]) });
    expect(r).toMatchObject({ code: EXIT.notFound, out: '', err: 'error: telemetryrollout "nope" not found in namespace "fleet"\n' });
  });
});

describe('get --watch', () => {
  it('re-renders only new resourceVersions and, with --until-done, exits 0 on Succeeded', async () => {
    const api = new FakeApi([at('Progressing', '1'), at('Progressing', '1'), at('Succeeded', '3')]);
    const r = await cli(['get', 'collector-v2', '--watch', '--until-done'], { api });
    expect(r.code).toBe(0);
    expect(r.sleeps).toEqual([2000, 2000]);
    const trees = r.out.split('\n\n');
    expect(trees).toHaveLength(2);
    expect(trees[0]).toMatch(/^collector-v2 \(fleet\) {2}Progressing/);
    expect(trees[1]).toMatch(/^collector-v2 \(fleet\) {2}Succeeded/);
  });

  it('exits 1 when the rollout ends RolledBack, saying so on stderr', async () => {
    const r = await cli(['get', 'collector-v2', '--until-done', '--interval', '0.5'], { api: new FakeApi([at('RollingBack', '1'), at('RolledBack', '2')]) });
    expect(r).toMatchObject({ code: EXIT.failed, err: 'rollout collector-v2 ended RolledBack (GateFailed)\n', sleeps: [500] });
  });

  it('keeps polling through an unreachable management cluster once it has shown the rollout', async () => {
    const down = new CliError('get telemetryrollout "collector-v2" in namespace "fleet": cannot reach https://127.0.0.1:6443: ECONNREFUSED', EXIT.unreachable);
    const r = await cli(['get', 'collector-v2', '-w', '--until-done'], { api: new FakeApi([at('Progressing', '1'), down, down, at('Succeeded', '2')]) });
    expect(r.code).toBe(0);
    expect(r.err).toBe(`warning: ${down.message}; retrying every 2s\nreconnected\n`);
  });

  it('fails at once (exit 4) when the first poll cannot reach the cluster', async () => {
    const down = new CliError('cannot reach', EXIT.unreachable);
    const r = await cli(['get', 'collector-v2', '-w'], { api: new FakeApi([down]) });
    expect(r).toMatchObject({ code: EXIT.unreachable, sleeps: [] });
  });

  it('stops cleanly (exit 0) on Ctrl-C', async () => {
    const r = await cli(['get', 'collector-v2', '-w'], { onSleep: (n, abort) => n === 3 && abort() });
    expect(r).toMatchObject({ code: 0, sleeps: [2000, 2000, 2000] });
    expect(r.out.split('\n\n')).toHaveLength(1); // one version, rendered once
  });

  it('redraws the screen on a TTY, and streams objects with -o json', async () => {
    const tty = await cli(['get', 'collector-v2', '-w', '--until-done'], { isTTY: true, api: new FakeApi([at('Progressing', '1'), at('Succeeded', '2')]) });
    expect(tty.out.split('\x1b[H\x1b[2J')).toHaveLength(3);
    expect(stripAnsi(tty.out)).toContain('kubectl tro get collector-v2 --watch   2026-11-25T10:00:00.000Z   (Ctrl-C to stop)');
    const json = await cli(['get', 'collector-v2', '-w', '--until-done', '-o', 'json'], { api: new FakeApi([at('Progressing', '1'), at('Succeeded', '2')]) });
    const docs = json.out.split(/\n(?=\{)/).map((d) => JSON.parse(d) as TelemetryRollout);
    expect(docs.map((d) => d.status?.phase)).toEqual(['Progressing', 'Succeeded']);
  });
});

describe('list and history', () => {
  const items = [fixtureRollout(gateFailureStatus()), fixtureRollout({}, 'fresh', 'other')];

  it('lists a namespace or all of them', async () => {
    const one = await cli(['list'], { api: new FakeApi([], items) });
    expect(one.code).toBe(0);
    expect(one.out.split('\n')[0]).toMatch(/^NAME\s+PHASE\s+REASON\s+STAGE\s+PROGRESS\s+HEALTH\s+REVISION\s+AGE$/);
    expect(one.api.lists).toEqual(['fleet']);
    const all = await cli(['list', '-A', '-o', 'json'], { api: new FakeApi([], items) });
    expect(all.api.lists).toEqual([undefined]);
    expect(JSON.parse(all.out)).toEqual({ apiVersion: 'v1', kind: 'List', items });
    const none = await cli(['ls', '-n', 'empty']);
    expect(none).toMatchObject({ code: 0, out: '', err: 'No TelemetryRollouts found in namespace empty.\n' });
  });

  it('shows history as a table or JSON', async () => {
    const text = await cli(['history', 'collector-v2']);
    expect(text.out.trimEnd().split('\n')).toHaveLength(5);
    const json = await cli(['history', 'collector-v2', '-o', 'json']);
    expect(JSON.parse(json.out)).toEqual(gateFailureStatus().history);
    const empty = await cli(['history', 'fresh'], { api: new FakeApi([fixtureRollout({})]) });
    expect(empty).toMatchObject({ code: 0, out: '', err: 'No history recorded for fresh yet.\n' });
  });
});

describe('controls', () => {
  it('pauses and resumes with a merge patch of spec.paused', async () => {
    const pause = await cli(['pause', 'collector-v2']);
    expect(pause.api.patches).toEqual([{ namespace: 'fleet', name: 'collector-v2', patch: { spec: { paused: true } } }]);
    expect(pause.out).toBe(
      'telemetryrollout "collector-v2" in namespace "fleet": spec.paused set to true\nthe operator will: nothing now (phase is RollingBack); the rollout will not progress while spec.paused is true\n',
    );
    const resume = await cli(['resume', 'collector-v2', '-o', 'json']);
    expect(resume.api.patches[0]?.patch).toEqual({ spec: { paused: false } });
    expect((JSON.parse(resume.out) as TelemetryRollout).spec.paused).toBe(false);
  });

  it('sets a fresh annotation for abort (with the reason), retry and promote, and says what will happen', async () => {
    const id = '2026-11-25T10:00:00.000Z-iiiiii';
    const abort = await cli(['abort', 'collector-v2', '--reason', 'p99 regression']);
    expect(abort.api.patches[0]?.patch).toEqual({ metadata: { annotations: { 'telemetry.rollout.dev/abort': `${id} p99 regression` } } });
    expect(abort.out).toBe(
      `telemetryrollout "collector-v2" in namespace "fleet": abort requested (telemetry.rollout.dev/abort="${id} p99 regression")\nthe operator will: nothing new: the rollout is already rolling back\n`,
    );
    const retry = await cli(['retry', 'collector-v2']);
    expect(retry.api.patches[0]?.patch).toEqual({ metadata: { annotations: { 'telemetry.rollout.dev/retry': id } } });
    const promote = await cli(['promote', 'collector-v2', '-o', 'yaml']);
    expect((parse(promote.out) as TelemetryRollout).metadata?.annotations?.['telemetry.rollout.dev/promote']).toBe(id);
  });
});

describe('validate', () => {
  const good = JSON.stringify(validBase('good'));
  const badObj = validBase('bad');
  (badObj.spec as { collector: object }).collector = {};
  const bad = JSON.stringify(badObj);

  it('exits 0 when every rollout is valid and 1 otherwise, never touching the cluster', async () => {
    const ok = await cli(['validate', '-f', '-'], { stdin: good });
    expect(ok).toMatchObject({ code: 0, out: '-: doc 1 (good): valid\n', connects: [] });
    const ko = await cli(['validate', '-f', '-'], { stdin: `${good}\n---\n${bad}` });
    expect(ko.code).toBe(EXIT.failed);
    expect(ko.out).toContain('-: doc 2: spec.collector.image: Required value');
    const json = await cli(['validate', '-f', '-', '-o', 'json'], { stdin: bad });
    expect(json.code).toBe(EXIT.failed);
    expect((JSON.parse(json.out) as Array<{ result: string }>)[0]?.result).toBe('invalid');
  });

  it('exits 1 when there is no TelemetryRollout at all, 2 when the file is missing', async () => {
    const none = await cli(['validate', '-f', '-'], { stdin: 'apiVersion: v1\nkind: Namespace\nmetadata: { name: x }\n' });
    expect(none).toMatchObject({ code: EXIT.failed, err: 'error: no TelemetryRollout documents in -\n' });
    const missing = await cli(['validate', '-f', '/nonexistent/x.yaml']);
    expect(missing).toMatchObject({ code: EXIT.usage, err: 'error: /nonexistent/x.yaml: no such file or directory\n' });
  });
});

describe('usage, help and failures', () => {
  it.each([
    [['get']],
    [['get', 'x', '--bogus']],
    [['get', 'x', '-o', 'xml']],
    [['frobnicate']],
    [[]],
    [['get', 'x', '--request-timeout', '0']],
    [['validate']],
    [['inventory']],
  ])('%j is a usage error (exit 2) with a message on stderr', async (argv) => {
    const r = await cli(argv);
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).not.toBe('');
    expect(r.connects).toEqual([]);
  });

  it('prints help and the version with exit 0; help documents the exit codes', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toContain('Exit codes:\n  0  success');
    expect(help.out).toContain('  3  not found');
    expect((await cli(['--version'])).out).toMatch(/^\d+\.\d+\.\d+\n$/);
    expect((await cli(['help', 'get'])).out).toContain('--until-done');
  });

  it('prints one line for an unexpected error, and the stack only with TRO_DEBUG=1', async () => {
    const api = new FakeApi([]);
    api.get = async () => {
      throw new Error('kaput\nmore detail');
    };
    const quiet = await cli(['get', 'x'], { api });
    expect(quiet).toMatchObject({ code: EXIT.failed, err: 'error: kaput\n' });
    const debug = await cli(['get', 'x'], { api, env: { TRO_DEBUG: '1' } });
    expect(debug.err).toMatch(/^error: kaput\nError: kaput\nmore detail\n\s+at /);
  });
});

describe('inventory export', () => {
  const inventory: NodeInventory = {
    cluster: 'prod-east-1',
    capturedAt: '2026-11-25T09:00:00.000Z',
    nodes: [{ name: 'n1', labels: { 'telemetry.rollout.dev/revision': 'abc' }, addresses: [{ type: 'InternalIP', address: '10.0.0.1' }], ready: true }],
  };
  const withStore = async () => {
    const store = new MemoryInventoryStore();
    await store.save(inventory);
    const asked: Array<{ o: ConnectOptions; namespace: string }> = [];
    const inventories: CliDeps['inventories'] = async (o, namespace) => {
      asked.push({ o, namespace });
      return { store, server: 'https://127.0.0.1:6443' };
    };
    return { inventories, asked };
  };

  it('prints the inventory document (YAML, or JSON with -o json) from the operator namespace by default', async () => {
    const { inventories, asked } = await withStore();
    const yaml = await cli(['inventory', 'export', 'prod-east-1', '--kubeconfig', '/k'], { inventories });
    expect(yaml.code).toBe(0);
    expect(parse(yaml.out)).toEqual({ apiVersion: 'telemetry.rollout.dev/v1alpha1', kind: 'NodeInventory', ...inventory });
    expect(asked).toEqual([{ o: { kubeconfig: '/k', requestTimeoutSeconds: 10 }, namespace: 'telemetry-rollout-system' }]);
    const json = await cli(['inventory', 'export', 'prod-east-1', '-o', 'json', '--inventory-namespace', 'ops'], { inventories });
    expect((JSON.parse(json.out) as NodeInventory).nodes).toEqual(inventory.nodes);
    expect(asked[1]?.namespace).toBe('ops');
  });

  it('exits 3 when no inventory is stored, and classifies store failures', async () => {
    const { inventories } = await withStore();
    const missing = await cli(['inventory', 'export', 'prod-west-1'], { inventories });
    expect(missing).toMatchObject({
      code: EXIT.notFound,
      err: 'error: no node inventory of cluster prod-west-1 in namespace telemetry-rollout-system (the operator records it while the cluster is healthy)\n',
    });
    const forbidden: CliDeps['inventories'] = async () => ({
      store: {
        load: async () =>
          Promise.reject(Object.assign(new Error('HTTP-Code: 403'), { code: 403, body: { kind: 'Status', message: 'configmaps is forbidden' } })),
      },
      server: 'https://127.0.0.1:6443',
    });
    const denied = await cli(['inventory', 'export', 'prod-east-1'], { inventories: forbidden });
    expect(denied).toMatchObject({
      code: EXIT.forbidden,
      err: 'error: read the node inventory of cluster prod-east-1 in namespace telemetry-rollout-system: configmaps is forbidden\n',
    });
  });
});

describe('break-glass status (offline, through the program)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tro-cli-bgs-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const inventory = join(dir, 'inv.json');
  writeFileSync(
    inventory,
    JSON.stringify({
      cluster: 'prod-east-1',
      capturedAt: '2026-11-25T09:00:00.000Z',
      nodes: [{ name: 'n1', labels: { 'telemetry.rollout.dev/revision': 'abc' }, addresses: [{ type: 'InternalIP', address: '10.0.0.1' }], ready: true }],
    }),
  );
  const root = join(dir, 'roots');

  it('is a subcommand of break-glass: its own options, a table, -o json; break-glass itself still takes a cluster', async () => {
    const issued = await cli(['break-glass', 'prod-east-1', '--inventory', inventory, '--local-root', root, '--revision', '*', '--reason', 'by hand']);
    expect(issued).toMatchObject({ code: 0, err: '' });
    expect(issued.out).toBe('cluster prod-east-1: stop file manual-all for revision * written to 1/1 nodes via local\n');
    const table = await cli(['break-glass', 'status', 'fleet/agent', '--cluster', 'prod-east-1', '--inventory', inventory, '--local-root', root]);
    expect(table).toMatchObject({ code: 0, err: '' });
    expect(table.out.split('\n').slice(1, 3)).toEqual([
      'NODE   FILE         ISSUER   REVISION   ISSUED                     ROLLOUT                   REASON',
      'n1     manual-all   manual   *          2026-11-25T10:00:00.000Z   kubectl-tro/break-glass   by hand',
    ]);
    const json = await cli(['break-glass', 'status', 'fleet/agent', '--cluster', 'prod-east-1', '--inventory', inventory, '--local-root', root, '-o', 'json']);
    expect(JSON.parse(json.out)).toMatchObject({
      rollout: 'fleet/agent',
      cluster: 'prod-east-1',
      nodesWithStops: 1,
      nodes: [{ node: 'n1', result: 'ok', files: [{ name: 'manual-all', issuer: 'manual', revision: '*', reason: 'by hand' }] }],
    });
  });

  it('a missing --cluster is a usage error (exit 2)', async () => {
    const r = await cli(['break-glass', 'status', 'fleet/agent', '--inventory', inventory, '--local-root', root]);
    expect(r).toMatchObject({ code: EXIT.usage, err: 'error: break-glass status needs --cluster NAME (the target cluster of the inventory)\n' });
  });
});
