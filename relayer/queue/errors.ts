/**
 * Queue errors with a code. `QueueUnavailableError`: Redis cannot take the write now (down, timing out, loading,
 * read-only, out of memory, replicas not confirming); the caller should answer 503 and let the sender retry.
 * Nothing was acknowledged, and a retry is safe because submissions are idempotent.
 */
import { ReplyError } from "ioredis";

export class QueueUnavailableError extends Error {
  override readonly name = "QueueUnavailableError";
  readonly code = "QUEUE_UNAVAILABLE";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Redis runs with a setting that would lose or double-bill receipts (see eviction.ts); the message says what to set. */
export class RedisSettingsError extends Error {
  override readonly name = "RedisSettingsError";
  readonly code = "REDIS_SETTINGS";
}

/**
 * Redis error replies that mean "not now" rather than "wrong": the first word of the reply is its code. Each is a
 * refusal before the command ran (a script answered with one of them wrote nothing), so the sender's retry is safe.
 * A Cluster client follows MOVED and ASK and waits out CLUSTERDOWN and TRYAGAIN (a failover) by itself; they reach
 * us only when that did not settle within its redirections and retries.
 */
const TRANSIENT_REPLY_CODES = new Set(["LOADING", "READONLY", "MASTERDOWN", "BUSY", "OOM", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS"]);
/** Redirections: from a single-Redis client, the server is a Cluster node and redis.cluster should be set. */
const REDIRECT_REPLY_CODES = new Set(["MOVED", "ASK"]);

/**
 * Maps an error thrown by a Redis command to QueueUnavailableError when it is about reaching Redis (connection
 * refused or closed, offline queue disabled, timeout) or a transient reply; other errors are returned as they are.
 */
export function asQueueError(error: unknown, doing: string): unknown {
  if (error instanceof QueueUnavailableError) return error;
  if (error instanceof ReplyError) {
    const code = String((error as Error).message).split(" ", 1)[0] ?? "";
    if (REDIRECT_REPLY_CODES.has(code)) {
      return new QueueUnavailableError(`Redis redirected the command to ${doing} (${code}): it is a Redis Cluster; list its nodes in redis.cluster`, {
        cause: error,
      });
    }
    return TRANSIENT_REPLY_CODES.has(code) ? new QueueUnavailableError(`Redis refused to ${doing} (${code})`, { cause: error }) : error;
  }
  if (error instanceof Error) {
    return new QueueUnavailableError(`Redis is unreachable, could not ${doing}`, { cause: error });
  }
  return error;
}
