/**
 * Writing what the operator did back to the management cluster: the TelemetryRollout's status
 * subresource ({@link KubeStatusWriter}) and Kubernetes Events on it ({@link KubeEventRecorder}).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { PatchStrategy, setHeaderOptions, type EventsV1Event, type KubeConfig } from '@kubernetes/client-node';
import type { TelemetryRollout, TelemetryRolloutStatus } from '../api/types.generated.js';
import type { EventRecorder, StatusWriter } from '../rollout/interfaces.js';
import { SystemClock, type Clock } from '#core/clock.js';
import { errorMessage } from '../util/errors.js';
import { createLogger, redactString, type Logger } from '../util/logging.js';
import { ClusterRequestError, KubeApis } from './kubeapi.js';
import { unregisteredRequestCounter, type RequestCounter } from './metrics.js';

/** API group of TelemetryRollout. */
export const GROUP = 'telemetry.rollout.dev';
/** API version of TelemetryRollout. */
export const VERSION = 'v1alpha1';
/** Plural resource name of TelemetryRollout. */
export const PLURAL = 'telemetryrollouts';
/** The `reportingController` of the operator's Events. */
export const REPORTING_CONTROLLER = 'telemetry-rollout-operator';
/** The name under which requests to the management cluster are counted. */
export const MANAGEMENT_CLUSTER_LABEL = 'management';

/** Options shared by the status writer and the event recorder. */
export interface ManagementClientOptions {
  /** Where requests are counted, with cluster label {@link MANAGEMENT_CLUSTER_LABEL}; default: nowhere. */
  requests?: RequestCounter;
  /** Timeout of each request (default 10 s). */
  timeoutMs?: number;
}

/**
 * The management cluster's API clients, counted under {@link MANAGEMENT_CLUSTER_LABEL}: one place, so the
 * status writer and the event sink count and time their requests alike.
 */
function managementApis(kc: KubeConfig, opts: ManagementClientOptions): KubeApis {
  return new KubeApis(kc, {
    cluster: MANAGEMENT_CLUSTER_LABEL,
    requests: opts.requests ?? unregisteredRequestCounter(),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
  });
}

const nameOf = (r: TelemetryRollout) => `${r.metadata?.namespace ?? 'default'}/${r.metadata?.name ?? ''}`;

/**
 * Replaces a TelemetryRollout's status subresource (PUT .../status) with optimistic concurrency: the
 * request carries the rollout's `metadata.resourceVersion`, so a write based on a stale read fails
 * with 409 Conflict instead of overwriting a newer status. That is how the reconciler guarantees no
 * step is skipped or repeated: a pass that lost the race is retried from a fresh read. The 409 comes
 * back as a {@link ClusterRequestError} with `code` 409 (`isConflict()` of controller/kube.ts).
 */
export class KubeStatusWriter implements StatusWriter {
  private readonly apis: KubeApis;

  constructor(kc: KubeConfig, opts: ManagementClientOptions = {}) {
    this.apis = managementApis(kc, opts);
  }

  /** See the class comment. Throws without writing when the rollout has no resourceVersion (the write would be unconditional). */
  async writeStatus(rollout: TelemetryRollout, status: TelemetryRolloutStatus): Promise<void> {
    const name = rollout.metadata?.name;
    const namespace = rollout.metadata?.namespace;
    const resourceVersion = rollout.metadata?.resourceVersion;
    if (!name || !namespace) throw new Error('write status: the rollout has no name or namespace');
    if (!resourceVersion) {
      throw new Error(`write status of TelemetryRollout ${namespace}/${name}: no resourceVersion, refusing an unconditional write`);
    }
    const body = { apiVersion: `${GROUP}/${VERSION}`, kind: 'TelemetryRollout', metadata: { name, namespace, resourceVersion }, status };
    await this.apis.call(`write status of TelemetryRollout ${namespace}/${name}`, () =>
      this.apis.custom.replaceNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body }),
    );
  }
}

