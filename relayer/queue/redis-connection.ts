/**
 * ioredis clients for the two roles, on one Redis or a Redis Cluster (config `redis.cluster` or a
 * `redis+cluster://` URL: then an ioredis `Cluster`, which follows MOVED and ASK redirections and re-reads the slot
 * map after a failover by itself). Producers (ingest) fail fast: no offline queue, one retry, a command timeout, so
 * a POST gets a 503 at once while Redis is down instead of waiting for it. Workers (BullMQ consumers) must wait
 * forever (`maxRetriesPerRequest: null`, BullMQ's requirement; on a cluster, in `redisOptions`).
 */
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis";
import type { Logger } from "pino";

import { clusterNodesOfUrl, type RedisConfig, type RedisNode } from "../config/sections/redis.js";
import { QueueUnavailableError } from "./errors.js";

/** A client of either kind. Both answer the same commands; see `masterNodes` for what differs. */
export type RedisClient = Redis | Cluster;

/** Where Redis is: a URL (redis://, rediss://, redis+cluster://), or the config's redis section. */
export type RedisTarget = string | Pick<RedisConfig, "url" | "cluster">;

export interface ProducerRedisOptions {
  /** a command slower than this fails (ms; default 2000) */
  readonly commandTimeoutMs?: number;
  /** shown in CLIENT LIST */
  readonly connectionName?: string;
  readonly logger?: Logger;
}

/** redis://user:secret@host:6379/0 -> redis://user:***@host:6379/0 (for messages and logs). */
export function redactRedisUrl(url: string): string {
  return url.replace(/^(rediss?(?:\+cluster)?:\/\/)([^@/]*)@/, (_, scheme: string, userinfo: string) => {
    const user = userinfo.includes(":") ? userinfo.slice(0, userinfo.indexOf(":")) : "";
    return `${scheme}${user}:***@`;
  });
}

interface ResolvedTarget {
  /** for messages: the URL (redacted) or redis+cluster://host:port,... */
  readonly label: string;
  /** null: a single Redis at `url` */
  readonly nodes: readonly RedisNode[] | null;
  readonly url: string;
}

function resolve(target: RedisTarget): ResolvedTarget {
  const url = typeof target === "string" ? target : target.url;
  const nodes = typeof target === "string" ? clusterNodesOfUrl(url) : (target.cluster ?? clusterNodesOfUrl(url));
  if (nodes === null) return { label: redactRedisUrl(url), nodes: null, url };
  const fromUrl = /\+cluster:\/\//.test(url);
  return { label: fromUrl ? redactRedisUrl(url) : `redis+cluster://${nodes.map((n) => `${n.host}:${n.port}`).join(",")}`, nodes, url };
}

/** A readable name of the target for messages (never a password). */
export function describeRedisTarget(target: RedisTarget): string {
  return resolve(target).label;
}

/** Whether the target is a Redis Cluster. */
export function isClusterTarget(target: RedisTarget): boolean {
  return resolve(target).nodes !== null;
}

/** Credentials and TLS of a redis+cluster:// URL, applied to every node. */
function clusterNodeOptions(url: string): RedisOptions {
  const match = /^(rediss?)\+cluster:\/\/(?:([^@/]*)@)?/.exec(url);
  if (match === null) return {};
  const out: RedisOptions = {};
  if (match[1] === "rediss") out.tls = {};
  if (match[2] !== undefined) {
    const [user, ...rest] = match[2].split(":");
    if (rest.length > 0) {
      if (user !== "") out.username = decodeURIComponent(user!);
      out.password = decodeURIComponent(rest.join(":"));
    } else if (user !== "") out.password = decodeURIComponent(user!);
  }
  return out;
}

function watch<C extends RedisClient>(redis: C, label: string, logger: Logger | undefined): C {
  let lastReport = 0;
  redis.on("error", (error: Error) => {
    // ioredis reconnects by itself; report at most every 10 s so an outage does not flood the log.
    const now = Date.now();
    if (now - lastReport < 10_000) return;
    lastReport = now;
    logger?.warn({ redis: label, err: { name: error.name, message: error.message } }, "Redis connection error");
  });
  return redis;
}

/**
 * A Cluster client. `redisOptions` apply to each node's connection. A lost node is retried every 100 ms (ioredis
 * default) and the slot map re-read; `clusterRetryStrategy` spaces out reconnecting the whole cluster when no
 * seed answers (at most every 2 s, forever: a stage must come back when the cluster does).
 */
function newCluster(resolved: ResolvedTarget, redisOptions: RedisOptions, options: Partial<ClusterOptions>): Cluster {
  return new Cluster(
    resolved.nodes!.map((node) => ({ host: node.host, port: node.port })),
    {
      redisOptions: { ...clusterNodeOptions(resolved.url), ...redisOptions },
      clusterRetryStrategy: (times) => Math.min(100 + times * 200, 2000),
      // a command for a slot whose master just failed waits for the new map instead of failing at once
      retryDelayOnFailover: 200,
      retryDelayOnClusterDown: 200,
      retryDelayOnTryAgain: 100,
      slotsRefreshTimeout: 2000,
      ...options,
    },
  );
}

