/**
 * The Lua scripts that make ingest exactly-once. Each runs atomically in Redis, so a submission is either fully
 * recorded (its dedupe record, and its place in a chunk) or not at all, whatever crashes.
 *
 * Dedupe record `seen:<id>` (TTL dedupe_ttl), one of:
 *   "<fp>|q|<chain>|<chunk>"            queued as a receipt in that chunk
 *   "<fp>|u|<reason>|<record JSON>"     kept as unbillable; the record lives in its dedupe record
 * where <fp> is the 16-hex-digit fingerprint of the call's content. A key seen with another fingerprint is a
 * different call reusing the call id (a client can choose x-litellm-call-id): it is recorded under `key#fp`
 * instead of being dropped as a duplicate, so it cannot ride for free on another call's id.
 *
 * A chunk is a hash: `r` the JSON array of every receipt submitted for its chain in that call (ids = keys),
 * `m` one character per element (1 accepted, 2 accepted under key#fp, 0 duplicate), `d` the fingerprints of the
 * "2" elements ("<index>:<fp>,..."). Readers keep the accepted elements (ReceiptStore.readChunk). Building the
 * array once in JavaScript keeps per-receipt work in Redis to one SET.
 */
import type { Redis, Result } from "ioredis";

/**
 * submit
 * KEYS: [1] stats hash; [2 .. 1+R] unbillable index per reason (ARGV reason order); per chain: pending zset, chunk hash
 * ARGV: [1] now (ms) [2] ttl (s) [3] R [4] C [5] N [6] prefix of dedupe keys ("{p:ingest}:seen:"); R reason names;
 *       per chain: name, chunk id, receipts JSON; then the N entries packed into one string, each
 *       `<kind><group>,<key bytes>,<body bytes>,<fingerprint><key><body>` (see prepared.ts packEntry): kind q or u,
 *       group the chain or reason number (1-based), body "" for q and for u the record JSON without its opening
 *       "{" (the script puts the id in front).
 * The dedupe keys (`seen:<key>`, `seen:<key>#<fp>`) are built here from the prefix rather than declared in KEYS:
 * they share the hash tag of the declared keys, so they are in the same Redis Cluster slot, which is all Redis
 * requires of an undeclared key. Packing keeps a 512-entry call to a dozen arguments.
 * Returns two characters per entry: outcome (Q queued, R queued replacing an unbillable record, U unbillable,
 * D duplicate) and form (b: id is the key, d: id is key#fingerprint).
 */
