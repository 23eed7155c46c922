// The operator's break-glass actuator: the fan-out runs outside the caller (issue returns at once),
// attempts go only to nodes not yet confirmed, the file keeps its first issuedAt, failing nodes are
// named (at most 20), and nodes that leave the inventory stop counting.
import { describe, expect, it } from '@jest/globals';
import type { TelemetryRollout } from '../api/types.generated.js';
import { SystemClock } from '#core/clock.js';
import { REVISION_LABEL, type NodeInfo } from '../rollout/interfaces.js';
import { MemoryInventoryStore } from '../../../testkit/operator/breakglass/inventory.js';
import { ScriptedTransport } from '../../../testkit/operator/breakglass/transport.js';
import { MAX_FAILING_NODES, TransportBreakGlass } from './actuator.js';
import { ConfigMapStopLedger } from './stopledger.js';
import { FakeConfigMaps } from '../../../testkit/operator/breakglass/configmaps.js';
import { parseStopFile } from './stopfile.js';

const REV = 'abcdef0123';
const rollout = { metadata: { name: 'r', namespace: 'default' }, spec: { breakGlass: { transport: { type: 'exec' } } } } as unknown as TelemetryRollout;
const node = (name: string, labels: Record<string, string> = { [REVISION_LABEL]: REV }, runs?: string[]): NodeInfo => ({
  name,
  labels,
  addresses: [{ type: 'InternalIP', address: '10.0.0.1' }],
  ready: true,
  ...(runs ? { runs } : {}),
});

function rig(nodes: NodeInfo[]) {
  const store = new MemoryInventoryStore();
  const transport = new ScriptedTransport();
  const ledger = new ConfigMapStopLedger({ api: new FakeConfigMaps(), namespace: 'default' });
  const bg = new TransportBreakGlass(
    { inventory: () => store, secrets: () => ({ readSecretKey: async () => '' }), ledger: () => ledger },
    new SystemClock(),
    undefined,
    async () => transport,
  );
  return { store, transport, bg, ledger, ready: bg.record(rollout, 'c1', nodes) };
}

