/**
 * The batcher's durable state in Redis, one chain per instance. Every key shares the hash tag
 * `{<prefix>:batcher:<chain>}` (one Redis Cluster slot), and every step is one Lua script, so a receipt is
 * always in exactly one place: the pool, the batch being sealed, or a registered batch.
 *
 *   <tag>:known:<receiptId>  "pool" or the batch id that holds the receipt; TTL `knownTtlMs` (longer than ingest's
 *                            dedupe window, so a receipt re-delivered by ingest is never batched twice)
 *   <tag>:pool               hash receipt id -> receipt JSON
 *   <tag>:order              zset receipt id -> ms when it entered the pool (oldest first)
 *   <tag>:buckets            zset receipt id -> callsFrom: start (unix s) of the usage bucket in which its call started
 *   <tag>:sealing            JSON {sealedAt, callsFrom, ids} of the batch being sealed (survives a crash: resealed
 *                            as is)
 *   <tag>:batch:<batchId>    hash: cid, path, receipts, rows, amount, callsFrom, sealedAt, handedOff
 *   <tag>:batches            zset batch id -> sealedAt
 *   <tag>:unhanded           set of registered batch ids not yet handed to the settler
 *   <tag>:lease, <tag>:fence the batcher lease of this chain and its fencing counter (relayer/settler/lease.ts):
 *                            seal() and register() given the holder's token refuse to write once another batcher
 *                            took the lease over
 *
 * Two batchers on one chain (a fleet, or a standby that took over from a paused holder): register() compares the
 * sealing it registers with the one in Redis before deleting it, and refuses a stale one (StaleSealingError) without
 * writing: it cannot strand the receipts of a sealing another batcher made meanwhile.
 * A batch holds the receipts of one usage bucket only: sealing takes the bucket of the receipt that has waited
 * longest and up to `max` receipts of that bucket, longest waiting first (it walks the order zset a thousand at a
 * time, with ZMSCORE: Redis 6.2 or newer). Receipts of other buckets (a backfill, a late delivery, the next
 * hour) stay in the pool and are sealed as batches of their own bucket, each in turn.
 */
import type { Redis, Result } from "ioredis";

import type { Receipt } from "../queue/index.js";
import { fenceCheck, FencedError } from "../settler/lease.js";
import { callsFromOf } from "./usage-bucket.js";

// KEYS: pool, order, buckets, known:<id>...; ARGV: knownTtlMs, now, n, then id, receipt JSON, callsFrom per receipt
const TAKE = `
local added = 0
local n = tonumber(ARGV[3])
for i = 1, n do
  local known = KEYS[3 + i]
  local id = ARGV[1 + 3 * i]
  if redis.call('SET', known, 'pool', 'NX', 'PX', ARGV[1]) then
    redis.call('HSET', KEYS[1], id, ARGV[2 + 3 * i])
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    redis.call('ZADD', KEYS[3], ARGV[3 + 3 * i], id)
    added = added + 1
  end
end
return added
`;


// KEYS: sealing, order, buckets, pool, fence; ARGV: now, max, usageBucket (s), fencing token or ''
// Receipts pooled by a batcher older than usage buckets have no bucket yet: they get one from their startTime.
const SEAL = `${fenceCheck(5, 4, "batcher lease")}
local current = redis.call('GET', KEYS[1])
if current then return current end
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)
if #oldest == 0 then return false end
local from = redis.call('ZSCORE', KEYS[3], oldest[1])
if not from then
  local bucket = tonumber(ARGV[3])
  local all = redis.call('ZRANGE', KEYS[2], 0, -1)
  for _, id in ipairs(all) do
    if not redis.call('ZSCORE', KEYS[3], id) then
      local receipt = cjson.decode(redis.call('HGET', KEYS[4], id))
      local s = math.floor(receipt.startTime / 1000)
      redis.call('ZADD', KEYS[3], s - (s % bucket), id)
    end
  end
  from = redis.call('ZSCORE', KEYS[3], oldest[1])
end
-- that bucket's receipts in the order they entered the pool (the longest waiting first), up to max
local max = tonumber(ARGV[2])
local ids = {}
local start = 0
while #ids < max do
  local chunk = redis.call('ZRANGE', KEYS[2], start, start + 999)
  if #chunk == 0 then break end
  local scores = redis.call('ZMSCORE', KEYS[3], unpack(chunk))
  for i, id in ipairs(chunk) do
    if scores[i] == from then
      ids[#ids + 1] = id
      if #ids == max then break end
    end
  end
  start = start + 1000
end
for i = 1, #ids, 500 do
  local last = math.min(i + 499, #ids)
  redis.call('ZREM', KEYS[2], unpack(ids, i, last))
  redis.call('ZREM', KEYS[3], unpack(ids, i, last))
end
local sealing = cjson.encode({ sealedAt = tonumber(ARGV[1]), callsFrom = tonumber(from), ids = ids })
redis.call('SET', KEYS[1], sealing)
return sealing
`;

