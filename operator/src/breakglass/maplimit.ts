/**
 * Bounded concurrency for per-node work: at most `limit` calls of `fn` are in flight at any moment, and
 * results keep the order of the input. Small enough to audit, which matters for the one place that
 * decides how many ssh processes the operator starts at once.
 */

/**
 * Maps `items` through `fn` with at most `limit` calls in flight. Items are started in input order as
 * slots free up. When a call rejects, no further items are started, the calls already in flight are
 * awaited (so nothing keeps running behind the caller's back), and the first rejection is rethrown.
 * Callers that want every item's outcome (the transports) make `fn` return failures as values.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`mapLimit: limit must be a positive integer, got ${limit}`);
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  let firstError: unknown;

  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index] as T, index);
      } catch (err) {
        if (!failed) {
          failed = true;
          firstError = err;
        }
      }
    }
  };

  const workers: Promise<void>[] = [];
  for (let i = 0; i < Math.min(limit, items.length); i++) workers.push(worker());
  await Promise.all(workers);
  if (failed) throw firstError;
  return results;
}
