// The informer over client-node's real ListWatch against the management cluster's kube-apiserver: it
// syncs, follows adds/updates/deletes made with kubectl, honours a label selector, relists on resync,
// stops without the AbortError turning into a warning, and keeps following changes after the API server
// restarts under it.
import { afterEach, describe, expect, it } from '@jest/globals';
import type { V1Secret } from '@kubernetes/client-node';
import { Informer } from '../operator/src/controller/informer.js';
import { secretSource } from '../operator/src/controller/informersources.js';
import type { InformerEvent, InformerOptions } from '../operator/src/controller/informer.js';
import { SystemClock } from '#core/clock.js';
import { memoryLogger, type LogEntry } from '../testkit/operator/util/logging.js';
import { createNamespace, deleteNamespace, dumpOnFailure, eventually, kubectl, managementCluster } from './controlplane/testing.js';

const SECRET_VALUE = 'c2VjcmV0LXZhbHVlLTEyMw';

describe('informer on a real kube-apiserver', () => {
  const running: Array<Informer<V1Secret>> = [];
  const logs: LogEntry[][] = [];
  let ns = '';

  function informer(opts: Partial<InformerOptions<V1Secret>> & { labelSelector?: string } = {}) {
    const { logger, entries } = memoryLogger('debug');
    const events: Array<Pick<InformerEvent<V1Secret>, 'type' | 'key'>> = [];
    const inf = new Informer<V1Secret>({
      name: 'secrets',
      newSource: secretSource(managementCluster().kubeConfig(), { namespace: ns, labelSelector: opts.labelSelector }),
      clock: new SystemClock(),
      logger,
      ...opts,
    });
    inf.addHandler((e) => events.push({ type: e.type, key: e.key }));
    running.push(inf);
    logs.push(entries);
    return { inf, events, entries };
  }

  const secret = (name: string, ...extra: string[]): Promise<string> =>
    kubectl(managementCluster(), ['create', 'secret', 'generic', name, '-n', ns, `--from-literal=token=${SECRET_VALUE}`, ...extra]);

  /** Prints the informers' logs when the test body fails, then rethrows. */
  const withLogs = (fn: () => Promise<void>) => async (): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      for (const entries of logs) process.stderr.write(`===== informer log\n${entries.map((e) => JSON.stringify(e)).join('\n')}\n`);
      throw err;
    }
  };

  afterEach(async () => {
    for (const inf of running.splice(0)) await inf.stop();
    logs.length = 0;
    if (ns !== '') await deleteNamespace(managementCluster(), ns);
  });

  it(
    'syncs, follows kubectl changes, honours a label selector, resyncs, and stops quietly',
    dumpOnFailure(
      withLogs(async () => {
        ns = await createNamespace(managementCluster(), 'inf');
        await secret('s1', '--type=Opaque');
        const all = informer({ resyncSeconds: 3, watchdogSeconds: 120 });
        const labelled = informer({ labelSelector: 'tro-test=yes', resyncSeconds: 0 });
        all.inf.start();
        labelled.inf.start();
        await all.inf.waitForSync();
        await labelled.inf.waitForSync();
        expect(all.inf.get(`${ns}/s1`)?.metadata?.name).toBe('s1');
        expect(labelled.inf.list()).toEqual([]);

        await secret('s2');
        await eventually('add s2', () => all.events.some((e) => e.type === 'add' && e.key === `${ns}/s2`), 30_000, 100);
        await kubectl(managementCluster(), ['label', 'secret', 's1', '-n', ns, 'tro-test=yes']);
        await eventually('update s1', () => all.events.some((e) => e.type === 'update' && e.key === `${ns}/s1`), 30_000, 100);
        await eventually('labelled s1', () => labelled.inf.get(`${ns}/s1`) !== undefined, 30_000, 100);
        expect(labelled.inf.get(`${ns}/s2`)).toBeUndefined();
        await kubectl(managementCluster(), ['delete', 'secret', 's2', '-n', ns]);
        await eventually('delete s2', () => all.events.some((e) => e.type === 'delete' && e.key === `${ns}/s2`), 30_000, 100);
        expect(all.inf.get(`${ns}/s2`)).toBeUndefined();

        // The periodic relist re-reports what is cached.
        await eventually('resync s1', () => all.events.some((e) => e.type === 'resync' && e.key === `${ns}/s1`), 30_000, 100);
        expect(all.inf.restarts()).toBeGreaterThanOrEqual(1);

        await all.inf.stop();
        await labelled.inf.stop();
        const entries = [...all.entries, ...labelled.entries];
        expect(entries.filter((e) => e.level === 'warn' || e.level === 'error')).toEqual([]);
        // The informer logs keys and counts, never Secret content.
        expect(JSON.stringify(entries)).not.toContain(SECRET_VALUE);
      }),
    ),
    120_000,
  );

  it(
    'keeps following changes after the API server restarts',
    dumpOnFailure(
      withLogs(async () => {
        ns = await createNamespace(managementCluster(), 'inf');
        const { inf, events } = informer({ watchdogSeconds: 60, resyncSeconds: 0 });
        inf.start();
        await inf.waitForSync();

        await managementCluster().restartApiServer();
        await secret('after-restart');
        await eventually('add after-restart', () => events.some((e) => e.key === `${ns}/after-restart`), 90_000, 200);
        expect(inf.hasSynced()).toBe(true);
      }),
    ),
    180_000,
  );
});