describe('TransportBreakGlass', () => {
  it('returns at once while the nodes are written, then reports the outcome', async () => {
    const r = rig([node('n1'), node('n2'), node('n3', {})]);
    await r.ready;
    r.transport.hanging.add('n2');
    const first = await r.bg.issue(rollout, 'c1', REV, 'unreachable');
    expect(first.inProgress).toBe(true);
    // n1 is written while n2 hangs; nothing is reported as done before the attempt ends.
    const during = await r.bg.issue(rollout, 'c1', REV, 'unreachable');
    expect(during).toMatchObject({ inProgress: true });
    r.transport.release();
    await r.bg.settled();
    const done = await r.bg.issue(rollout, 'c1', REV, 'unreachable');
    expect(done).toMatchObject({ nodesTargeted: 2, nodesStopped: 2, nodesPending: 0, nodesFailed: 0 });
    expect(done.inProgress).toBeUndefined();
    expect([...r.transport.files.keys()].sort()).toEqual(['n1', 'n2']);
  });

  it('sends again only to the nodes that did not confirm, with the same file', async () => {
    const r = rig([node('n1'), node('n2'), node('n3')]);
    await r.ready;
    r.transport.failing.add('n3');
    await r.bg.issue(rollout, 'c1', REV, 'unreachable');
    await r.bg.settled();
    const failed = await r.bg.issue(rollout, 'c1', REV, 'unreachable');
    expect(failed).toMatchObject({ nodesTargeted: 3, nodesStopped: 2, nodesFailed: 1, nodesPending: 1 });
    expect(failed.failingNodes).toEqual([{ node: 'n3', message: expect.stringContaining('Permission denied') }]);
    r.transport.failing.clear();
    await r.bg.issue(rollout, 'c1', REV, 'unreachable');
    await r.bg.settled();
    const ok = await r.bg.issue(rollout, 'c1', REV, 'unreachable');
    expect(ok).toMatchObject({ nodesStopped: 3, nodesPending: 0, nodesFailed: 0 });
    expect(ok.failingNodes).toBeUndefined();
    expect(r.transport.writes.map(([n, file]) => [n, file])).toEqual([
      ['n1', `auto-${REV}`],
      ['n2', `auto-${REV}`],
      ['n3', `auto-${REV}`],
    ]);
    const issued = new Set(r.transport.writes.map(([, , content]) => parseStopFile(content).issuedAt));
    expect(issued.size).toBe(1);
  });

  it('keeps the issuedAt it is given (a restart resumes the same stop)', async () => {
    const r = rig([node('n1')]);
    await r.ready;
    await r.bg.issue(rollout, 'c1', REV, 'unreachable', { issuedAt: '2026-01-02T03:04:05.000Z' });
    await r.bg.settled();
    expect(parseStopFile(r.transport.dirs.get('n1')?.get(`auto-${REV}`) ?? '').issuedAt).toBe('2026-01-02T03:04:05.000Z');
  });

  it(`names at most ${MAX_FAILING_NODES} failing nodes and counts the rest`, async () => {
    const nodes = Array.from({ length: 30 }, (_, i) => node(`n${String(i).padStart(2, '0')}`));
    const r = rig(nodes);
    await r.ready;
    for (const n of nodes) r.transport.failing.add(n.name);
    await r.bg.issue(rollout, 'c1', REV, 'unreachable');
    await r.bg.settled();
    const res = await r.bg.issue(rollout, 'c1', REV, 'unreachable');
    expect(res.nodesFailed).toBe(30);
    expect(res.failingNodes).toHaveLength(MAX_FAILING_NODES);
  });

  it('stops the node where a pod of the revision runs, whatever its label (the watcher)', async () => {
    const r = rig([node('n1'), node('watcher-node', {}, [REV]), node('other', {}, ['zzzzzz9999'])]);
    await r.ready;
    await r.bg.issue(rollout, 'c1', REV, 'unreachable');
    await r.bg.settled();
    expect([...r.transport.files.keys()].sort()).toEqual(['n1', 'watcher-node']);
  });

  it('a node that leaves the inventory stops counting; record says which nodes left', async () => {
    const r = rig([node('n1'), node('gone')]);
    await r.ready;
    r.transport.failing.add('gone');
    await r.bg.issue(rollout, 'c1', REV, 'unreachable');
    await r.bg.settled();
    expect(await r.bg.issue(rollout, 'c1', REV, 'unreachable')).toMatchObject({ nodesPending: 1 });
    expect(await r.bg.record(rollout, 'c1', [node('n1')])).toEqual({ removed: ['gone'] });
    await r.bg.issue(rollout, 'c1', REV, 'unreachable');
    await r.bg.settled();
    expect(await r.bg.issue(rollout, 'c1', REV, 'unreachable')).toMatchObject({ nodesTargeted: 1, nodesStopped: 1, nodesPending: 0 });
  });

  it('does not clear while an attempt is still writing', async () => {
    const r = rig([node('n1')]);
    await r.ready;
    r.transport.hanging.add('n1');
    await r.bg.issue(rollout, 'c1', REV, 'unreachable');
    expect(await r.bg.clear(rollout, 'c1', REV)).toMatchObject({ ok: false, inProgress: true, message: expect.stringContaining('still under way') });
    r.transport.release();
    await r.bg.settled();
    // The clear runs in the background too: started, then its outcome on the next call.
    expect(await r.bg.clear(rollout, 'c1', REV)).toMatchObject({ ok: false, inProgress: true });
    await r.bg.settled();
    expect(await r.bg.clear(rollout, 'c1', REV)).toMatchObject({ ok: true });
    expect(r.transport.files.size).toBe(0);
  });

  it('close cancels attempts under way', async () => {
    const r = rig([node('n1')]);
    await r.ready;
    r.transport.hanging.add('n1');
    await r.bg.issue(rollout, 'c1', REV, 'unreachable');
    await r.bg.close();
    const res = await r.bg.issue(rollout, 'c1', REV, 'unreachable');
    expect(res).toMatchObject({ nodesStopped: 0, nodesPending: expect.any(Number) });
    expect(res.inProgress).toBeUndefined();
    expect(r.transport.files.size).toBe(0);
  });

  it('has nothing to check before it is needed unless the transport is ssh', async () => {
    const r = rig([node('n1')]);
    await r.ready;
    expect(await r.bg.check(rollout, 'c1')).toBeUndefined();
    const ssh = { ...rollout, spec: { breakGlass: { transport: { type: 'ssh' } } } } as unknown as TelemetryRollout;
    // ssh with no inventory: the check fails and says why (it never passes by default).
    expect(await r.bg.check(ssh, 'unknown-cluster')).toEqual({ ok: false, message: expect.stringContaining('no node inventory of unknown-cluster') });
  });

  it('the stop ledger holds a stop from its first attempt until it is cleared', async () => {
    const r = rig([node('n1')]);
    await r.ready;
    await r.bg.issue(rollout, 'c1', REV, 'unreachable', { issuedAt: '2026-01-02T03:04:05.000Z' });
    await r.bg.settled();
    expect(await r.bg.owed(rollout, 'c1')).toEqual([REV]);
    expect(await r.ledger.owed('default/r', 'c1')).toEqual({ [REV]: '2026-01-02T03:04:05.000Z' });
    // A new process (a restart) still knows what is owed.
    const again = new TransportBreakGlass(
      { inventory: () => r.store, secrets: () => ({ readSecretKey: async () => '' }), ledger: () => r.ledger },
      new SystemClock(),
      undefined,
      async () => r.transport,
    );
    expect(await again.owed(rollout, 'c1')).toEqual([REV]);
    await again.clear(rollout, 'c1', REV);
    await again.settled();
    expect(await again.clear(rollout, 'c1', REV)).toMatchObject({ ok: true });
    expect(await r.bg.owed(rollout, 'c1')).toEqual([]);
  });

  it('a clear goes again only to the nodes not cleared yet, and a NotReady node does not hold it', async () => {
    const r = rig([node('n1'), node('n2'), node('n3')]);
    await r.ready;
    await r.bg.issue(rollout, 'c1', REV, 'unreachable');
    await r.bg.settled();
    await r.bg.issue(rollout, 'c1', REV, 'unreachable');
    r.transport.failing.add('n2');
    r.transport.failing.add('n3');
    const clear = async (notReady: string[] = []) => {
      await r.bg.clear(rollout, 'c1', REV, { notReady });
      await r.bg.settled();
      return r.bg.clear(rollout, 'c1', REV, { notReady });
    };
    const first = await clear();
    expect(first).toMatchObject({ ok: false, message: expect.stringContaining('cleared on 1/3 nodes') });
    expect(first.message).toContain('n2');
    // n2 comes back; n3 is NotReady (its node is down): the clear completes, naming what it left.
    r.transport.failing.delete('n2');
    const second = await clear(['n3']);
    expect(second).toMatchObject({ ok: true, message: expect.stringContaining('left on 1 NotReady nodes') });
    expect(second.message).toContain('n3');
    expect([...r.transport.files.keys()]).toEqual(['n3']);
    expect(await r.bg.owed(rollout, 'c1')).toEqual([]);
  });
});
