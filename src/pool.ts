/**
 * Runs `work` for each item with at most `limit` at a time, in order; once `stop()` holds, the items not started yet
 * go to `skip` instead. The one bounded pool: hosts of a fleet command, paths of a cache upload.
 */
export async function eachAtMost<T>(
  limit: number,
  items: readonly T[],
  work: (item: T) => Promise<void>,
  options: { readonly stop?: () => boolean; readonly skip?: (item: T) => void } = {},
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      if (options.stop?.() === true) options.skip?.(item);
      else await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
