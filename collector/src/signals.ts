/** AbortSignal helpers. */
import { abortReason } from '#core/clock.js';

/**
 * Links several signals into one that aborts (with the first reason) when any of them does; `dispose()`
 * removes the listeners. Used instead of AbortSignal.any for per-call links to long-lived signals (the
 * agent's lifetime, the kill switch): those would otherwise accumulate one dependent signal per call.
 */
export function linkSignals(signals: (AbortSignal | undefined)[]): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  const already = present.find((s) => s.aborted);
  if (already) {
    controller.abort(abortReason(already));
    return { signal: controller.signal, dispose: () => undefined };
  }
  const listeners = present.map((s) => {
    const fn = (): void => controller.abort(abortReason(s));
    s.addEventListener('abort', fn, { once: true });
    return () => s.removeEventListener('abort', fn);
  });
  return { signal: controller.signal, dispose: () => listeners.forEach((off) => off()) };
}
