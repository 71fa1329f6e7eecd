/**
 * `redis:` where receipts are made durable and queued.
 *
 * ```yaml
 * redis:
 *   url: ${REDIS_URL:-redis://127.0.0.1:6379}   # redis:// or rediss://; default shown
 *   prefix: agentgpt          # every key starts with it (hash-tagged for Redis Cluster); default agentgpt
 *   command_timeout: 2s       # a Redis command slower than this fails the POST with 503; default 2s
 *   wait_replicas: 0          # before acknowledging, wait until this many replicas have the write (WAIT); default 0
 *   wait_timeout: 1s          # how long to wait for them; the POST fails with 503 after it
 * ```
 */
import { z } from "zod";

import { durationMs } from "./fields.js";

export interface RedisConfig {
  readonly url: string;
  readonly prefix: string;
  readonly commandTimeoutMs: number;
  readonly waitReplicas: number;
  readonly waitTimeoutMs: number;
}

export const redisSection = () =>
  z
    .strictObject({
      url: z
        .string()
        .regex(/^rediss?:\/\/\S+$/, "a Redis URL starts with redis:// or rediss:// (e.g. redis://127.0.0.1:6379)")
        .default("redis://127.0.0.1:6379"),
      prefix: z
        .string()
        .regex(/^[A-Za-z0-9_-]{1,48}$/, 'a prefix is letters, digits, "_" and "-" (no ":" or braces)')
        .default("agentgpt"),
      command_timeout: durationMs().default(2000),
      wait_replicas: z.int().min(0).max(16).default(0),
      wait_timeout: durationMs().default(1000),
    })
    .prefault({})
    .transform(
      (redis): RedisConfig => ({
        url: redis.url,
        prefix: redis.prefix,
        commandTimeoutMs: redis.command_timeout,
        waitReplicas: redis.wait_replicas,
        waitTimeoutMs: redis.wait_timeout,
      }),
    );
