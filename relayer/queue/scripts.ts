/**
 * The Lua scripts that make ingest exactly-once. Each runs atomically in Redis, so a receipt is either fully
 * recorded (dedupe record + chunk, or dedupe record + unbillable record) or not at all, whatever crashes.
 */
import type { Redis, Result } from "ioredis";

/**
 * submit: dedupe and store one batch of submissions.
 *
 * KEYS: [1] stats hash; [2 .. 1+R] unbillable index per reason (ARGV reason order);
 *       per chain c: pending zset, chunk key; per entry: seen(key), seen(key#fp), unb(key), unb(key#fp)
 * ARGV: [1] now (ms) [2] ttl (s) [3] R [4] C [5] N; R reason names; per chain: name, chunk id;
 *       per entry: kind ("q" receipt | "u" unbillable), group (chain or reason number, 1-based), key,
 *       fingerprint (16 hex), body (the JSON object without its opening "{"; the script puts the id in front)
 * Returns two characters per entry: outcome (Q queued, R queued replacing an unbillable record, U unbillable,
 * D duplicate) and form (b: id is the key, d: id is key#fingerprint because the key was taken by another call).
 *
 * A dedupe record is "<fp>|q|<chain>|<chunk>" or "<fp>|u|<reason>". A key seen with another fingerprint is a
 * different call that reuses the call id (a client can choose x-litellm-call-id): it is recorded under
 * key#fp instead of being dropped as a duplicate, so it cannot ride for free on another call's id.
 */
const SUBMIT = `
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local R = tonumber(ARGV[3])
local C = tonumber(ARGV[4])
local N = tonumber(ARGV[5])
local reasonKey = {}
for r = 1, R do reasonKey[ARGV[5 + r]] = KEYS[1 + r] end
local chainArg = 5 + R
local chainKey = 1 + R
local entryArg = chainArg + 2 * C
local entryKey = chainKey + 2 * C
local parts = {}
for c = 1, C do parts[c] = {} end
local out = {}
local queued, requeued, duplicates, conflicts = 0, 0, 0, 0
local unbillable = {}
for i = 0, N - 1 do
  local a = entryArg + 5 * i
  local kind = ARGV[a + 1]
  local group = tonumber(ARGV[a + 2])
  local key = ARGV[a + 3]
  local fp = ARGV[a + 4]
  local body = ARGV[a + 5]
  local k = entryKey + 4 * i
  local seenKey, unbKey, id, form = KEYS[k + 1], KEYS[k + 3], key, 'b'
  local seen = redis.call('GET', seenKey)
  if seen and string.sub(seen, 1, 16) ~= fp then
    seenKey, unbKey, id, form = KEYS[k + 2], KEYS[k + 4], key .. '#' .. fp, 'd'
    seen = redis.call('GET', seenKey)
    if not seen then conflicts = conflicts + 1 end
  end
  local prevKind, prevRest = false, false
  if seen then
    prevKind = string.sub(seen, 18, 18)
    prevRest = string.sub(seen, 20)
  end
  local head = '{"id":' .. cjson.encode(id) .. ','
  local outcome
  if kind == 'q' then
    if prevKind == 'q' then
      outcome = 'D'
      duplicates = duplicates + 1
    else
      if prevKind == 'u' then
        redis.call('DEL', unbKey)
        local index = reasonKey[prevRest]
        if index then redis.call('ZREM', index, id) end
        outcome = 'R'
        requeued = requeued + 1
      else
        outcome = 'Q'
        queued = queued + 1
      end
      local chain = ARGV[chainArg + 2 * group - 1]
      local chunk = ARGV[chainArg + 2 * group]
      redis.call('SET', seenKey, fp .. '|q|' .. chain .. '|' .. chunk, 'EX', ttl)
      local p = parts[group]
      p[#p + 1] = head .. body
    end
  else
    local reason = ARGV[5 + group]
    if prevKind then
      outcome = 'D'
      duplicates = duplicates + 1
      if prevKind == 'u' and prevRest ~= reason then
        redis.call('SET', seenKey, fp .. '|u|' .. reason, 'KEEPTTL')
        redis.call('SET', unbKey, head .. body, 'KEEPTTL')
        local index = reasonKey[prevRest]
        if index then redis.call('ZREM', index, id) end
        redis.call('ZADD', reasonKey[reason], now, id)
      end
    else
      outcome = 'U'
      redis.call('SET', seenKey, fp .. '|u|' .. reason, 'EX', ttl)
      redis.call('SET', unbKey, head .. body, 'EX', ttl)
      redis.call('ZADD', reasonKey[reason], now, id)
      unbillable[reason] = (unbillable[reason] or 0) + 1
    end
  end
  out[#out + 1] = outcome .. form
end
for c = 1, C do
  local p = parts[c]
  if #p > 0 then
    local chain = ARGV[chainArg + 2 * c - 1]
    redis.call('SET', KEYS[chainKey + 2 * c], '[' .. table.concat(p, ',') .. ']')
    redis.call('ZADD', KEYS[chainKey + 2 * c - 1], now, ARGV[chainArg + 2 * c])
    redis.call('HINCRBY', KEYS[1], 'queued:' .. chain, #p)
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
  agentgptIngestSubmit(numKeys: number, ...keysAndArgs: Array<string | number>): Result<string, { type: "default" }>;
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
