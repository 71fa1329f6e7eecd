/**
 * The batcher's durable state in Redis, one chain per instance. The short-lived state shares the hash tag
 * `{<prefix>:batcher:<chain>}` (one Redis Cluster slot) and every step on it is one Lua script, so a receipt is
 * always in exactly one place: the pool, the batch being sealed, or a registered batch. What a receipt id was billed
 * in is remembered for `knownTtlMs` (40 days) in two tiers: the chain's slot while the receipt is pooled and for a
 * grace `G` (`graceMs`, default 1 hour) after its batch was registered, then only in the long tier, spread over
 * BILLED_SHARDS hash tags (at a million calls a day, 40 days of ids are 40M keys: not one slot on one master).
 *
 *   <tag>:known:<receiptId>  "pool" or the batch id that holds the receipt; TTL `knownTtlMs` from the take, cut to G
 *                            once the batch's ids are in the long tier (records of an earlier version keep their 40
 *                            days: they still block a re-take)
 *   <tag>:pool               hash receipt id -> receipt JSON
 *   <tag>:order              zset receipt id -> ms when it entered the pool (oldest first)
 *   <tag>:buckets            zset receipt id -> callsFrom: start (unix s) of the usage bucket in which its call started
 *   <tag>:sealing            JSON {sealedAt, callsFrom, ids} of the batch being sealed (survives a crash: resealed
 *                            as is)
 *   <tag>:batch:<batchId>    hash: cid, path, receipts, rows, amount, callsFrom, sealedAt, handedOff
 *   <tag>:batches            zset batch id -> sealedAt
 *   <tag>:unhanded           set of registered batch ids not yet handed to the settler
 *   <tag>:ids:<batchId>      list of a registered batch's receipt ids, until they are in the long tier
 *   <tag>:unarchived         set of registered batch ids whose ids are not yet in the long tier (a crash between
 *                            register and the copy leaves one here: the lease holder finishes it at its next tick)
 *   <tag>:lease, <tag>:fence the batcher lease of this chain and its fencing counter (relayer/settler/lease.ts):
 *                            seal() and register() given the holder's token refuse to write once another batcher
 *                            took the lease over
 * and in the long tier, n = FNV-1a(receiptId) % BILLED_SHARDS:
 *   {<prefix>:batcher:<chain>:<n>}:billed:<receiptId>   the batch id; TTL `knownTtlMs` from the copy
 *
 * The attack: if a line that decides "not seen before" is wrong, a receipt re-delivered by ingest (a BullMQ retry, a
 * chunk recovered after a crash, a stalled job run twice) is taken into the pool again after its first copy was
 * batched, and its payer is charged twice, on-chain and final. The provider paid for the call gains the second
 * charge; anyone able to make ingest re-deliver (crash or stall a worker mid-chunk) can trigger it at will.
 *
 * Exactly once across the two tiers. take() is two steps: step 0 reads Redis TIME of the chain's slot (s0), then
 * looks every id up in the long tier and drops those billed; TAKE (one script in the chain's slot) refuses to run
 * when its own Redis TIME is more than G/2 after s0 (the caller retries from step 0), and takes an id only if
 * `SET known NX` succeeds. Archiving a batch copies its ids into the long tier first and only after every copy is
 * acknowledged cuts their short records to G (one script, chain slot, at time a >= the copy). Take a copy of a
 * receipt that was batched (in batch B). If step 0 did not find it in the long tier, the lookup ran before B's copy
 * of it (or after `knownTtlMs`: forgotten, as in every version), so s0 < a. Its short record lives until a + G at
 * least (before the archive it has `knownTtlMs`), and TAKE ran at t <= s0 + G/2 < a + G: the record is there, SET NX
 * fails, the copy is not taken. If step 0 found it, it is dropped. Either way it is not pooled again. The G/2 margin
 * (rather than G) absorbs a difference up to G/2 between the clocks of the slot's master and a replica promoted in
 * between (a TTL is an absolute time on the master that holds it); NTP keeps them within milliseconds.
 * G must exceed the batcher lease's takeover time (Batcher checks it): correctness holds for any G, but a take whose
 * two steps are more than G/2 apart is refused, and a pause the fleet already rides out (a holder paused until the
 * takeover, a failover of the slot's master) must not make every take refuse.
 *
 * Two batchers on one chain (a fleet, or a standby that took over from a paused holder): register() compares the
 * sealing it registers with the one in Redis before deleting it, and refuses a stale one (StaleSealingError) without
 * writing: it cannot strand the receipts of a sealing another batcher made meanwhile. Archiving is idempotent (the
 * same copies, then records cut only if they still name the batch and live longer than G): two batchers may both
 * run it for one batch.
 * A batch holds the receipts of one usage bucket only: sealing takes the bucket of the receipt that has waited
 * longest and up to `max` receipts of that bucket, longest waiting first (it walks the order zset a thousand at a
 * time, with ZMSCORE: Redis 6.2 or newer). Receipts of other buckets (a backfill, a late delivery, the next
 * hour) stay in the pool and are sealed as batches of their own bucket, each in turn.
 */