// KEYS: sealing, pool, batches, batch:<batchId>, unhanded, fence, known:<id>...
// ARGV: batchId, sealedAt, callsFrom, fencing token or '', n, the n ids, then field, value pairs of the batch hash.
// Compare before delete: the sealing registered must be the one in Redis (same sealedAt, bucket and ids, in order).
// A batcher that lost the race (another one registered this sealing and sealed the next) gets STALE and changes
// nothing: deleting the newer sealing would strand its receipts (out of the order zset, in no batch).
const REGISTER = `${fenceCheck(6, 4, "batcher lease")}
local n = tonumber(ARGV[5])
local raw = redis.call('GET', KEYS[1])
if not raw then return redis.error_reply('STALE: no batch is being sealed (it was registered already)') end
local current = cjson.decode(raw)
local ids = current.ids
if type(ids) ~= 'table' then ids = {} end
local same = tonumber(current.sealedAt) == tonumber(ARGV[2]) and tonumber(current.callsFrom) == tonumber(ARGV[3]) and #ids == n
if same then
  for i = 1, n do
    if ids[i] ~= ARGV[5 + i] then same = false; break end
  end
end
if not same then return redis.error_reply('STALE: another batch is being sealed now (sealed at ' .. tostring(current.sealedAt) .. ')') end
for i = 1, n do
  redis.call('SET', KEYS[6 + i], ARGV[1], 'KEEPTTL')
  redis.call('HDEL', KEYS[2], ARGV[5 + i])
end
redis.call('DEL', KEYS[1])
for j = 6 + n, #ARGV, 2 do
  redis.call('HSET', KEYS[4], ARGV[j], ARGV[j + 1])
end
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
return n
`;

declare module "ioredis" {
  interface RedisCommander<Context> {
    agentgptBatcherTake(...args: (string | number)[]): Result<number, Context>;
    agentgptBatcherSeal(...args: (string | number)[]): Result<string | null, Context>;
    agentgptBatcherRegister(...args: (string | number)[]): Result<number, Context>;
  }
}
/** Thrown by register() when the sealing is not the batch being sealed in Redis any more: drop the work, re-read. */
export class StaleSealingError extends Error {
  override readonly name = "StaleSealingError";
}

/** The part of a lease the pool's writes are fenced with: the token taken when it was acquired. */
export interface Fence {
  readonly token: number;
}

/** Runs a pool script, turning its STALE and FENCED refusals into typed errors. */
async function fenced<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (message.startsWith("STALE")) throw new StaleSealingError(`the batch was not registered: ${message}`);
    if (message.startsWith("FENCED")) throw new FencedError(message);
    throw error;
  }
}

export interface Sealing {
  sealedAt: number;
  /** start (unix s) of the usage bucket in which every call of the batch started */
  callsFrom: number;
  ids: string[];
}

export interface RegisteredBatch {
  batchId: string;
  cid: string;
  path: string;
  receipts: number;
  rows: number;
  amount: string;
  /** start (unix s) of the batch's usage bucket */
  callsFrom: number;
  sealedAt: number;
  handedOff: boolean;
}

