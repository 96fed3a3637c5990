/**
 * Bounded concurrency for transfers (layers of a pull or push).
 *
 * @module
 */

/**
 * Runs `fn` over `items` with at most `limit` running at once. The first failure stops new work
 * from starting and is rethrown once the running ones have settled.
 */
export async function inParallel<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (next < items.length && failed === undefined) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed;
}
