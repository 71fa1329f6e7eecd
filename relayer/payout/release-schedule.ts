/**
 * The release stage's durable state in Redis: which settled batches still wait for release, by when their dispute
 * window closes, and how far the chain's BatchSettled logs were read. Every key of a chain shares the hash tag
 * `{<prefix>:payout:<chain>}`.
 *
 *   <tag>:due      zset batch id -> unix seconds (chain time) when its window closes: written when the settler
 *                  finalizes a batch, and by the scan of BatchSettled logs (batches settled while no relayer ran, or
 *                  by another relayer); moved later when the chain says the window closes later (an L2 sequencer
 *                  outage); removed once the batch is released, by this stage or anyone else
 *   <tag>:cursor   the next block whose BatchSettled logs the scan reads
 */
import type { Redis } from "ioredis";

export interface ScheduledRelease {
  readonly batchId: string;
  /** unix seconds (chain time) */
  readonly closesAt: number;
}

export class ReleaseSchedule {
  readonly tag: string;

  constructor(
    readonly redis: Redis,
    prefix: string,
    readonly chain: string,
  ) {
    this.tag = `{${prefix}:payout:${chain}}`;
  }

  key(name: string): string {
    return `${this.tag}:${name}`;
  }

  /** Adds a settled batch; a batch already scheduled keeps its time (it may have been moved later). */
  async add(batchId: string, closesAt: number): Promise<void> {
    await this.redis.zadd(this.key("due"), "NX", closesAt, batchId.toLowerCase());
  }

  /** Moves a scheduled batch to `closesAt` (the chain said its window closes later); unknown ids are not added. */
  async reschedule(batchId: string, closesAt: number): Promise<void> {
    await this.redis.zadd(this.key("due"), "XX", closesAt, batchId.toLowerCase());
  }

  async remove(batchId: string): Promise<void> {
    await this.redis.zrem(this.key("due"), batchId.toLowerCase());
  }

  /** Batches whose window closed by `now` (unix seconds), soonest first, at most `limit`. */
  async due(now: number, limit: number): Promise<string[]> {
    return this.redis.zrangebyscore(this.key("due"), "-inf", now, "LIMIT", 0, limit);
  }

  /** Every scheduled batch, soonest first, at most `limit` (the monitor). */
  async entries(limit = 10_000): Promise<ScheduledRelease[]> {
    const flat = await this.redis.zrange(this.key("due"), 0, limit - 1, "WITHSCORES");
    const out: ScheduledRelease[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ batchId: flat[i]!, closesAt: Number(flat[i + 1]) });
    return out;
  }

  async size(): Promise<number> {
    return this.redis.zcard(this.key("due"));
  }

  /** The next block to scan for BatchSettled logs; null before the first scan. */
  async cursor(): Promise<number | null> {
    const value = await this.redis.get(this.key("cursor"));
    return value === null ? null : Number(value);
  }

  /** Moves the cursor forward only (two hosts scanning the same blocks never move it back). */
  async advanceCursor(next: number): Promise<void> {
    await this.redis.eval(
      "local c = tonumber(redis.call('GET', KEYS[1]) or '-1') if tonumber(ARGV[1]) > c then redis.call('SET', KEYS[1], ARGV[1]) end return 1",
      1,
      this.key("cursor"),
      String(next),
    );
  }
}