/** Where the event recorder sends events (the API by default; a fake in unit tests). */
export interface EventSink {
  /** Creates an events.k8s.io/v1 Event. */
  create(namespace: string, event: EventsV1Event): Promise<void>;
  /** Updates the series of an existing Event (a JSON merge patch). Rejects with `code` 404 when it is gone. */
  patchSeries(namespace: string, name: string, series: { count: number; lastObservedTime: string }): Promise<void>;
}

/** An {@link EventSink} on the events.k8s.io/v1 API of the management cluster. */
export class ApiEventSink implements EventSink {
  private readonly apis: KubeApis;
  constructor(kc: KubeConfig, opts: ManagementClientOptions = {}) {
    this.apis = managementApis(kc, opts);
  }

  async create(namespace: string, event: EventsV1Event): Promise<void> {
    await this.apis.call(`create Event ${namespace}/${event.metadata?.name ?? ''}`, () => this.apis.events.createNamespacedEvent({ namespace, body: event }));
  }

  async patchSeries(namespace: string, name: string, series: { count: number; lastObservedTime: string }): Promise<void> {
    await this.apis.call(`update Event ${namespace}/${name}`, () =>
      this.apis.events.patchNamespacedEvent({ namespace, name, body: { series } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
    );
  }
}

/** Options of {@link KubeEventRecorder}. */
export interface KubeEventRecorderOptions {
  /** `reportingInstance`: the operator's pod (default env POD_NAME, else the host name). */
  reportingInstance?: string;
  /** Repeats of the same event within this window update its series instead of creating a new Event (default 10 min). */
  dedupeWindowMs?: number;
  clock?: Clock;
  logger?: Logger;
}

interface Seen {
  name: string;
  namespace: string;
  firstMs: number;
  count: number;
  /** The create or last patch in flight: repeats wait for it so the count never goes backwards. */
  chain: Promise<void>;
}

/** Events cap their note at 1 KiB. */
const MAX_NOTE = 1024;
/** At most this many distinct events are remembered for aggregation. */
const MAX_SEEN = 1000;

/** `2026-11-25T10:00:00.123000Z`: the MicroTime format of events.k8s.io/v1. */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, (_m, ms: string) => `.${ms}000Z`);
}

/**
 * Emits events.k8s.io/v1 Events on rollouts (`regarding` the rollout with its uid), as
 * `reportingController` {@link REPORTING_CONTROLLER}. Like client-go's recorder it aggregates: the
 * same type, reason and message on the same rollout within the dedupe window bumps the existing
 * Event's `series` (count 2, 3, ...) instead of creating another. Messages pass through the
 * credential redaction of util/logging.ts. Never throws: a failed write is logged; events are best
 * effort. {@link KubeEventRecorder.flush} waits for writes in flight.
 */
export class KubeEventRecorder implements EventRecorder {
  private readonly sink: EventSink;
  private readonly instance: string;
  private readonly windowMs: number;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly seen = new Map<string, Seen>();
  private readonly inflight = new Set<Promise<void>>();

  constructor(sink: EventSink, opts: KubeEventRecorderOptions = {}) {
    this.sink = sink;
    this.instance = opts.reportingInstance ?? process.env.POD_NAME ?? hostname();
    this.windowMs = opts.dedupeWindowMs ?? 10 * 60_000;
    this.clock = opts.clock ?? new SystemClock();
    this.logger = opts.logger ?? createLogger({ defaultMeta: { component: 'events' } });
  }

  /** A recorder writing to the management cluster's events.k8s.io/v1 API. */
  static forKubeConfig(kc: KubeConfig, opts: KubeEventRecorderOptions & ManagementClientOptions = {}): KubeEventRecorder {
    return new KubeEventRecorder(new ApiEventSink(kc, opts), opts);
  }

