/**
 * A list-then-watch loop for one resource (client-go's Reflector, reduced to what the collector needs).
 * Used by the cluster watcher (LIST with resourceVersion=0, i.e. from the API server's watch cache) and,
 * deliberately misconfigured, by the Naive mode (LIST without resourceVersion, i.e. a quorum read from
 * etcd, plus a forced periodic relist).
 *
 * No relist storm: every failed or expired cycle waits a jittered exponential backoff before the next
 * LIST (and a watch that the server closes at once without events counts as a failure), and the backoff
 * only resets after a healthy watch. A LIST costs the API server ~5× the response size in memory and,
 * without resourceVersion, an etcd range read over every object: it must never be retried in a loop.
 *
 * What happens when:
 * - watch ends normally (server timeout) → rewatch from the last resourceVersion (cheap);
 * - stream breaks / 429 / 5xx mid-watch → backoff, rewatch from the last resourceVersion;
 * - 410 Gone (resourceVersion compacted) → backoff, relist;
 * - any other error → backoff, relist;
 * - kill switch → the in-flight call is aborted; after the resume, relist (the cache may be stale);
 * - shutdown → resolve.
 */
import type { ApiClient, KubeObject, ResourceRef, WatchEvent } from './apiclient.js';
import { Backoff, isRetryable, type BackoffPolicy } from './backoff.js';
import type { Clock } from '#core/clock.js';
import { ApiError, StoppedError } from './errors.js';
import type { KillSwitch } from './killswitch.js';
import type { Logger } from '#core/logger.js';
import { serializeError } from '#core/logger.js';
import { linkSignals } from './signals.js';

/** Raised internally when the periodic relist (Naive mode) interrupts a watch. */
class RelistDue extends Error {
  constructor() {
    super('periodic relist due');
    this.name = 'RelistDue';
  }
}

/** Counters of a reflector's activity. */
export interface ReflectorStats {
  lists: number;
  watches: number;
  /** Relists caused by 410 Gone. */
  expired: number;
  /** Failed cycles (each followed by a backoff wait). */
  failures: number;
}

/** Dependencies and behaviour of a Reflector. */
export interface ReflectorOptions {
  api: ApiClient;
  killSwitch: KillSwitch;
  clock: Clock;
  logger: Logger;
  backoff: BackoffPolicy;
  ref: ResourceRef;
  /**
   * `'0'`: serve the LIST from the watch cache (the only acceptable choice for a real agent).
   * `undefined`: a consistent (quorum) LIST from etcd: Naive mode only.
   */
  listResourceVersion: '0' | undefined;
  /** Forces a full relist this often (Naive mode's incident pattern); undefined = never. */
  relistEveryMs?: number;
  /** Server-side watch timeout; default: random in [300, 600) s like client-go's minWatchTimeout. */
  watchTimeoutSeconds?: () => number;
  /** A watch that ends sooner than this with no event counts as a failure (backoff). Default 1 s. */
  minWatchMs?: number;
  random?: () => number;
  /** Receives every LIST result (replace the cache). Must not throw. */
  onList: (items: KubeObject[], resourceVersion: string | undefined) => void;
  /** Receives every watch event. Must not throw (a throw ends the watch and counts as a failure). */
  onEvent: (event: WatchEvent) => void;
}

/** See the file comment. */
export class Reflector {
  readonly stats: ReflectorStats = { lists: 0, watches: 0, expired: 0, failures: 0 };
  private readonly o: ReflectorOptions;
  private readonly backoff: Backoff;
  private readonly random: () => number;

  constructor(options: ReflectorOptions) {
    this.o = options;
    this.random = options.random ?? Math.random;
    this.backoff = new Backoff(options.backoff, options.clock, this.random);
  }

  /** Lists and watches until `signal` aborts; resolves then. Rejects only on a bug (never on API errors). */
  async run(signal: AbortSignal): Promise<void> {
    const { api, clock, killSwitch, logger, ref } = this.o;
    const resource = ref.plural;
    while (!signal.aborted) {
      try {
        await killSwitch.waitUntilRunning(signal);
        const list = await api.list(ref, { resourceVersion: this.o.listResourceVersion }, { signal });
        this.stats.lists++;
        let rv = list.metadata?.resourceVersion;
        this.o.onList(list.items, rv);
        const listedAt = clock.nowMs();
        // Watch phase: rewatch from rv until a relist is needed.
        for (;;) {
          const relistInMs = this.o.relistEveryMs === undefined ? undefined : listedAt + this.o.relistEveryMs - clock.nowMs();
          if (relistInMs !== undefined && relistInMs <= 0) break;
          const started = clock.nowMs();
          try {
            const res = await this.watchOnce(rv, relistInMs, signal);
            rv = res.resourceVersion ?? rv;
            if (res.events === 0 && clock.nowMs() - started < (this.o.minWatchMs ?? 1000)) {
              // The server closed the watch at once: treat as a failure so we cannot spin.
              this.stats.failures++;
              await this.backoff.wait(signal);
            } else {
              this.backoff.reset();
            }
          } catch (err) {
            if (err instanceof RelistDue) break;
            if (signal.aborted || err instanceof StoppedError || (err instanceof ApiError && err.code === 410)) throw err;
            if (!isRetryable(err)) throw err;
            this.stats.failures++;
            logger.warn('watch broke; rewatching after backoff', { resource, resourceVersion: rv, err: serializeError(err) });
            await this.backoff.wait(signal, err);
          }
        }
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof StoppedError) continue; // idle until resumed, then relist
        if (err instanceof ApiError && err.code === 410) {
          this.stats.expired++;
          logger.info('watch expired (410 Gone); relisting after backoff', { resource });
        } else {
          this.stats.failures++;
          logger.warn('list/watch failed; relisting after backoff', { resource, err: serializeError(err) });
        }
        try {
          await this.backoff.wait(signal, err);
        } catch (waitErr) {
          if (signal.aborted) return;
          if (waitErr instanceof StoppedError) continue;
          throw waitErr;
        }
      }
    }
  }

  /** One watch from `rv`, interrupted with RelistDue after `relistInMs` when set. */
  private async watchOnce(rv: string | undefined, relistInMs: number | undefined, signal: AbortSignal) {
    const timeoutSeconds = this.o.watchTimeoutSeconds?.() ?? Math.floor(300 * (1 + this.random()));
    const relist = new AbortController();
    const timerStop = new AbortController();
    const link = linkSignals([signal, relist.signal]);
    const timer =
      relistInMs === undefined
        ? Promise.resolve()
        : this.o.clock.sleep(relistInMs, timerStop.signal).then(
            () => relist.abort(new RelistDue()),
            () => undefined, // cancelled because the watch ended first
          );
    try {
      this.stats.watches++;
      return await this.o.api.watch(this.o.ref, { resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds }, this.o.onEvent, { signal: link.signal });
    } catch (err) {
      if (relist.signal.aborted && !signal.aborted) throw new RelistDue();
      throw err;
    } finally {
      timerStop.abort();
      link.dispose();
      await timer;
    }
  }
}