import { Cluster, type Redis, type Result } from "ioredis";

import type { Receipt } from "../queue/index.js";
import { fenceCheck, FencedError } from "../settler/lease.js";
import { fnv1a } from "../queue/keys.js";
import { callsFromOf } from "./usage-bucket.js";

// KEYS: pool, order, buckets, known:<id>...
// ARGV: knownTtlMs, now, n, step0 (Redis ms of take()'s step 0), maxAge (G/2), then id, receipt JSON, callsFrom per
// receipt. Refuses (LATE, nothing written) when more than maxAge passed since step 0 (see the header's argument).
const TAKE = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local age = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[4])
if age > tonumber(ARGV[5]) then
  return redis.error_reply('LATE: ' .. tostring(age) .. ' ms since the long-tier lookup, more than ' .. ARGV[5])
end
local added = 0
local n = tonumber(ARGV[3])
for i = 1, n do
  local known = KEYS[3 + i]
  local id = ARGV[3 + 3 * i]
  if redis.call('SET', known, 'pool', 'NX', 'PX', ARGV[1]) then
    redis.call('HSET', KEYS[1], id, ARGV[4 + 3 * i])
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    redis.call('ZADD', KEYS[3], ARGV[5 + 3 * i], id)
    added = added + 1
  end
end
return added
`;

// KEYS: any key of the chain's slot (routes the call). Redis TIME of that slot's master, epoch ms.
const NOW = `
local t = redis.call('TIME')
return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

// KEYS: billed:<id>... (one long-tier shard: one slot); ARGV: batchId, knownTtlMs. Idempotent.
const BILL = `
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
end
return #KEYS
`;

