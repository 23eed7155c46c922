/**
 * Metric sources of the health gates: where a cluster's control-plane signals come from
 * (docs/concepts.md, "Health gates").
 *
 * A {@link MetricSource} never throws for a measurement problem: every failure comes back as a
 * {@link Measurement} of kind `nodata` (with a message saying why) or, when the target API server itself
 * cannot be reached, `unreachable`, which is the break-glass signal and must not be mistaken for missing
 * data. The evaluator turns measurements plus thresholds into Pass / Fail / NoData.
 *
 * Sources:
 * - `ApiServerMetricsSource` (scrape.ts): the kube-apiserver's own `/metrics` through the cluster client;
 * - `TextEndpointSource` (scrape.ts): any Prometheus text endpoint by URL, e.g. CoreDNS `:9153/metrics`;
 * - `PrometheusSource` (prometheus.ts): a Prometheus server's HTTP API with one PromQL query per signal;
 * - {@link CompositeSource} (here): several of the above merged into one measurement.
 * This module holds what they share: the {@link Measurement} they produce and the {@link MetricSource}
 * interface.
 */
import type { Clock } from '#core/clock.js';
import { describeError } from './fetchtext.js';
import type { ParsedMetrics } from './promtext.js';
import type { SampleCounts, SignalResult, SignalValues } from './signals.js';
import { SIGNAL_NAMES } from './signals.js';

export type { SampleCounts, SignalName, SignalValues } from './signals.js';

/** What one measurement of a cluster's control-plane signals returned. */
export type Measurement =
  | {
      kind: 'ok';
      /** When the measurement was taken (the end of the window). */
      at: Date;
      /** The length of the window the values describe, seconds. */
      windowSeconds: number;
      /** The signals; an absent signal had no data in this window. */
      values: SignalValues;
      /** Events behind each signal, when the source knows them (not from PromQL). */
      sampleCounts?: SampleCounts;
      /** Why some signals are missing (e.g. one part of a composite had no data), when known. */
      message?: string;
    }
  | { kind: 'nodata'; at: Date; message: string }
  /** The target API server itself cannot be reached: the break-glass signal, NOT nodata. */
  | { kind: 'unreachable'; at: Date; message: string };

/** Anything that can measure a cluster's control-plane signals. Never rejects; see {@link Measurement}. */
export interface MetricSource {
  measure(signal?: AbortSignal): Promise<Measurement>;
}

/** Computes signals from two parsed scrapes of one instance; e.g. {@link apiServerSignals}. */
export type SignalComputer = (prev: ParsedMetrics, cur: ParsedMetrics, windowSeconds: number) => SignalResult;

/** The time source the scraping sources need: only "now". */
export type NowClock = Pick<Clock, 'now'>;

/** The system clock, the default `clock` of every source. */
export const systemNow: NowClock = { now: () => new Date() };

/** One named part of a {@link CompositeSource}. */
export interface CompositePart {
  /** Shown in messages, e.g. `apiserver` or `coredns`. */
  readonly name: string;
  readonly source: MetricSource;
}

/**
 * Merges several sources (typically the API server's `/metrics` and CoreDNS's) into one measurement,
 * measured in parallel:
 * - any part `unreachable` → `unreachable` (the break-glass signal wins over everything);
 * - every part `nodata` → `nodata` with all the reasons;
 * - otherwise `ok` with the union of the values (an earlier part wins when two define the same signal),
 *   the longest window of the ok parts, and a message naming the parts that had no data and why.
 * A part that rejects (breaking the MetricSource contract) counts as `nodata`.
 */
export class CompositeSource implements MetricSource {
  readonly #parts: readonly CompositePart[];

  /** @throws {RangeError} without parts. */
  constructor(parts: readonly CompositePart[]) {
    if (parts.length === 0) throw new RangeError('a CompositeSource needs at least one part');
    this.#parts = [...parts];
  }

  /** Measures every part once, in parallel. Never rejects. */
  async measure(signal?: AbortSignal): Promise<Measurement> {
    const results = await Promise.all(
      this.#parts.map(async (part): Promise<Measurement> => {
        try {
          return await part.source.measure(signal);
        } catch (err) {
          return { kind: 'nodata', at: new Date(), message: `source failed: ${describeError(err)}` };
        }
      }),
    );
    const at = new Date(Math.max(...results.map((r) => r.at.getTime())));
    const named = results.map((r, i) => ({ name: this.#parts[i]?.name ?? `part ${i}`, r }));

    const unreachable = named.filter(({ r }) => r.kind === 'unreachable');
    if (unreachable.length > 0) {
      return { kind: 'unreachable', at, message: unreachable.map(({ name, r }) => `${name}: ${messageOf(r)}`).join('; ') };
    }
    const oks = named.flatMap(({ name, r }) => (r.kind === 'ok' ? [{ name, r }] : []));
    const noData = named.filter(({ r }) => r.kind === 'nodata');
    if (oks.length === 0) {
      return { kind: 'nodata', at, message: noData.map(({ name, r }) => `${name}: ${messageOf(r)}`).join('; ') };
    }

    const values: SignalValues = {};
    const sampleCounts: SampleCounts = {};
    let haveCounts = false;
    for (const { r } of oks) {
      for (const name of SIGNAL_NAMES) {
        const v = r.values[name];
        if (v !== undefined && values[name] === undefined) {
          values[name] = v;
          const c = r.sampleCounts?.[name];
          if (c !== undefined) {
            sampleCounts[name] = c;
            haveCounts = true;
          }
        }
      }
    }
    const messages = [
      ...noData.map(({ name, r }) => `${name}: no data: ${messageOf(r)}`),
      ...oks.flatMap(({ name, r }) => (r.message ? [`${name}: ${r.message}`] : [])),
    ];
    return {
      kind: 'ok',
      at,
      windowSeconds: Math.max(...oks.map(({ r }) => r.windowSeconds)),
      values,
      ...(haveCounts ? { sampleCounts } : {}),
      ...(messages.length > 0 ? { message: messages.join('; ') } : {}),
    };
  }
}

function messageOf(m: Measurement): string {
  return m.kind === 'ok' ? (m.message ?? 'ok') : m.message;
}
