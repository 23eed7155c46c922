/**
 * Wiring for unit tests: one agent's kill switch (fake fs + fake clock), token bucket, metrics and an
 * ApiClient over the in-memory FakeApiServer.
 */
import type { Counter } from 'prom-client';
import { ApiClient } from '../../collector/src/apiclient.js';
import type { BackoffPolicy } from '../../collector/src/backoff.js';
import { KillSwitch } from '../../collector/src/killswitch.js';
import { CollectorMetrics } from '../../collector/src/metrics.js';
import { TokenBucket } from '../../collector/src/ratelimit.js';
import type { KubeRequest, KubeResponse, KubeTransport } from '../../collector/src/transport.js';
import { FakeApiServer } from './fakeapiserver.js';
import { FakeClock } from '../core/fakeclock.js';
import { FakeFs } from './fakefs.js';
import { RecordingLogger } from '../core/fakelogger.js';

/** Path of the stop file in tests. */
export const TEST_STOP_PATH = '/node/var/run/telemetry-rollout/stop';
/** Revision of the agent under test. */
export const TEST_REVISION = 'rev-test1';

/** Everything a test needs around one ApiClient. */
export interface TestRig {
  clock: FakeClock;
  fs: FakeFs;
  logger: RecordingLogger;
  killSwitch: KillSwitch;
  server: FakeApiServer;
  metrics: CollectorMetrics;
  bucket: TokenBucket | null;
  client: ApiClient;
  shutdown: AbortController;
  /** The client's own path to the server: set `failWith` to fail only this agent's requests. */
  transport: SwitchableTransport;
}

/** Wraps a transport; while `failWith` is set, requests fail with that HTTP status without reaching it. */
export class SwitchableTransport implements KubeTransport {
  failWith: number | undefined;
  private readonly inner: KubeTransport;
  constructor(inner: KubeTransport) {
    this.inner = inner;
  }
  async send(req: KubeRequest): Promise<KubeResponse> {
    if (this.failWith !== undefined) {
      const body = JSON.stringify({ kind: 'Status', code: this.failWith, message: 'injected' });
      return {
        status: this.failWith,
        headers: {},
        body: (async function* () {
          yield Buffer.from(body);
        })(),
      };
    }
    return this.inner.send(req);
  }
}

/** Builds a TestRig; `rateLimit: null` builds an unthrottled client (as the Naive mode does). */
export function makeRig(
  options: {
    rateLimit?: { qps: number; burst: number } | null;
    backoff?: BackoffPolicy;
    clock?: FakeClock;
    /** Share one API server between several agents (leader election, fleets). */
    server?: FakeApiServer;
    revision?: string;
  } = {},
): TestRig {
  const clock = options.clock ?? new FakeClock();
  const fs = new FakeFs();
  const logger = new RecordingLogger();
  const killSwitch = new KillSwitch({ path: TEST_STOP_PATH, revision: options.revision ?? TEST_REVISION, reader: fs, clock, logger });
  const server = options.server ?? new FakeApiServer(clock);
  const transport = new SwitchableTransport(server);
  const metrics = new CollectorMetrics();
  const rl = options.rateLimit === undefined ? { qps: 2, burst: 5 } : options.rateLimit;
  const bucket = rl ? new TokenBucket({ ...rl, clock }) : null;
  const shutdown = new AbortController();
  const client = new ApiClient({
    transport,
    killSwitch,
    rateLimiter: bucket,
    backoff: options.backoff ?? { initialMs: 1000, maxMs: 30_000, jitter: 0 },
    clock,
    metrics,
    logger,
    signal: shutdown.signal,
    random: () => 0,
  });
  return { clock, fs, logger, killSwitch, server, metrics, bucket, client, shutdown, transport };
}

/** Current value of a counter for exactly these labels (0 when never incremented). */
export async function counterValue(counter: Counter<string>, labels: Record<string, string> = {}): Promise<number> {
  const m = await counter.get();
  let sum = 0;
  for (const v of m.values) {
    if (Object.entries(labels).every(([k, val]) => v.labels[k] === val)) sum += v.value;
  }
  return sum;
}

/** A stop file naming `revision`. */
export function stopFileFor(revision: string): string {
  return JSON.stringify({ rollout: 'ns/tro', revision, reason: 'test', issuedAt: '2026-11-25T12:00:00Z' });
}
