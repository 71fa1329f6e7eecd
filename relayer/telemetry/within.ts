/** Small helpers for scrape- and probe-time reads: a bound on how long they may take, and sharing one read. */

export class TimeoutError extends Error {
  override readonly name = "TimeoutError";
}

/** `promise`, or a TimeoutError after `ms` (the work itself is not cancelled: keep it idempotent and read-only). */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError(`${what}: no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `read` shared by every caller while one read is in flight, and (with `ttlMs`) for that long after it started:
 * several gauges filled from one Redis or RPC read per scrape (prom-client collects them all at once). A failed
 * read is not kept.
 */
export function shared<T>(read: () => Promise<T>, ttlMs = 0): () => Promise<T> {
  let last: { at: number; value: Promise<T>; pending: boolean } | null = null;
  return () => {
    const now = Date.now();
    if (last !== null && (last.pending || now - last.at < ttlMs)) return last.value;
    const entry: { at: number; value: Promise<T>; pending: boolean } = { at: now, value: read(), pending: true };
    last = entry;
    entry.value.then(
      () => {
        entry.pending = false;
      },
      () => {
        entry.pending = false;
        if (last === entry) last = null;
      },
    );
    return entry.value;
  };
}
