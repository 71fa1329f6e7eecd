/**
 * `redis:` where receipts are made durable and queued: one Redis, or a Redis Cluster.
 *
 * ```yaml
 * redis:
 *   url: ${REDIS_URL:-redis://127.0.0.1:6379}   # redis:// or rediss://; default shown
 *   # a Redis Cluster instead: seed nodes (any masters or replicas; the rest is discovered)
 *   # cluster: [10.0.0.1:7000, 10.0.0.2:7000, 10.0.0.3:7000]
 *   # or in the url: url: redis+cluster://user:secret@10.0.0.1:7000,10.0.0.2:7000 (rediss+cluster:// for TLS)
 *   shards: 256               # Cluster only: ingest keys are spread over this many hash tags; default 256
 *   prefix: agentgpt          # every key starts with it (hash-tagged for Redis Cluster); default agentgpt
 *   command_timeout: 2s       # a Redis command slower than this fails the POST with 503; default 2s
 *   wait_replicas: 0          # before acknowledging, wait until this many replicas have the write (WAIT); default 0
 *   wait_timeout: 1s          # how long to wait for them; the POST fails with 503 after it
 * ```
 */
import { z } from "zod";

import { durationMs } from "./fields.js";

export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

export interface RedisConfig {
  /** the single Redis (redis:// or rediss://), or the cluster written as a URL (redis+cluster://) */
  readonly url: string;
  /** Redis Cluster seed nodes; null: a single Redis at `url` */
  readonly cluster: readonly RedisNode[] | null;
  /** Cluster only: how many hash tags the ingest keys are spread over (see queue/keys.ts) */
  readonly shards: number;
  readonly prefix: string;
  readonly commandTimeoutMs: number;
  readonly waitReplicas: number;
  readonly waitTimeoutMs: number;
}

const NODE = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** "host:port" -> node; throws a message naming the fix. */
export function parseRedisNode(text: string): RedisNode {
  const match = NODE.exec(text.trim());
  const port = match === null ? NaN : Number(match[2]);
  if (match === null || !(port >= 1 && port <= 65535)) {
    throw new Error(`"${text}" is not a cluster node: write host:port (e.g. 10.0.0.1:7000)`);
  }
  return { host: match[1]!.replace(/^\[|\]$/g, ""), port };
}

/** The nodes of a `redis+cluster://[user:secret@]host:port,host:port` URL, or null when it is not one. */
export function clusterNodesOfUrl(url: string): RedisNode[] | null {
  const match = /^rediss?\+cluster:\/\/(?:[^@/]*@)?([^/?#]+)\/?$/.exec(url);
  if (match === null) return null;
  return match[1]!.split(",").map(parseRedisNode);
}

export const redisSection = () =>
  z
    .strictObject({
      url: z
        .string()
        .regex(
          /^(rediss?|rediss?\+cluster):\/\/\S+$/,
          "a Redis URL starts with redis://, rediss://, or redis+cluster:// for a cluster (e.g. redis://127.0.0.1:6379, redis+cluster://10.0.0.1:7000,10.0.0.2:7000)",
        )
        .default("redis://127.0.0.1:6379"),
      cluster: z
        .array(z.string(), { error: "redis.cluster is a list of host:port (e.g. [10.0.0.1:7000, 10.0.0.2:7000])" })
        .min(1, "redis.cluster needs at least one host:port")
        .optional(),
      shards: z.int().min(1).max(16384).default(256),
      prefix: z
        .string()
        .regex(/^[A-Za-z0-9_-]{1,48}$/, 'a prefix is letters, digits, "_" and "-" (no ":" or braces)')
        .default("agentgpt"),
      command_timeout: durationMs().default(2000),
      wait_replicas: z.int().min(0).max(16).default(0),
      wait_timeout: durationMs().default(1000),
    })
    .prefault({})
    .transform((redis, ctx): RedisConfig => {
      let cluster: RedisNode[] | null = null;
      try {
        if (redis.cluster !== undefined) cluster = redis.cluster.map(parseRedisNode);
        else cluster = clusterNodesOfUrl(redis.url);
        if (cluster === null && /\+cluster:/.test(redis.url)) throw new Error(`write redis+cluster://host:port,host:port (no path or query)`);
      } catch (error) {
        ctx.addIssue({ code: "custom", message: (error as Error).message, path: [redis.cluster === undefined ? "url" : "cluster"] });
        return z.NEVER;
      }
      return {
        url: redis.url,
        cluster,
        shards: redis.shards,
        prefix: redis.prefix,
        commandTimeoutMs: redis.command_timeout,
        waitReplicas: redis.wait_replicas,
        waitTimeoutMs: redis.wait_timeout,
      };
    });