// KEYS: ids:<batchId>, unarchived, known:<id>...; ARGV: batchId, graceMs.
// Run only once every id of the batch is in the long tier. Cuts a short record to G only if it still names the batch
// and would live longer (never lengthens one), then forgets the batch's id list. Idempotent.
const ARCHIVED = `
local grace = tonumber(ARGV[2])
for i = 3, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl == -1 or ttl > grace then redis.call('PEXPIRE', KEYS[i], grace) end
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return #KEYS - 2
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

// KEYS: sealing, pool, batches, batch:<batchId>, unhanded, fence, ids:<batchId>, unarchived, known:<id>...
// ARGV: batchId, sealedAt, callsFrom, fencing token or '', n, the n ids, then field, value pairs of the batch hash.
// The batch's ids are kept (ids:<batchId>, and the batch in unarchived) until they are copied to the long tier.
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
  redis.call('SET', KEYS[8 + i], ARGV[1], 'KEEPTTL')
  redis.call('HDEL', KEYS[2], ARGV[5 + i])
end
redis.call('DEL', KEYS[7])
for i = 1, n, 500 do
  redis.call('RPUSH', KEYS[7], unpack(ARGV, 5 + i, 5 + math.min(i + 499, n)))
end
redis.call('SADD', KEYS[8], ARGV[1])
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
    agentgptBatcherNow(key: string): Result<number, Context>;
    agentgptBatcherBill(...args: (string | number)[]): Result<number, Context>;
    agentgptBatcherArchived(...args: (string | number)[]): Result<number, Context>;
  }
}

/**
 * Hash tags of the long tier. Always spread, on a single Redis too: one code path (the one tested on the local Redis
 * is the one a Cluster runs), nothing to migrate when moving to a Cluster, and no count to record and check, since
 * it is a constant (changing it would hide the records written under the old count: a re-delivery billed twice).
 * 256 tags keep any slot under about 0.4 % of 40 days of ids.
 */
export const BILLED_SHARDS = 256;

/** Default grace G: how long a batch's ids stay in the chain's slot after they are copied to the long tier. */
export const DEFAULT_GRACE_MS = 3_600_000;

/** take() retries from step 0 this many times when TAKE refuses a stale step 0 (LateTakeError) */
const TAKE_ATTEMPTS = 3;

/** Thrown by takeUnbilled() (and by take() after its retries) when more than G/2 passed since step 0. */
export class LateTakeError extends Error {
  override readonly name = "LateTakeError";
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
    if (message.startsWith("LATE")) throw new LateTakeError(`the take was refused: ${message}`);
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
  /**
   * G: how long a batch's ids stay in the chain's slot once they are in the long tier (ms; default 1 hour). Must be
   * above the batcher lease's takeover time (see the header); a take whose lookup is older than G/2 is retried.
   */
  graceMs?: number;
}

export class BatchPool {
  readonly tag: string;
  readonly graceMs: number;
  private readonly knownTtlMs: number;
  private readonly longTags: readonly string[];

  constructor(
    private readonly redis: Redis,
    options: BatchPoolOptions,
  ) {
    this.tag = `{${options.prefix}:batcher:${options.chain}}`;
    this.knownTtlMs = options.knownTtlMs ?? 40 * 86_400_000;
    this.graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
    if (!(Number.isSafeInteger(this.graceMs) && this.graceMs >= 2)) throw new RangeError(`batch pool ${this.tag}: graceMs must be an integer of at least 2 ms, got ${this.graceMs}`);
    this.longTags = Array.from({ length: BILLED_SHARDS }, (_, n) => `{${options.prefix}:batcher:${options.chain}:${n}}`);
    if (typeof redis.agentgptBatcherArchived !== "function") {
      redis.defineCommand("agentgptBatcherTake", { lua: TAKE });
      redis.defineCommand("agentgptBatcherSeal", { lua: SEAL, numberOfKeys: 5 });
      redis.defineCommand("agentgptBatcherRegister", { lua: REGISTER });
      redis.defineCommand("agentgptBatcherNow", { lua: NOW, numberOfKeys: 1 });
      redis.defineCommand("agentgptBatcherBill", { lua: BILL });
      redis.defineCommand("agentgptBatcherArchived", { lua: ARCHIVED });
    }
  }

  /** The long-tier key of a receipt id: `{<prefix>:batcher:<chain>:<n>}:billed:<id>`, n = FNV-1a(id) % BILLED_SHARDS. */
  billedKey(id: string): string {
    return `${this.longTags[fnv1a(id) % BILLED_SHARDS]!}:billed:${id}`;
  }

  /**
   * Ids grouped by long-tier shard: the keys of one group are in one slot (one MGET, one script). On a single Redis,
   * where slots do not matter, all of them in one group: one command instead of up to 256 per take.
   */
  private byShard(ids: readonly string[]): Map<number, string[]> {
    if (!(this.redis instanceof Cluster)) return ids.length === 0 ? new Map() : new Map([[0, [...ids]]]);
    const out = new Map<number, string[]>();
    for (const id of ids) {
      const shard = fnv1a(id) % BILLED_SHARDS;
      const list = out.get(shard);
      if (list === undefined) out.set(shard, [id]);
      else list.push(id);
    }
    return out;
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
   * call started; returns how many were new. Idempotent by receipt id. Step 0 (Redis time, then the long tier), then
   * TAKE; a TAKE refused because step 0 is older than G/2 is retried from step 0.
   */
  async take(receipts: readonly Receipt[], usageBucket: number, now = Date.now()): Promise<number> {
    if (receipts.length === 0) return 0;
    for (const receipt of receipts) callsFromOf(receipt.startTime, usageBucket); // throws before any read or write
    for (let attempt = 1; ; attempt++) {
      // the time first: an id not in the long tier now was not copied there before this time (header)
      const step0 = await this.redisTime();
      const billed = await this.billed(receipts.map((receipt) => receipt.id));
      const unbilled = receipts.filter((_, i) => billed[i] === null);
      try {
        return await this.takeUnbilled(unbilled, usageBucket, step0, now);
      } catch (error) {
        if (!(error instanceof LateTakeError) || attempt >= TAKE_ATTEMPTS) throw error;
      }
    }
  }

  /**
   * TAKE, the second step of take(): `receipts` must be those step 0 did not find in the long tier, looked up after
   * Redis time `step0` (redisTime()). Throws LateTakeError, writing nothing, when more than G/2 passed since step0.
   */
  async takeUnbilled(receipts: readonly Receipt[], usageBucket: number, step0: number, now = Date.now()): Promise<number> {
    if (receipts.length === 0) return 0;
    const buckets = receipts.map((receipt) => callsFromOf(receipt.startTime, usageBucket)); // throws before any write
    const keys = [this.key("pool"), this.key("order"), this.key("buckets"), ...receipts.map((r) => this.key(`known:${r.id}`))];
    const args: (string | number)[] = [this.knownTtlMs, now, receipts.length, step0, Math.floor(this.graceMs / 2)];
    receipts.forEach((receipt, i) => args.push(receipt.id, JSON.stringify(receipt), buckets[i]!));
    return fenced(() => this.redis.agentgptBatcherTake(keys.length, ...keys, ...args));
  }

  /** Redis TIME of the chain's slot (its master), epoch ms: the clock TAKE checks step 0 against. */
  async redisTime(): Promise<number> {
    return Number(await this.redis.agentgptBatcherNow(this.key("pool")));
  }

  /** The batch id each of `ids` is billed in according to the long tier (null: not there), in order. */
  async billed(ids: readonly string[]): Promise<Array<string | null>> {
    const found = new Map<string, string | null>();
    // one MGET per shard: its keys share a tag, so on a Cluster each MGET goes to one slot (they run in parallel)
    await Promise.all(
      [...this.byShard(ids)].map(async ([, group]) => {
        const values = await this.redis.mget(...group.map((id) => this.billedKey(id)));
        group.forEach((id, i) => found.set(id, values[i] ?? null));
      }),
    );
    return ids.map((id) => found.get(id) ?? null);
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
      this.key(`ids:${batch.batchId}`),
      this.key("unarchived"),
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
    return (await this.redis.get(this.key(`known:${id}`))) ?? (await this.redis.get(this.billedKey(id)));
  }

  /** Registered batches whose ids are not yet in the long tier (a crash between register and archiveKnown). */
  async unarchived(): Promise<string[]> {
    return this.redis.smembers(this.key("unarchived"));
  }

  /**
   * Moves a registered batch's ids to the long tier: copies them (one script per shard, idempotent), then, only once
   * every copy is acknowledged, cuts their records in the chain's slot to G and forgets the batch's id list. Safe to
   * run again, or by two batchers at once; a no-op for a batch already archived. Returns the ids copied.
   */
  async archiveKnown(batchId: string): Promise<number> {
    const ids = await this.redis.lrange(this.key(`ids:${batchId}`), 0, -1);
    await Promise.all(
      [...this.byShard(ids)].map(([, group]) =>
        this.redis.agentgptBatcherBill(group.length, ...group.map((id) => this.billedKey(id)), batchId, this.knownTtlMs),
      ),
    );
    // one script for the whole batch, as REGISTER (a batch has at most batcher.max_receipts ids)
    const keys = [this.key(`ids:${batchId}`), this.key("unarchived"), ...ids.map((id) => this.key(`known:${id}`))];
    await this.redis.agentgptBatcherArchived(keys.length, ...keys, batchId, this.graceMs);
    return ids.length;
  }
}