  event(rollout: TelemetryRollout, type: 'Normal' | 'Warning', reason: string, message: string): void {
    let p: Promise<void>;
    try {
      p = this.record(rollout, type, reason, message).catch((err: unknown) => {
        this.logger.warn('could not record event', { rollout: nameOf(rollout), reason, error: errorMessage(err) });
      });
    } catch (err) {
      // record() is async and should not throw synchronously; if it ever does, an event is still not worth a crash.
      this.logger.warn('could not record event', { rollout: nameOf(rollout), reason, error: errorMessage(err) });
      return;
    }
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  /** Resolves when every event write started so far has finished (for tests and shutdown). */
  async flush(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  private async record(rollout: TelemetryRollout, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const name = rollout.metadata?.name;
    const namespace = rollout.metadata?.namespace ?? 'default';
    if (!name) throw new Error('event on a rollout without a name');
    let note = redactString(message);
    if (Buffer.byteLength(note, 'utf8') > MAX_NOTE)
      note = `${Buffer.from(note, 'utf8')
        .subarray(0, MAX_NOTE - 3)
        .toString('utf8')
        .replace(/\uFFFD$/, '')}...`;
    const now = this.clock.now();
    const nowMs = now.getTime();
    this.prune(nowMs);
    const key = JSON.stringify([namespace, name, rollout.metadata?.uid ?? '', type, reason, note]);
    const prior = this.seen.get(key);
    if (prior && nowMs - prior.firstMs < this.windowMs) {
      prior.count++;
      const count = prior.count;
      const run = prior.chain.then(async () => {
        try {
          await this.sink.patchSeries(prior.namespace, prior.name, { count, lastObservedTime: microTime(now) });
        } catch (err) {
          if ((err as { code?: unknown }).code !== 404) throw err;
          // The Event expired or was deleted: start a new one.
          this.seen.delete(key);
          await this.create(key, rollout, namespace, type, reason, note, now);
        }
      });
      prior.chain = run.catch(() => undefined);
      return run;
    }
    return this.create(key, rollout, namespace, type, reason, note, now);
  }

  private create(key: string, rollout: TelemetryRollout, namespace: string, type: string, reason: string, note: string, now: Date): Promise<void> {
    const rolloutName = rollout.metadata?.name ?? '';
    // Like client-go: <object>.<unique hex>; the random part keeps two replicas or two events in one ms apart.
    const eventName = `${rolloutName.slice(0, 200)}.${now.getTime().toString(16)}${randomBytes(4).toString('hex')}`;
    const body: EventsV1Event = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: eventName, namespace },
      eventTime: microTime(now) as unknown as EventsV1Event['eventTime'],
      reportingController: REPORTING_CONTROLLER,
      reportingInstance: this.instance,
      action: 'Reconcile',
      reason,
      type,
      note,
      regarding: {
        apiVersion: rollout.apiVersion ?? `${GROUP}/${VERSION}`,
        kind: rollout.kind ?? 'TelemetryRollout',
        name: rolloutName,
        namespace,
        ...(rollout.metadata?.uid ? { uid: rollout.metadata.uid } : {}),
      },
    };
    const entry: Seen = { name: eventName, namespace, firstMs: now.getTime(), count: 1, chain: Promise.resolve() };
    const run = this.sink.create(namespace, body).catch((err: unknown) => {
      // Not created: a repeat must create it rather than patch a missing Event.
      if (this.seen.get(key) === entry) this.seen.delete(key);
      throw err instanceof ClusterRequestError
        ? err
        : new Error(`create Event on TelemetryRollout ${namespace}/${rolloutName}: ${errorMessage(err)}`, { cause: err });
    });
    entry.chain = run.catch(() => undefined);
    this.seen.set(key, entry);
    return run;
  }

  private prune(nowMs: number): void {
    for (const [k, e] of this.seen) {
      if (nowMs - e.firstMs >= this.windowMs) this.seen.delete(k);
    }
    // Oldest first (Map keeps insertion order): bound memory even when every event is distinct.
    while (this.seen.size > MAX_SEEN) {
      const oldest = this.seen.keys().next().value;
      if (oldest === undefined) break;
      this.seen.delete(oldest);
    }
  }
}
