/**
 * ioredis clients for the two roles. Producers (ingest) fail fast: no offline queue, one retry, a command
 * timeout, so a POST gets a 503 at once while Redis is down instead of waiting for it. Workers (BullMQ consumers)
 * must wait forever (`maxRetriesPerRequest: null`, BullMQ's requirement).
 */
import { Redis } from "ioredis";
import type { Logger } from "pino";

import { QueueUnavailableError } from "./errors.js";

export interface ProducerRedisOptions {
  /** a command slower than this fails (ms; default 2000) */
  readonly commandTimeoutMs?: number;
  /** shown in CLIENT LIST */
  readonly connectionName?: string;
  readonly logger?: Logger;
}

/** redis://user:secret@host:6379/0 -> redis://user:***@host:6379/0 (for messages and logs). */
export function redactRedisUrl(url: string): string {
  return url.replace(/^(rediss?:\/\/)([^@/]*)@/, (_, scheme: string, userinfo: string) => {
    const user = userinfo.includes(":") ? userinfo.slice(0, userinfo.indexOf(":")) : "";
    return `${scheme}${user}:***@`;
  });
}

function watch(redis: Redis, url: string, logger: Logger | undefined): Redis {
  let lastReport = 0;
  redis.on("error", (error: Error) => {
    // ioredis reconnects by itself; report at most every 10 s so an outage does not flood the log.
    const now = Date.now();
    if (now - lastReport < 10_000) return;
    lastReport = now;
    logger?.warn({ redis: redactRedisUrl(url), err: { name: error.name, message: error.message } }, "Redis connection error");
  });
  return redis;
}

/** A client for producers. Call `connectRedis` before use (it is created with lazyConnect). */
export function createProducerRedis(url: string, options: ProducerRedisOptions = {}): Redis {
  return watch(
    new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: options.commandTimeoutMs ?? 2000,
      connectTimeout: 5000,
      connectionName: options.connectionName ?? "agentgpt-ingest",
      retryStrategy: (times) => Math.min(times * 200, 2000),
    }),
    url,
    options.logger,
  );
}

/** A client for BullMQ workers (blocking, retries forever). */
export function createWorkerRedis(url: string, options: { connectionName?: string; logger?: Logger } = {}): Redis {
  return watch(
    new Redis(url, { maxRetriesPerRequest: null, connectionName: options.connectionName ?? "agentgpt-worker" }),
    url,
    options.logger,
  );
}

/** Connects a lazy client; throws QueueUnavailableError naming the (redacted) URL when Redis cannot be reached. */
export async function connectRedis(redis: Redis, url: string): Promise<void> {
  if (redis.status === "ready") return;
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new QueueUnavailableError(`cannot reach Redis at ${redactRedisUrl(url)}`, { cause: error });
  }
}

/** Deletes every key containing `prefix` (the relayer's keys all start with `{<prefix>` or `<prefix>`). */
export async function deleteKeysWithPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `*${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== "0");
}