/** A client for producers. Call `connectRedis` before use (it is created with lazyConnect). */
export function createProducerRedis(target: RedisTarget, options: ProducerRedisOptions = {}): RedisClient {
  const resolved = resolve(target);
  const nodeOptions: RedisOptions = {
    maxRetriesPerRequest: 1,
    commandTimeout: options.commandTimeoutMs ?? 2000,
    connectTimeout: 5000,
    connectionName: options.connectionName ?? "agentgpt-ingest",
  };
  const client =
    resolved.nodes === null
      ? new Redis(resolved.url, { ...nodeOptions, lazyConnect: true, enableOfflineQueue: false, retryStrategy: (times) => Math.min(times * 200, 2000) })
      : // A node's offline queue holds a command while that node connects (a slot's new master after a failover,
        // a MOVED to a node not connected yet), bounded by the command timeout. The cluster's own offline queue has
        // no timeout: off, so a POST fails at once (503) while the whole cluster is unreachable instead of hanging.
        newCluster(resolved, { ...nodeOptions, enableOfflineQueue: true }, { lazyConnect: true, enableOfflineQueue: false, maxRedirections: 16 });
  return watch(client, resolved.label, options.logger);
}

/** A client for BullMQ workers and the stages (blocking, retries forever). */
export function createWorkerRedis(target: RedisTarget, options: { connectionName?: string; logger?: Logger } = {}): RedisClient {
  const resolved = resolve(target);
  const nodeOptions: RedisOptions = { maxRetriesPerRequest: null, connectionName: options.connectionName ?? "agentgpt-worker" };
  const client = resolved.nodes === null ? new Redis(resolved.url, nodeOptions) : newCluster(resolved, nodeOptions, {});
  return watch(client, resolved.label, options.logger);
}

/** Connects a lazy client; throws QueueUnavailableError naming the target (no password) when Redis cannot be reached. */
export async function connectRedis(redis: RedisClient, target: RedisTarget): Promise<void> {
  if (redis.status === "ready") return;
  try {
    if (redis.status === "wait") await redis.connect();
    else await new Promise<void>((done, fail) => {
      const timer = setTimeout(() => fail(new Error("not ready within 10 s")), 10_000);
      redis.once("ready", () => (clearTimeout(timer), done()));
    });
  } catch (error) {
    redis.disconnect();
    throw new QueueUnavailableError(`cannot reach Redis at ${describeRedisTarget(target)}`, { cause: error });
  }
}

/**
 * The clients of every master: the client itself for a single Redis, one per master node for a Cluster. Commands
 * that are not about one key (SCAN, WAIT, INFO, CONFIG) must go to each of them.
 */
export function masterNodes(redis: RedisClient): Redis[] {
  return redis instanceof Cluster ? redis.nodes("master") : [redis];
}

/** Whether `redis` is a Cluster client. */
export function isCluster(redis: RedisClient): redis is Cluster {
  return redis instanceof Cluster;
}

/**
 * The relayer's stages take a `Redis`; a Cluster client answers the same commands. Each stage keeps its keys under
 * one hash tag (per chain), so its scripts and MULTI blocks stay in one slot.
 */
export function asRedis(redis: RedisClient): Redis {
  return redis as Redis;
}

/** Keys matching a SCAN pattern, a page at a time, on every master (a Cluster's SCAN sees one node only). */
export async function* scanKeys(redis: RedisClient, pattern: string, count = 1000): AsyncGenerator<string[]> {
  for (const node of masterNodes(redis)) {
    let cursor = "0";
    do {
      const [next, keys] = await node.scan(cursor, "MATCH", pattern, "COUNT", count);
      cursor = next;
      if (keys.length > 0) yield keys;
    } while (cursor !== "0");
  }
}

/** Deletes every key containing `prefix` (the relayer's keys all start with `{<prefix>` or `<prefix>`). */
export async function deleteKeysWithPrefix(redis: RedisClient, prefix: string): Promise<void> {
  for await (const keys of scanKeys(redis, `*${prefix}*`)) {
    // on a Cluster the keys of a page are in many slots: one UNLINK each
    if (isCluster(redis)) await Promise.all(keys.map((key) => redis.unlink(key)));
    else await redis.unlink(...keys);
  }
}

/**
 * A client with the given per-connection options, on one Redis or a Cluster (the options then apply to each node;
 * lazyConnect, enableOfflineQueue and retryStrategy to the cluster as a whole).
 */
export function createRedis(target: RedisTarget, options: RedisOptions = {}): RedisClient {
  const resolved = resolve(target);
  if (resolved.nodes === null) return new Redis(resolved.url, options);
  const { lazyConnect, enableOfflineQueue, retryStrategy, ...nodeOptions } = options;
  return newCluster(resolved, nodeOptions, {
    ...(lazyConnect === undefined ? {} : { lazyConnect }),
    ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
    ...(retryStrategy === undefined || retryStrategy === null ? {} : { clusterRetryStrategy: (times: number) => retryStrategy(times) }),
  });
}
