import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { EventsV1Event } from '@kubernetes/client-node';
import { Registry, type Counter } from 'prom-client';
import type { TelemetryRollout } from '../api/types.generated.js';
import { isConflict } from '../controller/kube.js';
import { FakeClock } from '../../../testkit/core/fakeclock.js';
import { memoryLogger } from '../../../testkit/operator/util/logging.js';
import { json, startFakeApiServer, status, type FakeApiServer } from '../../../testkit/operator/cluster/fakeapiserver.js';
import { clusterRequestCounter, type RequestLabel } from './metrics.js';
import { KubeEventRecorder, KubeStatusWriter, microTime, REPORTING_CONTROLLER, type EventSink } from './status.js';

const TOKEN = 'FAKE-TOKEN-status-0123456789abcdef';

const rollout = (rv?: string): TelemetryRollout =>
  ({
    apiVersion: 'telemetry.rollout.dev/v1alpha1',
    kind: 'TelemetryRollout',
    metadata: { name: 'ro', namespace: 'fleet', uid: 'uid-1', ...(rv ? { resourceVersion: rv } : {}) },
    spec: {},
  }) as unknown as TelemetryRollout;

describe('KubeStatusWriter', () => {
  let server: FakeApiServer;
  let counter: Counter<RequestLabel>;
  beforeEach(async () => {
    server = await startFakeApiServer((req, res) => json(res, 200, JSON.parse(req.body)));
    counter = clusterRequestCounter(new Registry());
  });
  afterEach(async () => server.close());

  it('replaces the status subresource carrying the resourceVersion it read', async () => {
    const w = new KubeStatusWriter(server.kubeConfig(TOKEN), { requests: counter });
    await w.writeStatus(rollout('42'), { phase: 'Progressing', message: 'step 1' });
    const req = server.requests[0]!;
    expect(req.method).toBe('PUT');
    expect(req.path).toBe('/apis/telemetry.rollout.dev/v1alpha1/namespaces/fleet/telemetryrollouts/ro/status');
    expect(JSON.parse(req.body)).toEqual({
      apiVersion: 'telemetry.rollout.dev/v1alpha1',
      kind: 'TelemetryRollout',
      metadata: { name: 'ro', namespace: 'fleet', resourceVersion: '42' },
      status: { phase: 'Progressing', message: 'step 1' },
    });
    const values = (await counter.get()).values.map((v) => [v.labels.cluster, v.labels.verb, v.labels.resource, v.labels.code, v.value]);
    expect(values).toEqual([['management', 'update', 'telemetryrollouts/status', '200', 1]]);
  });

  it('lets a 409 Conflict through as an error isConflict() recognises', async () => {
    server.handle((_req, res) => json(res, 409, status(409, 'Operation cannot be fulfilled: the object has been modified', 'Conflict')));
    const err = await new KubeStatusWriter(server.kubeConfig(TOKEN)).writeStatus(rollout('41'), { phase: 'Succeeded' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isConflict(err)).toBe(true);
    expect((err as Error).message).toMatch(/^cluster management: write status of TelemetryRollout fleet\/ro: HTTP 409/);
  });

  it('refuses an unconditional write (no resourceVersion) without sending anything', async () => {
    await expect(new KubeStatusWriter(server.kubeConfig(TOKEN)).writeStatus(rollout(), { phase: 'Succeeded' })).rejects.toThrow(/no resourceVersion/);
    expect(server.requests).toHaveLength(0);
  });
});

describe('microTime', () => {
  it('formats with microseconds', () => {
    expect(microTime(new Date(Date.UTC(2026, 10, 25, 10, 0, 0, 123)))).toBe('2026-11-25T10:00:00.123000Z');
  });
});

class FakeSink implements EventSink {
  created: Array<{ namespace: string; event: EventsV1Event }> = [];
  patched: Array<{ namespace: string; name: string; series: { count: number; lastObservedTime: string } }> = [];
  failCreate: Error | undefined;
  failPatch: Error | undefined;
  async create(namespace: string, event: EventsV1Event): Promise<void> {
    if (this.failCreate) throw this.failCreate;
    this.created.push({ namespace, event });
  }
  async patchSeries(namespace: string, name: string, series: { count: number; lastObservedTime: string }): Promise<void> {
    if (this.failPatch) throw this.failPatch;
    this.patched.push({ namespace, name, series });
  }
}

describe('KubeEventRecorder', () => {
  function setup() {
    const sink = new FakeSink();
    const clock = new FakeClock(Date.UTC(2026, 10, 25, 10, 0, 0));
    const { logger, entries } = memoryLogger();
    const rec = new KubeEventRecorder(sink, { clock, logger, reportingInstance: 'operator-0' });
    return { sink, clock, rec, entries };
  }

  it('creates an events.k8s.io/v1 Event regarding the rollout', async () => {
    const { sink, rec } = setup();
    rec.event(rollout('1'), 'Normal', 'StageStarted', 'stage canary started');
    await rec.flush();
    expect(sink.created).toHaveLength(1);
    const { namespace, event } = sink.created[0]!;
    expect(namespace).toBe('fleet');
    expect(event).toMatchObject({
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { namespace: 'fleet' },
      eventTime: '2026-11-25T10:00:00.000000Z',
      reportingController: REPORTING_CONTROLLER,
      reportingInstance: 'operator-0',
      reason: 'StageStarted',
      type: 'Normal',
      note: 'stage canary started',
      regarding: { apiVersion: 'telemetry.rollout.dev/v1alpha1', kind: 'TelemetryRollout', name: 'ro', namespace: 'fleet', uid: 'uid-1' },
    });
    expect(event.metadata?.name).toMatch(/^ro\.[0-9a-f]+$/);
  });

  it('aggregates repeats within the window into the series of one Event, then starts a new one', async () => {
    const { sink, clock, rec } = setup();
    rec.event(rollout('1'), 'Warning', 'GateFailed', 'p99 2s > 1s');
    await clock.advance(60_000);
    rec.event(rollout('2'), 'Warning', 'GateFailed', 'p99 2s > 1s');
    await clock.advance(60_000);
    rec.event(rollout('3'), 'Warning', 'GateFailed', 'p99 2s > 1s');
    rec.event(rollout('3'), 'Warning', 'GateFailed', 'p99 3s > 1s');
    await rec.flush();
    expect(sink.created.map((c) => c.event.note)).toEqual(['p99 2s > 1s', 'p99 3s > 1s']);
    const name = sink.created[0]!.event.metadata!.name!;
    expect(sink.patched).toEqual([
      { namespace: 'fleet', name, series: { count: 2, lastObservedTime: '2026-11-25T10:01:00.000000Z' } },
      { namespace: 'fleet', name, series: { count: 3, lastObservedTime: '2026-11-25T10:02:00.000000Z' } },
    ]);
    await clock.advance(10 * 60_000);
    rec.event(rollout('4'), 'Warning', 'GateFailed', 'p99 2s > 1s');
    await rec.flush();
    expect(sink.created).toHaveLength(3);
    expect(sink.patched).toHaveLength(2);
  });

  it('repeats fired at once keep their order: the count never goes backwards', async () => {
    const { sink, rec } = setup();
    for (let i = 0; i < 4; i++) rec.event(rollout('1'), 'Normal', 'Progress', 'same');
    await rec.flush();
    expect(sink.created).toHaveLength(1);
    expect(sink.patched.map((p) => p.series.count)).toEqual([2, 3, 4]);
  });

  it('creates a new Event when the aggregated one is gone (404)', async () => {
    const { sink, rec } = setup();
    rec.event(rollout('1'), 'Normal', 'Progress', 'same');
    await rec.flush();
    sink.failPatch = Object.assign(new Error('not found'), { code: 404 });
    rec.event(rollout('1'), 'Normal', 'Progress', 'same');
    await rec.flush();
    expect(sink.created).toHaveLength(2);
  });

  it('never throws: a failed write is logged', async () => {
    const { sink, rec, entries } = setup();
    sink.failCreate = new Error('cluster management: create Event fleet/ro.1: HTTP 403: forbidden');
    expect(() => rec.event(rollout('1'), 'Normal', 'Progress', 'x')).not.toThrow();
    await rec.flush();
    await new Promise((r) => setImmediate(r));
    expect(entries.some((e) => e.level === 'warn' && e.message === 'could not record event' && /HTTP 403/.test(String(e.error)))).toBe(true);
    // Not created, so a repeat creates rather than patches.
    sink.failCreate = undefined;
    rec.event(rollout('1'), 'Normal', 'Progress', 'x');
    await rec.flush();
    expect(sink.created).toHaveLength(1);
    expect(sink.patched).toHaveLength(0);
  });

  it('redacts credentials in messages and caps the note at 1 KiB', async () => {
    const { sink, rec } = setup();
    rec.event(rollout('1'), 'Warning', 'ClusterUnavailable', `auth failed with token: ${TOKEN} and Bearer abc.def.ghi`);
    rec.event(rollout('1'), 'Normal', 'Long', 'x'.repeat(5000));
    await rec.flush();
    expect(sink.created[0]?.event.note).not.toContain(TOKEN);
    expect(sink.created[0]?.event.note).toContain('[REDACTED]');
    expect(Buffer.byteLength(sink.created[1]?.event.note ?? '')).toBeLessThanOrEqual(1024);
  });
});