const SUBMIT = `
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local R = tonumber(ARGV[3])
local C = tonumber(ARGV[4])
local N = tonumber(ARGV[5])
local seenPrefix = ARGV[6]
local reasonKey = {}
for r = 1, R do reasonKey[ARGV[6 + r]] = KEYS[1 + r] end
local chainArg = 6 + R
local chainKey = 1 + R
local packed = ARGV[chainArg + 3 * C + 1]
local p = 1
local masks, derived, accepted = {}, {}, {}
for c = 1, C do masks[c] = {}; derived[c] = {}; accepted[c] = 0 end
local out = {}
local queued, requeued, duplicates, conflicts = 0, 0, 0, 0
local unbillable = {}

local function record(id, body)
  return '{"id":' .. cjson.encode(id) .. ',' .. body
end

-- "|q|<chain>|<chunk>" of each chain, built once: a receipt's dedupe record is its fingerprint and this
local queuedSuffix = {}
for c = 1, C do queuedSuffix[c] = '|q|' .. ARGV[chainArg + 3 * c - 2] .. '|' .. ARGV[chainArg + 3 * c - 1] end

local function fresh(kind, group, id, fp, body)
  if kind == 'q' then
    return fp .. queuedSuffix[group]
  end
  return fp .. '|u|' .. ARGV[6 + group] .. '|' .. record(id, body)
end

for i = 0, N - 1 do
  local kind = string.sub(packed, p, p)
  local c1 = string.find(packed, ',', p + 1, true)
  local c2 = string.find(packed, ',', c1 + 1, true)
  local c3 = string.find(packed, ',', c2 + 1, true)
  local group = tonumber(string.sub(packed, p + 1, c1 - 1))
  local keyEnd = c3 + 16 + tonumber(string.sub(packed, c1 + 1, c2 - 1))
  p = keyEnd + tonumber(string.sub(packed, c2 + 1, c3 - 1)) + 1
  local fp = string.sub(packed, c3 + 1, c3 + 16)
  local key = string.sub(packed, c3 + 17, keyEnd)
  local body = string.sub(packed, keyEnd + 1, p - 1)
  local seenKey, id, form = seenPrefix .. key, key, 'b'
  local old = redis.call('SET', seenKey, fresh(kind, group, id, fp, body), 'NX', 'EX', ttl, 'GET')
  if old and string.sub(old, 1, 16) ~= fp then
    seenKey, id, form = seenPrefix .. key .. '#' .. fp, key .. '#' .. fp, 'd'
    old = redis.call('SET', seenKey, fresh(kind, group, id, fp, body), 'NX', 'EX', ttl, 'GET')
    if not old then conflicts = conflicts + 1 end
  end
  local outcome
  if not old then
    if kind == 'q' then
      outcome = 'Q'
      queued = queued + 1
    else
      outcome = 'U'
      redis.call('ZADD', reasonKey[ARGV[6 + group]], now, id)
      unbillable[ARGV[6 + group]] = (unbillable[ARGV[6 + group]] or 0) + 1
    end
  else
    local oldKind = string.sub(old, 18, 18)
    local oldReason = nil
    if oldKind == 'u' then
      local stop = string.find(old, '|', 20, true)
      oldReason = string.sub(old, 20, stop - 1)
    end
    if kind == 'q' and oldKind == 'u' then
      redis.call('SET', seenKey, fresh(kind, group, id, fp, body), 'EX', ttl)
      if reasonKey[oldReason] then redis.call('ZREM', reasonKey[oldReason], id) end
      outcome = 'R'
      requeued = requeued + 1
    else
      outcome = 'D'
      duplicates = duplicates + 1
      if kind == 'u' and oldKind == 'u' and oldReason ~= ARGV[6 + group] then
        redis.call('SET', seenKey, fresh(kind, group, id, fp, body), 'KEEPTTL')
        if reasonKey[oldReason] then redis.call('ZREM', reasonKey[oldReason], id) end
        redis.call('ZADD', reasonKey[ARGV[6 + group]], now, id)
      end
    end
  end
  if kind == 'q' then
    local mask = masks[group]
    if outcome == 'D' then
      mask[#mask + 1] = '0'
    else
      accepted[group] = accepted[group] + 1
      if form == 'd' then
        mask[#mask + 1] = '2'
        derived[group][#derived[group] + 1] = (#mask - 1) .. ':' .. fp
      else
        mask[#mask + 1] = '1'
      end
    end
  end
  out[i + 1] = outcome .. form
end
for c = 1, C do
  if accepted[c] > 0 then
    local chain, chunk = ARGV[chainArg + 3 * c - 2], ARGV[chainArg + 3 * c - 1]
    redis.call('HSET', KEYS[chainKey + 2 * c], 'r', ARGV[chainArg + 3 * c], 'm', table.concat(masks[c]), 'd', table.concat(derived[c], ','))
    redis.call('ZADD', KEYS[chainKey + 2 * c - 1], now, chunk)
    redis.call('HINCRBY', KEYS[1], 'queued:' .. chain, accepted[c])
    redis.call('HINCRBY', KEYS[1], 'chunks:' .. chain, 1)
  end
end
local horizon = now - ttl * 1000
for r = 1, R do redis.call('ZREMRANGEBYSCORE', KEYS[1 + r], '-inf', '(' .. horizon) end
if queued > 0 then redis.call('HINCRBY', KEYS[1], 'queued', queued) end
if requeued > 0 then redis.call('HINCRBY', KEYS[1], 'requeued', requeued) end
if duplicates > 0 then redis.call('HINCRBY', KEYS[1], 'duplicates', duplicates) end
if conflicts > 0 then redis.call('HINCRBY', KEYS[1], 'conflicts', conflicts) end
for reason, n in pairs(unbillable) do redis.call('HINCRBY', KEYS[1], 'unbillable:' .. reason, n) end
return table.concat(out)
`;

/**
 * ack: the consumer has the chunk durably; forget it.
 * KEYS: [1] chunk [2] pending zset [3] stats. ARGV: [1] chunk id [2] chain. Returns 1 if the chunk existed.
 */
const ACK = `
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('DEL', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[3], 'acked:' .. ARGV[2], 1)
  return 1
end
return 0
`;

export interface IngestCommands {
  agentgptIngestSubmit(numKeys: number, ...keysAndArgs: Array<string | number | Buffer>): Result<string, { type: "default" }>;
  agentgptIngestAck(chunk: string, pending: string, stats: string, chunkId: string, chain: string): Result<number, { type: "default" }>;
}

export type IngestRedis = Redis & IngestCommands;

/** Defines the scripts on `redis` once (idempotent) and returns it typed with them. */
export function withIngestScripts(redis: Redis): IngestRedis {
  const typed = redis as IngestRedis;
  if (typeof typed.agentgptIngestSubmit !== "function") {
    redis.defineCommand("agentgptIngestSubmit", { lua: SUBMIT });
    redis.defineCommand("agentgptIngestAck", { lua: ACK, numberOfKeys: 3 });
  }
  return typed;
}