export interface BatchPoolOptions {
  prefix: string;
  chain: string;
  /** how long a receipt id is remembered after it entered the pool (ms; default 40 days) */
  knownTtlMs?: number;
}

export class BatchPool {
  readonly tag: string;
  private readonly knownTtlMs: number;

  constructor(
    private readonly redis: Redis,
    options: BatchPoolOptions,
  ) {
    this.tag = `{${options.prefix}:batcher:${options.chain}}`;
    this.knownTtlMs = options.knownTtlMs ?? 40 * 86_400_000;
    if (typeof redis.agentgptBatcherTake !== "function") {
      redis.defineCommand("agentgptBatcherTake", { lua: TAKE });
      redis.defineCommand("agentgptBatcherSeal", { lua: SEAL, numberOfKeys: 5 });
      redis.defineCommand("agentgptBatcherRegister", { lua: REGISTER });
    }
  }

  private key(name: string): string {
    return `${this.tag}:${name}`;
  }

  /** The connection the pool writes through (its lease must use the same Redis). */
  get redisConnection(): Redis {
    return this.redis;
  }

  /** The batcher lease of this chain and its fencing counter (same hash tag as the pool: one slot). */
  get leaseKeys(): { key: string; fenceKey: string } {
    return { key: this.key("lease"), fenceKey: this.key("fence") };
  }

  /**
   * Adds receipts not seen before to the pool, each under the usage bucket (`usageBucket` seconds long) in which its
   * call started; returns how many were new. Idempotent by receipt id.
   */
  async take(receipts: readonly Receipt[], usageBucket: number, now = Date.now()): Promise<number> {
    if (receipts.length === 0) return 0;
    const buckets = receipts.map((receipt) => callsFromOf(receipt.startTime, usageBucket)); // throws before any write
    const keys = [this.key("pool"), this.key("order"), this.key("buckets"), ...receipts.map((r) => this.key(`known:${r.id}`))];
    const args: (string | number)[] = [this.knownTtlMs, now, receipts.length];
    receipts.forEach((receipt, i) => args.push(receipt.id, JSON.stringify(receipt), buckets[i]!));
    return this.redis.agentgptBatcherTake(keys.length, ...keys, ...args);
  }

  /** Receipts waiting in the pool, and when the oldest entered it (null when empty). */
  async pending(): Promise<{ count: number; oldestAt: number | null }> {
    const [count, oldest] = await Promise.all([
      this.redis.zcard(this.key("order")),
      this.redis.zrange(this.key("order"), 0, 0, "WITHSCORES"),
    ]);
    return { count, oldestAt: oldest.length === 2 ? Number(oldest[1]) : null };
  }

  /**
   * Takes up to `max` receipts of one usage bucket out of the pool into the batch being sealed: the bucket of the
   * receipt that has waited longest. Returns the batch already being sealed (after a crash) unchanged. Null when
   * there is nothing to seal. `usageBucket` (s) only places receipts pooled before buckets existed.
   */
  async seal(max: number, usageBucket: number, now = Date.now(), fence?: Fence): Promise<Sealing | null> {
    const raw = await fenced(() =>
      this.redis.agentgptBatcherSeal(this.key("sealing"), this.key("order"), this.key("buckets"), this.key("pool"), this.key("fence"), now, max, usageBucket, fence?.token ?? ""),
    );
    if (raw === null) return null;
    const parsed = JSON.parse(raw) as { sealedAt: number; callsFrom?: number; ids: string[] | Record<string, never> };
    if (typeof parsed.callsFrom !== "number") {
      throw new Error(`the batch being sealed (since ${parsed.sealedAt}) was sealed by a batcher without usage buckets: finish it with that version`);
    }
    // cjson encodes an empty table as an object; a sealing always has ids, but stay strict.
    return { sealedAt: parsed.sealedAt, callsFrom: parsed.callsFrom, ids: Array.isArray(parsed.ids) ? parsed.ids : [] };
  }

