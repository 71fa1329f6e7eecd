/**
 * The batcher's durable state in Redis, one chain per instance. Every key shares the hash tag
 * `{<prefix>:batcher:<chain>}` (one Redis Cluster slot), and every step is one Lua script, so a receipt is
 * always in exactly one place: the pool, the batch being sealed, or a registered batch.
 *
 *   <tag>:known:<receiptId>  "pool" or the batch id that holds the receipt; TTL `knownTtlMs` (longer than ingest's
 *                            dedupe window, so a receipt re-delivered by ingest is never batched twice)
 *   <tag>:pool               hash receipt id -> receipt JSON
 *   <tag>:order              zset receipt id -> ms when it entered the pool (oldest first)
 *   <tag>:sealing            JSON {sealedAt, ids} of the batch being sealed (survives a crash: resealed as is)
 *   <tag>:batch:<batchId>    hash: cid, path, receipts, rows, amount, sealedAt, handedOff
 *   <tag>:batches            zset batch id -> sealedAt
 *   <tag>:unhanded           set of registered batch ids not yet handed to the settler
 */
import type { Redis, Result } from "ioredis";

import type { Receipt } from "../queue/index.js";

const TAKE = `
local added = 0
local n = tonumber(ARGV[3])
for i = 1, n do
  local known = KEYS[2 + i]
  local id = ARGV[2 + 2 * i]
  if redis.call('SET', known, 'pool', 'NX', 'PX', ARGV[1]) then
    redis.call('HSET', KEYS[1], id, ARGV[3 + 2 * i])
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    added = added + 1
  end
end
return added
`;

const SEAL = `
local current = redis.call('GET', KEYS[1])
if current then return current end
local ids = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[2]) - 1)
if #ids == 0 then return false end
for i = 1, #ids, 500 do
  redis.call('ZREM', KEYS[2], unpack(ids, i, math.min(i + 499, #ids)))
end
local sealing = cjson.encode({ sealedAt = tonumber(ARGV[1]), ids = ids })
redis.call('SET', KEYS[1], sealing)
return sealing
`;

const REGISTER = `
local n = tonumber(ARGV[3])
for i = 1, n do
  redis.call('SET', KEYS[5 + i], ARGV[1], 'KEEPTTL')
  redis.call('HDEL', KEYS[2], ARGV[3 + i])
end
redis.call('DEL', KEYS[1])
for j = 4 + n, #ARGV, 2 do
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
export interface Sealing {
  sealedAt: number;
  ids: string[];
}

export interface RegisteredBatch {
  batchId: string;
  cid: string;
  path: string;
  receipts: number;
  rows: number;
  amount: string;
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
      redis.defineCommand("agentgptBatcherSeal", { lua: SEAL, numberOfKeys: 2 });
      redis.defineCommand("agentgptBatcherRegister", { lua: REGISTER });
    }
  }

  private key(name: string): string {
    return `${this.tag}:${name}`;
  }

  /** Adds receipts not seen before to the pool; returns how many were new. Idempotent by receipt id. */
  async take(receipts: readonly Receipt[], now = Date.now()): Promise<number> {
    if (receipts.length === 0) return 0;
    const keys = [this.key("pool"), this.key("order"), ...receipts.map((r) => this.key(`known:${r.id}`))];
    const args: (string | number)[] = [this.knownTtlMs, now, receipts.length];
    for (const receipt of receipts) args.push(receipt.id, JSON.stringify(receipt));
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
   * Takes up to `max` of the oldest receipts out of the pool into the batch being sealed, or returns the batch
   * already being sealed (after a crash) unchanged. Null when there is nothing to seal.
   */
  async seal(max: number, now = Date.now()): Promise<Sealing | null> {
    const raw = await this.redis.agentgptBatcherSeal(this.key("sealing"), this.key("order"), now, max);
    if (raw === null) return null;
    const parsed = JSON.parse(raw) as { sealedAt: number; ids: string[] | Record<string, never> };
    // cjson encodes an empty table as an object; a sealing always has ids, but stay strict.
    return { sealedAt: parsed.sealedAt, ids: Array.isArray(parsed.ids) ? parsed.ids : [] };
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

  /** Records the sealed batch: its receipts now belong to `batch.batchId`; it waits to be handed to the settler. */
  async register(sealing: Sealing, batch: Omit<RegisteredBatch, "handedOff" | "sealedAt">): Promise<void> {
    const keys = [
      this.key("sealing"),
      this.key("pool"),
      this.key("batches"),
      this.key(`batch:${batch.batchId}`),
      this.key("unhanded"),
      ...sealing.ids.map((id) => this.key(`known:${id}`)),
    ];
    const fields: Record<string, string | number> = {
      cid: batch.cid,
      path: batch.path,
      receipts: batch.receipts,
      rows: batch.rows,
      amount: batch.amount,
      sealedAt: sealing.sealedAt,
      handedOff: 0,
    };
    const args: (string | number)[] = [batch.batchId, sealing.sealedAt, sealing.ids.length, ...sealing.ids];
    for (const [field, value] of Object.entries(fields)) args.push(field, value);
    await this.redis.agentgptBatcherRegister(keys.length, ...keys, ...args);
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
