/** A real Redis for tests: the local one (REDIS_URL or 127.0.0.1:6379), with a unique key prefix per test. */
import { randomBytes } from "node:crypto";

import { Redis } from "ioredis";

export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

export function uniquePrefix(label = "t"): string {
  return `${label}-${randomBytes(5).toString("hex")}`;
}

export function testRedis(url = REDIS_URL): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, lazyConnect: false });
}

/** Deletes every key containing `prefix` (our keys all start with `{<prefix>` or `<prefix>`). */
export async function dropPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `*${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== "0");
}
