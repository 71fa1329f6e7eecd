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
 * `read` shared by every caller within `ttlMs` of the last call (and while one is in flight): several gauges filled
 * from one Redis or RPC read per scrape. A failed read is not kept.
 */
export function shared<T>(read: () => Promise<T>, ttlMs = 500): () => Promise<T> {
  let last: { at: number; value: Promise<T> } | null = null;
  return () => {
    const now = Date.now();
    if (last !== null && now - last.at < ttlMs) return last.value;
    const value = read();
    last = { at: now, value };
    value.catch(() => {
      if (last?.value === value) last = null;
    });
    return value;
  };
}