  /** Every receipt in the pool (the batch being sealed included: its receipts stay here until registered). */
  async pooled(): Promise<Receipt[]> {
    const out = new Map<string, Receipt>(); // HSCAN may return an entry twice while the hash is rehashed
    let cursor = "0";
    do {
      const [next, flat] = await this.redis.hscan(this.key("pool"), cursor, "COUNT", 1000);
      cursor = next;
      for (let i = 0; i + 1 < flat.length; i += 2) out.set(flat[i]!, JSON.parse(flat[i + 1]!) as Receipt);
    } while (cursor !== "0");
    return [...out.values()];
  }

  /** Whether a batch is being sealed (a crash left it half done). */
  async hasSealing(): Promise<boolean> {
    return (await this.redis.exists(this.key("sealing"))) === 1;
  }

  /** The receipts of a sealing, read from the pool (where they stay until the batch is registered). */
  async receiptsOf(sealing: Sealing): Promise<Receipt[]> {
    if (sealing.ids.length === 0) return [];
    const values = await this.redis.hmget(this.key("pool"), ...sealing.ids);
    return values.map((value, i) => {
      if (value === null) throw new Error(`receipt ${sealing.ids[i]} of the sealed batch is missing from the pool`);
      // Written by take() from receipts ingest's queue already validated: parsed, not validated again.
      return JSON.parse(value) as Receipt;
    });
  }

  /**
   * Records the sealed batch: its receipts now belong to `batch.batchId`; it waits to be handed to the settler.
   * Refused with StaleSealingError (nothing written) when `sealing` is not the batch being sealed in Redis any more
   * (another batcher registered it, and maybe sealed the next), and with FencedError when `fence` is stale.
   */
  async register(sealing: Sealing, batch: Omit<RegisteredBatch, "handedOff" | "sealedAt" | "callsFrom">, fence?: Fence): Promise<void> {
    const keys = [
      this.key("sealing"),
      this.key("pool"),
      this.key("batches"),
      this.key(`batch:${batch.batchId}`),
      this.key("unhanded"),
      this.key("fence"),
      ...sealing.ids.map((id) => this.key(`known:${id}`)),
    ];
    const fields: Record<string, string | number> = {
      cid: batch.cid,
      path: batch.path,
      receipts: batch.receipts,
      rows: batch.rows,
      amount: batch.amount,
      callsFrom: sealing.callsFrom,
      sealedAt: sealing.sealedAt,
      handedOff: 0,
    };
    const args: (string | number)[] = [batch.batchId, sealing.sealedAt, sealing.callsFrom, fence?.token ?? "", sealing.ids.length, ...sealing.ids];
    for (const [field, value] of Object.entries(fields)) args.push(field, value);
    await fenced(() => this.redis.agentgptBatcherRegister(keys.length, ...keys, ...args));
  }

  async markHandedOff(batchId: string): Promise<void> {
    await this.redis
      .multi()
      .hset(this.key(`batch:${batchId}`), "handedOff", 1)
      .srem(this.key("unhanded"), batchId)
      .exec();
  }

  async unhanded(): Promise<string[]> {
    return this.redis.smembers(this.key("unhanded"));
  }

  async batch(batchId: string): Promise<RegisteredBatch | null> {
    const fields = await this.redis.hgetall(this.key(`batch:${batchId}`));
    if (fields.cid === undefined) return null;
    return {
      batchId,
      cid: fields.cid,
      path: fields.path ?? "",
      receipts: Number(fields.receipts),
      rows: Number(fields.rows),
      amount: fields.amount ?? "0",
      callsFrom: Number(fields.callsFrom),
      sealedAt: Number(fields.sealedAt),
      handedOff: fields.handedOff === "1",
    };
  }

  /** Registered batch ids, oldest first. */
  async batchIds(from = 0, to = -1): Promise<string[]> {
    return this.redis.zrange(this.key("batches"), from, to);
  }

  /** Where receipt `id` is: "pool", a batch id, or null when never seen (or forgotten after knownTtlMs). */
  async whereIs(id: string): Promise<string | null> {
    return this.redis.get(this.key(`known:${id}`));
  }
}
