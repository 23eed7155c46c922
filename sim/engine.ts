/**
 * The simulator's discrete-event engine: virtual time behind the product's {@link Clock} interface, so
 * the real reconciler, gate evaluator, work queue and break-glass code run unchanged while an hour of
 * fleet time passes in seconds, and a seeded PRNG so that the same seed gives the same run.
 *
 * Events due at the same virtual instant fire in creation order; after each instant the engine lets
 * every pending promise continuation run (one macrotask turn drains the microtask queue), so async code
 * that arms a new timer does so before time moves on. Nothing in the simulated world may wait on real
 * I/O: a real socket or a real setTimeout would run outside virtual time.
 */
import { abortReason, sleepOn, type Clock } from '#core/clock.js';

interface Timer {
  due: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** A binary min-heap of timers by (due, seq): tens of thousands of pending pod starts stay cheap. */
class TimerHeap {
  private readonly a: Timer[] = [];
  get size(): number {
    return this.a.length;
  }
  peek(): Timer | undefined {
    return this.a[0];
  }
  push(t: Timer): void {
    const a = this.a;
    a.push(t);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): Timer | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && less(a[l]!, a[m]!)) m = l;
        if (r < a.length && less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

function less(x: Timer, y: Timer): boolean {
  return x.due < y.due || (x.due === y.due && x.seq < y.seq);
}

/** One macrotask turn: every microtask queued so far (and those they queue) runs first. */
const turn = (): Promise<void> => new Promise<void>((r) => setImmediate(r));

/**
 * Virtual time. Implements {@link Clock} for the product code; {@link SimClock.runUntil} moves time.
 * Timers never fire synchronously from {@link SimClock.setTimer} (the Clock contract).
 */
export class SimClock implements Clock {
  private current: number;
  private seq = 0;
  private readonly heap = new TimerHeap();
  /** Instants processed (a measure of the engine's work, for the report). */
  instants = 0;

  /** Timers fire on multiples of this many ms (default 10: far below any modelled latency's spread). */
  readonly resolutionMs: number;

  /** Starts at `start` (ms since the epoch, a multiple of the resolution). */
  constructor(start = Date.UTC(2026, 0, 1), resolutionMs = 10) {
    this.current = start;
    this.resolutionMs = resolutionMs;
  }

  now(): Date {
    return new Date(this.current);
  }

  nowMs(): number {
    return this.current;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return sleepOn(this, ms, signal);
  }

  setTimer(ms: number, fn: () => void): () => void {
    const due = this.current + Math.max(0, Number.isFinite(ms) ? ms : 0);
    // Rounded up to the resolution: timers armed together fire in one instant (one turn of the event
    // loop for all of them), which is most of the engine's speed; order within an instant is kept.
    const t: Timer = { due: Math.ceil(due / this.resolutionMs) * this.resolutionMs, seq: this.seq++, fn, cancelled: false };
    this.heap.push(t);
    return () => {
      t.cancelled = true;
    };
  }

  /** Schedules `fn` at the absolute virtual time `at` (ms); a past time means the current instant. */
  at(at: number, fn: () => void): () => void {
    return this.setTimer(at - this.current, fn);
  }

  /**
   * Fires every timer due up to `end` in order, letting continuations run after each instant, then sets
   * the time to `end`. `stop` is checked after each instant and ends the run early when it holds.
   */
  async runUntil(end: number, stop?: () => boolean): Promise<void> {
    await turn();
    for (;;) {
      const next = this.peekLive();
      if (next === undefined || next.due > end) break;
      const instant = next.due;
      this.current = Math.max(this.current, instant);
      // Every timer of this instant, then one turn for the continuations they started.
      for (;;) {
        const t = this.peekLive();
        if (t === undefined || t.due !== instant) break;
        this.heap.pop();
        t.fn();
      }
      this.instants++;
      await turn();
      if (stop?.()) return;
    }
    this.current = Math.max(this.current, end);
    await turn();
  }

  private peekLive(): Timer | undefined {
    for (;;) {
      const t = this.heap.peek();
      if (t === undefined || !t.cancelled) return t;
      this.heap.pop();
    }
  }
}

/**
 * A seeded PRNG (sfc32 over a splitmix32-expanded seed): fast, with good statistics for a simulation,
 * and exactly reproducible from the seed. Never used for anything secret.
 */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t / 4294967296;
  }

  /** A standard normal variate (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** A log-normal variate with the given median and log-space sigma. */
  logNormal(median: number, sigma: number): number {
    return median * Math.exp(sigma * this.normal());
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** A child generator, so that one component's draws do not shift another's (stable streams). */
  fork(salt: number): Rng {
    return new Rng((Math.floor(this.next() * 4294967296) ^ Math.imul(salt | 0, 0x9e3779b1)) >>> 0);
  }
}

/** A stable 32-bit hash of a string (FNV-1a), to derive per-cluster PRNG streams from names. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}
