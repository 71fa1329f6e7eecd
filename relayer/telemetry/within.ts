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

/**
 * `read` of every source in `sources` (watched chains, by name), one after the other, shared like `shared`: the
 * gauges of one scrape fill from one Redis read per chain. A source whose read fails is left out of the answer, so
 * its gauges keep their last values (the outage is /readyz's to report). `sources` is read at each call: chains
 * watched later are in the next scrape.
 */
export function sharedEach<K, S, T>(sources: ReadonlyMap<K, S>, read: (source: S) => Promise<T>): () => Promise<Map<K, T>> {
  return shared(async () => {
    const out = new Map<K, T>();
    for (const [key, source] of sources) {
      try {
        out.set(key, await read(source));
      } catch {
        // left out: the gauges keep their last values
      }
    }
    return out;
  });
}
