import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REVISION_LABEL, type NodeInfo } from '../rollout/interfaces.js';
import { FakeClock } from '../../../testkit/core/fakeclock.js';
import {
  clusterKey,
  decodeInventory,
  encodeInventory,
  exportInventory,
  InventoryFormatError,
  inventoryHash,
  loadInventoryFile,
  makeInventory,
  type NodeInventory,
} from './inventory.js';
import { MemoryInventoryStore } from '../../../testkit/operator/breakglass/inventory.js';
import { ConfigMapInventoryStore, INVENTORY_CLUSTER_LABEL } from './configmapstore.js';
import { FakeConfigMaps } from '../../../testkit/operator/breakglass/configmaps.js';

/** Nodes shaped like a real cloud cluster's (the labels nodecache keeps, two addresses each). */
function fleetNodes(n: number, revisionEvery = 4): NodeInfo[] {
  return Array.from({ length: n }, (_, i) => {
    const name = `ip-10-${(i >> 16) & 255}-${(i >> 8) & 255}-${i & 255}.eu-west-1.compute.internal`;
    const labels: Record<string, string> = {
      'kubernetes.io/hostname': name,
      'topology.kubernetes.io/zone': `eu-west-1${'abc'[i % 3]}`,
      'node.kubernetes.io/instance-type': ['m6i.2xlarge', 'c6i.4xlarge', 'r6i.xlarge'][i % 3]!,
    };
    if (i % revisionEvery === 0) labels[REVISION_LABEL] = 'a1b2c3d4e5';
    return {
      name,
      labels,
      addresses: [
        { type: 'InternalIP', address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` },
        { type: 'Hostname', address: name },
      ],
      ready: i % 17 !== 0,
    };
  });
}

const clock = new FakeClock(Date.parse('2026-11-25T10:00:00Z'));

describe('inventory values', () => {
  test('makeInventory sorts by name, copies, and stamps capturedAt from the clock', () => {
    const nodes = fleetNodes(3).reverse();
    const inv = makeInventory('prod-east-1', nodes, clock);
    expect(inv.capturedAt).toBe('2026-11-25T10:00:00.000Z');
    expect(inv.nodes.map((n) => n.name)).toEqual([...nodes.map((n) => n.name)].sort());
    nodes[0]!.labels.x = 'mutated';
    expect(inv.nodes.some((n) => n.labels.x !== undefined)).toBe(false);
  });

  test('the hash ignores capturedAt, node order and readiness, and sees names, labels, addresses and the cluster', () => {
    const inv = makeInventory('c1', fleetNodes(20), clock);
    const h = inventoryHash(inv);
    const later: NodeInventory = { ...inv, capturedAt: '2030-01-01T00:00:00.000Z' };
    expect(inventoryHash(later)).toBe(h);
    expect(inventoryHash({ cluster: 'c1', nodes: [...inv.nodes].reverse() })).toBe(h);
    expect(inventoryHash({ cluster: 'c1', nodes: inv.nodes.map((n) => ({ ...n, ready: !n.ready })) })).toBe(h);
    const relabelled = structuredClone(inv.nodes);
    relabelled[3]!.labels[REVISION_LABEL] = 'ffffffffff';
    expect(inventoryHash({ cluster: 'c1', nodes: relabelled })).not.toBe(h);
    const readdressed = structuredClone(inv.nodes);
    readdressed[0]!.addresses[0]!.address = '192.0.2.1';
    expect(inventoryHash({ cluster: 'c1', nodes: readdressed })).not.toBe(h);
    expect(inventoryHash({ cluster: 'c2', nodes: inv.nodes })).not.toBe(h);
  });

  test('encode/decode round-trips; corrupt bytes are a format error', () => {
    const inv = makeInventory('c1', fleetNodes(50), clock);
    expect(decodeInventory(encodeInventory(inv), 'test')).toEqual(inv);
    expect(() => decodeInventory(Buffer.from('not gzip'), 'test')).toThrow(InventoryFormatError);
  });

  test('cluster keys are valid names and label values, distinct for distinct clusters', () => {
    expect(clusterKey('prod-east-1')).toBe('prod-east-1');
    const odd = ['Prod_East.1', 'prod_east.1', 'x'.repeat(200), '!!!'];
    const keys = odd.map(clusterKey);
    for (const k of keys) expect(k).toMatch(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
    expect(new Set(keys).size).toBe(odd.length);
  });
});

describe('MemoryInventoryStore', () => {
  test('writes only when the content changed', async () => {
    const store = new MemoryInventoryStore();
    const inv = makeInventory('c1', fleetNodes(10), clock);
    expect(await store.save(inv)).toMatchObject({ written: true });
    for (let i = 0; i < 5; i++)
      expect(await store.save({ ...inv, capturedAt: new Date(Date.UTC(2026, 10, 25, 11, i)).toISOString() })).toMatchObject({ written: false });
    expect(store.writes).toBe(1);
    expect(await store.load('c1')).toEqual(inv);
    expect(await store.load('nope')).toBeUndefined();
  });
});

describe('ConfigMapInventoryStore', () => {
  test('save then load round-trips through one ConfigMap named tro-inventory-<cluster>, gzip in binaryData', async () => {
    const api = new FakeConfigMaps();
    const store = new ConfigMapInventoryStore({ api, namespace: 'tro-system' });
    const inv = makeInventory('prod-east-1', fleetNodes(200), clock);
    const saved = await store.save(inv);
    expect(saved).toMatchObject({ written: true, objects: 1, hash: inventoryHash(inv) });
    expect([...api.objects.keys()]).toEqual(['tro-inventory-prod-east-1']);
    const cm = api.objects.get('tro-inventory-prod-east-1')!;
    expect(cm.data).toMatchObject({ cluster: 'prod-east-1', capturedAt: inv.capturedAt, nodes: '200', chunks: '' });
    expect(cm.metadata?.labels?.[INVENTORY_CLUSTER_LABEL]).toBe('prod-east-1');
    expect(Object.keys(cm.binaryData ?? {})).toEqual(['inventory.json.gz']);
    // A fresh store (an operator restart) reads it back.
    expect(await new ConfigMapInventoryStore({ api, namespace: 'tro-system' }).load('prod-east-1')).toEqual(inv);
    expect(await store.load('other')).toBeUndefined();
  });

  test('steady state makes no writes and, once known, no calls at all; after a restart one GET', async () => {
    const api = new FakeConfigMaps();
    const store = new ConfigMapInventoryStore({ api, namespace: 'ns' });
    const nodes = fleetNodes(100);
    await store.save(makeInventory('c1', nodes, clock));
    const afterFirst = { ...api.calls };
    for (let i = 0; i < 50; i++) {
      await clock.advance(60_000);
      // Readiness flapping and a new capture time are not changes worth a write.
      const again = makeInventory(
        'c1',
        nodes.map((n) => ({ ...n, ready: i % 2 === 0 })),
        clock,
      );
      expect(await store.save(again)).toMatchObject({ written: false });
    }
    expect(api.calls).toEqual(afterFirst);

    const restarted = new ConfigMapInventoryStore({ api, namespace: 'ns' });
    expect(await restarted.save(makeInventory('c1', nodes, clock))).toMatchObject({ written: false });
    expect(api.calls).toEqual({ ...afterFirst, get: afterFirst.get + 1 });
  });

  test('a change (a node relabelled to the new revision) is written, with optimistic concurrency on the head', async () => {
    const api = new FakeConfigMaps();
    const store = new ConfigMapInventoryStore({ api, namespace: 'ns' });
    const nodes = fleetNodes(10);
    await store.save(makeInventory('c1', nodes, clock));
    const changed = structuredClone(nodes);
    changed[1]!.labels[REVISION_LABEL] = 'ffffffffff';
    const writesBefore = api.writes();
    expect(await store.save(makeInventory('c1', changed, clock))).toMatchObject({ written: true });
    expect(api.writes()).toBe(writesBefore + 1);
    expect((await store.load('c1'))?.nodes.find((n) => n.name === changed[1]!.name)?.labels[REVISION_LABEL]).toBe('ffffffffff');

    // Another writer (an old leader, the CLI) replaces the head between this store's GET and its
    // replace: the replace carries the stale resourceVersion and fails loudly instead of overwriting.
    const other = new ConfigMapInventoryStore({ api, namespace: 'ns' });
    const stale = new ConfigMapInventoryStore({ api, namespace: 'ns' });
    api.afterGet = async () => {
      api.afterGet = undefined;
      await other.save(makeInventory('c1', fleetNodes(11), clock));
    };
    await expect(stale.save(makeInventory('c1', fleetNodes(12), clock))).rejects.toThrow(
      /save inventory of cluster c1 .*replace ConfigMap ns\/tro-inventory-c1/,
    );
    expect((await stale.load('c1'))?.nodes).toHaveLength(11);
    // Its next attempt (the reconciler retries) reads the new head and succeeds.
    expect(await stale.save(makeInventory('c1', fleetNodes(12), clock))).toMatchObject({ written: true });
    expect((await other.load('c1'))?.nodes).toHaveLength(12);
  });

  test('5000 nodes fit one ConfigMap with the default chunk size; small chunks split it into immutable chunk ConfigMaps', async () => {
    const inv = makeInventory('big', fleetNodes(5000), clock);
    const json = Buffer.byteLength(JSON.stringify(inv));
    const api = new FakeConfigMaps();
    const saved = await new ConfigMapInventoryStore({ api, namespace: 'ns' }).save(inv);
    expect(saved.objects).toBe(1);
    expect(saved.bytes).toBeLessThan(512 * 1024);
    expect(json).toBeGreaterThan(1024 * 1024);

    const chunkedApi = new FakeConfigMaps();
    const chunked = new ConfigMapInventoryStore({ api: chunkedApi, namespace: 'ns', chunkBytes: 16 * 1024 });
    const r = await chunked.save(inv);
    expect(r.objects).toBe(Math.ceil(r.bytes! / (16 * 1024)));
    expect(r.objects).toBeGreaterThan(2);
    const chunks = [...chunkedApi.objects.values()].filter((cm) => cm.metadata?.name !== 'tro-inventory-big');
    expect(chunks.every((cm) => cm.immutable === true)).toBe(true);
    expect(await new ConfigMapInventoryStore({ api: chunkedApi, namespace: 'ns', chunkBytes: 16 * 1024 }).load('big')).toEqual(inv);

    // A change writes new chunks and removes the old ones.
    const changed = makeInventory('big', fleetNodes(5000, 2), clock);
    const r2 = await chunked.save(changed);
    expect(r2.cleanupError).toBeUndefined();
    expect(chunkedApi.objects.size).toBe(r2.objects);
    expect(await chunked.load('big')).toEqual(changed);
  });

  test('a load racing a save that replaces the chunks rereads the head once and returns the new inventory', async () => {
    const api = new FakeConfigMaps();
    const writer = new ConfigMapInventoryStore({ api, namespace: 'ns', chunkBytes: 4 * 1024 });
    const reader = new ConfigMapInventoryStore({ api, namespace: 'ns', chunkBytes: 4 * 1024 });
    const first = makeInventory('c1', fleetNodes(600), clock);
    const second = makeInventory('c1', fleetNodes(600, 3), clock);
    await writer.save(first);
    let raced = false;
    api.beforeGet = async (name) => {
      // The reader has the old head and now asks for its first chunk: the writer replaces everything.
      if (!raced && name !== 'tro-inventory-c1') {
        raced = true;
        await writer.save(second);
      }
    };
    expect(await reader.load('c1')).toEqual(second);
    expect(raced).toBe(true);
  });

  test('a head that belongs to another cluster (a key collision or a hand edit) is an error, not silently overwritten', async () => {
    const api = new FakeConfigMaps();
    const store = new ConfigMapInventoryStore({ api, namespace: 'ns' });
    await store.save(makeInventory('c1', fleetNodes(3), clock));
    api.objects.get('tro-inventory-c1')!.data!.cluster = 'someone-else';
    await expect(new ConfigMapInventoryStore({ api, namespace: 'ns' }).save(makeInventory('c1', fleetNodes(4), clock))).rejects.toThrow(/another cluster/);
    await expect(store.load('c1')).rejects.toThrow(/load inventory of cluster c1/);
  });

  test('delete removes the head and every chunk; deleting an absent inventory is fine', async () => {
    const api = new FakeConfigMaps();
    const store = new ConfigMapInventoryStore({ api, namespace: 'ns', chunkBytes: 4 * 1024 });
    await store.save(makeInventory('c1', fleetNodes(600), clock));
    await store.save(makeInventory('c2', fleetNodes(5), clock));
    await store.delete('c1');
    expect([...api.objects.keys()]).toEqual(['tro-inventory-c2']);
    await store.delete('c1');
    expect(await store.load('c1')).toBeUndefined();
  });
});

describe('inventory files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tro-inv-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test.each(['inventory.json', 'inventory.yaml'])('export and load round-trip (%s)', async (file) => {
    const inv = makeInventory('prod-east-1', fleetNodes(30), clock);
    const path = join(dir, file);
    await exportInventory(inv, path);
    const text = await readFile(path, 'utf8');
    expect(text).toContain(file.endsWith('.json') ? '"kind": "NodeInventory"' : 'kind: NodeInventory');
    expect(await loadInventoryFile(path)).toEqual(inv);
  });

  test('a hand-written YAML inventory with defaults (no labels, no ready) is accepted', async () => {
    const path = join(dir, 'hand.yaml');
    await writeFile(path, 'cluster: c1\ncapturedAt: 2026-11-25T10:00:00Z\nnodes:\n  - name: n1\n    addresses: [{ type: InternalIP, address: 10.0.0.1 }]\n');
    expect(await loadInventoryFile(path)).toEqual({
      cluster: 'c1',
      capturedAt: '2026-11-25T10:00:00.000Z',
      nodes: [{ name: 'n1', labels: {}, addresses: [{ type: 'InternalIP', address: '10.0.0.1' }], ready: false }],
    });
  });

  test.each([
    ['no cluster', 'capturedAt: 2026-11-25T10:00:00Z\nnodes: []\n', /"cluster"/],
    ['bad time', 'cluster: c\ncapturedAt: soon\nnodes: []\n', /"capturedAt"/],
    ['nodes not a list', 'cluster: c\ncapturedAt: 2026-11-25T10:00:00Z\nnodes: {}\n', /"nodes"/],
    ['duplicate node', 'cluster: c\ncapturedAt: 2026-11-25T10:00:00Z\nnodes: [{name: a}, {name: a}]\n', /duplicate node a/],
    ['wrong kind', 'kind: Pod\ncluster: c\ncapturedAt: 2026-11-25T10:00:00Z\nnodes: []\n', /kind must be NodeInventory/],
    ['not YAML', 'cluster: [unclosed\n', /not JSON or YAML/],
  ])('rejects %s with a message naming the file', async (_name, text, why) => {
    const path = join(dir, 'bad.yaml');
    await writeFile(path, text);
    await expect(loadInventoryFile(path)).rejects.toThrow(why);
    await expect(loadInventoryFile(path)).rejects.toThrow(path);
  });

  test('a missing file says so', async () => {
    await expect(loadInventoryFile(join(dir, 'missing.json'))).rejects.toThrow(/ENOENT/);
  });
});
