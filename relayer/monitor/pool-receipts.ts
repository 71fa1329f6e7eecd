/**
 * The receipts in a chain's batcher pool (taken from ingest's queue, not yet in a registered batch), for the
 * pending figures. BatchPool has no reader for them (only `pending()`: a count and the oldest time), so this
 * reads its documented layout (relayer/batcher/batch-pool.ts: `<tag>:pool`, a hash of receipt id -> receipt JSON)
 * with HSCAN, read-only. It is the monitor's only read of another module's keys; a `BatchPool.pooled()` reader
 * would replace it.
 */
import type { Redis } from "ioredis";

import type { BatchPool } from "../batcher/batch-pool.js";
import { Receipt } from "../queue/index.js";

/** Every receipt in the pool (and in the batch being sealed, which stays in the pool until registered). */
export async function poolReceipts(redis: Redis, pool: Pick<BatchPool, "tag">): Promise<Receipt[]> {
  const key = `${pool.tag}:pool`;
  const out = new Map<string, Receipt>(); // HSCAN may return an entry twice while the hash is rehashed
  let cursor = "0";
  do {
    const [next, flat] = await redis.hscan(key, cursor, "COUNT", 1000);
    cursor = next;
    for (let i = 0; i + 1 < flat.length; i += 2) out.set(flat[i]!, Receipt.parse(JSON.parse(flat[i + 1]!)));
  } while (cursor !== "0");
  return [...out.values()];
}
