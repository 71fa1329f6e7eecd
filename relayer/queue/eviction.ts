/**
 * Redis must never evict the queue's keys. Under memory pressure a Redis with any maxmemory-policy but `noeviction`
 * deletes keys to make room: an evicted dedupe record (`seen:<id>`, which has a TTL, so even the volatile-* policies
 * take it) bills the next log of that call (LiteLLM's second log, a re-send, the backfill) a second time, and an
 * evicted chunk loses receipts already acknowledged to LiteLLM. With `noeviction` a full Redis refuses writes (OOM):
 * ingest answers 503 and loses nothing. BullMQ asks the same of its Redis, with a warning only.
 *
 * Read from `INFO memory` (managed Redis services often disable CONFIG, rarely INFO), on every master of a Cluster.
 */
import type { Redis } from "ioredis";

import { masterNodes, type RedisClient } from "./redis-connection.js";

export const SAFE_EVICTION_POLICY = "noeviction";

/** The maxmemory-policy of each master, or null for a master whose INFO does not say. */
export async function evictionPolicies(redis: RedisClient): Promise<Array<{ readonly node: string; readonly policy: string | null }>> {
  return Promise.all(
    masterNodes(redis).map(async (node: Redis) => {
      const info = await node.info("memory");
      const found = /^maxmemory_policy:(\S+)/m.exec(info);
      return { node: `${node.options.host ?? "?"}:${node.options.port ?? "?"}`, policy: found === null ? null : found[1]! };
    }),
  );
}

/** What is wrong with the eviction policy of `redis`, with the fix, or null when every master has noeviction. */
export async function evictionProblem(redis: RedisClient): Promise<string | null> {
  const unsafe = (await evictionPolicies(redis)).filter(({ policy }) => policy !== null && policy !== SAFE_EVICTION_POLICY);
  if (unsafe.length === 0) return null;
  const where = unsafe.map(({ node, policy }) => `${policy} on ${node}`).join(", ");
  return (
    `Redis may evict keys under memory pressure (maxmemory-policy ${where}): an evicted dedupe record would bill a call ` +
    `logged again a second time, and an evicted chunk would lose receipts already acknowledged. Set maxmemory-policy ` +
    `noeviction (redis-cli CONFIG SET maxmemory-policy noeviction, and the same line in redis.conf); a full Redis then ` +
    `refuses writes, and ingest answers 503 without losing anything`
  );
}
