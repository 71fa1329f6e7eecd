/**
 * The Lua scripts that make ingest exactly-once. Each runs atomically in Redis, so a submission is either fully
 * recorded (its dedupe record, and its place in a chunk) or not at all, whatever crashes.
 *
 * The identity of a call (see DESIGN "exactly once" and README "Ingest"): LiteLLM's id (the key; it is also the
 * request_id of LiteLLM's own spend record) and the call's start time, to the millisecond, within 1 ms (LiteLLM's
 * logger sends a float of seconds, its database keeps milliseconds). Two logs with the same key and start time are
 * logs of one call: with the same fingerprint (usage, status and cost, see ingest's fingerprint.ts) the later one is
 * a duplicate; with another fingerprint they disagree, and one of them is billed by this rule:
 *   the first log recorded for a call is the one that counts, except that a billable log replaces an unbillable
 *   one (nothing was billed yet); the log that does not count is kept in the conflicts set, never billed.
 * A log with the same key but another start time is another call reusing the id (a client can choose
 * x-litellm-call-id): it is recorded and billed under `<key>#<start ms>`.
 *
 * Dedupe record `seen:<id>` (TTL dedupe_ttl), one of:
 *   "<fp>|<start ms>|q|<chain>|<chunk>"          queued as a receipt in that chunk
 *   "<fp>|<start ms>|u|<reason>|<record JSON>"   kept as unbillable; the record lives in its dedupe record
 * where <fp> is the 16-hex-digit fingerprint and <start ms> may be empty (no start time given).
 *
 * A chunk is a hash: `r` every receipt submitted for its chain in that call, as rows under a header (ids = keys; see
 * receipt-rows.ts), or, on the single layout, the marker "@rows": the rows are then the string `<chunk key>:rows`,
 * written by a plain SET just before the submit script (Redis keeps a SET's argument as the value; a script's argument
 * is copied into Lua and again into the hash: for the 270 KB of a 512-log POST that was 1.5 ms of the script's 3.8, and
 * 0.8 ms of Redis CPU per POST). An earlier reader takes the marker for rows, fails to parse it and retries: it never
 * reads such a chunk as empty. `m` one character per element (1 accepted, 2 accepted under a derived id, 0 duplicate
 * or conflict), `d` the id suffixes of the "2" elements ("<index>:<start ms>,..."). Readers keep the accepted elements
 * (ReceiptStore.readChunk). Building the array once in JavaScript keeps per-receipt work in Redis to one SET.
 */
import type { Result } from "ioredis";

import { CHUNK_ROWS_SUFFIX } from "./keys.js";
import type { RedisClient } from "./redis-connection.js";

/** A chunk hash's `r` when its receipts are in `<chunk key>:rows` (see above). Not JSON, on purpose. */
export const CHUNK_ROWS_MARKER = "@rows";

/**
 * submit
 * KEYS: [1] stats hash; [2 .. 1+R] unbillable index per reason (ARGV reason order); per chain: pending zset, chunk hash
 * ARGV: [1] now (ms) [2] ttl (s) [3] R [4] C [5] N [6] prefix of dedupe keys ("{p:ingest}:seen:") [7] conflicts
 *       zset; R reason names; per chain: name, chunk id, "" (not staged: the receipts are in `<chunk key>:rows`, set
 *       with a short TTL just before; the script refuses, writing nothing, when one is missing, makes it permanent when
 *       the chunk holds an accepted receipt and deletes it otherwise); then the N entries packed into one string,
 *       each `<kind><group>,<key bytes>,<body bytes>,<start ms>,<fingerprint><key><body>` (see prepared.ts
 *       packEntry): kind q or u, group the chain or reason number (1-based), start ms possibly empty, body "" for q
 *       and for u the record JSON without its opening "{" (the script puts the id in front).
 * [8 + R + 3C + 1] optional deadline (epoch ms, Redis time): given, the script runs staged (Cluster, one shard of a
 * POST, see receipt-store.ts): it refuses to run past the deadline ("EXPIRED", nothing written), writes no chunk
 * (COMMIT does), reads its own earlier write of a record (a re-sent script) as queued, and reports conflicting
 * receipts for COMMIT to record, and it returns { outcomes, { "<entry index>|<kept fp>|<kept kind>", ... } }.
 * On a single Redis the dedupe keys and the conflicts set are not declared in KEYS: they share the hash tag of the
 * declared keys (one slot), and packing keeps a 512-entry call to a dozen arguments. Staged on a Cluster, the
 * caller appends every key the script may touch (conflicts set, each entry's seen key and its three key#start
 * forms) to KEYS: all in the shard's tag.
 * Returns two characters per entry: outcome (Q queued, R queued replacing an unbillable record, U unbillable,
 * D duplicate, C conflict: another log of a call already recorded, kept apart and not billed) and form (b: id is
 * the key, d: id is key#start, m: key#(start - 1), p: key#(start + 1)).
 */
const SUBMIT = `
local now = tonumber(ARGV[1])
local C0 = tonumber(ARGV[4])
local deadline = ARGV[8 + tonumber(ARGV[3]) + 3 * C0 + 1]
local staged = deadline ~= nil and deadline ~= ''
if staged then
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(deadline) then return 'EXPIRED' end
end
local xs = {}
local ttl = tonumber(ARGV[2])
local R = tonumber(ARGV[3])
local C = tonumber(ARGV[4])
local N = tonumber(ARGV[5])
local seenPrefix = ARGV[6]
local conflictsKey = ARGV[7]
local reasonKey = {}
for r = 1, R do reasonKey[ARGV[7 + r]] = KEYS[1 + r] end
local chainArg = 7 + R
local chainKey = 1 + R
local packed = ARGV[chainArg + 3 * C + 1]
local p = 1
-- not staged: each chain's receipts were set at <chunk key>:rows just before; without them nothing is written
local rowsKey = {}
if not staged then
  for c = 1, C do
    rowsKey[c] = KEYS[chainKey + 2 * c] .. '${CHUNK_ROWS_SUFFIX}'
    if redis.call('EXISTS', rowsKey[c]) == 0 then return redis.error_reply('NOROWS the receipts of chunk ' .. ARGV[chainArg + 3 * c - 1] .. ' are not in Redis') end
  end
end
local masks, derived, accepted, decoded = {}, {}, {}, {}
for c = 1, C do masks[c] = {}; derived[c] = {}; accepted[c] = 0 end
local out = {}
local queued, requeued, duplicates, reused, conflicts = 0, 0, 0, 0, 0
local unbillable = {}

local function record(id, body)
  return '{"id":' .. cjson.encode(id) .. ',' .. body
end

-- "|q|<chain>|<chunk>" of each chain, built once
local queuedSuffix = {}
for c = 1, C do queuedSuffix[c] = '|q|' .. ARGV[chainArg + 3 * c - 2] .. '|' .. ARGV[chainArg + 3 * c - 1] end

local function fresh(kind, group, id, fp, startText, body)
  if kind == 'q' then
    return fp .. '|' .. startText .. queuedSuffix[group]
  end
  return fp .. '|' .. startText .. '|u|' .. ARGV[7 + group] .. '|' .. record(id, body)
end

-- a dedupe record: fingerprint, start ms (nil if none), kind, index where its reason/chain starts. A record written
-- before start times were kept ("<fp>|q|..." or "<fp>|u|...") reads as a call of unknown start time.
local function parse(old)
  local k = string.sub(old, 18, 18)
  if (k == 'q' or k == 'u') and string.sub(old, 19, 19) == '|' then
    return string.sub(old, 1, 16), nil, k, 20
  end
  local bar = string.find(old, '|', 18, true)
  return string.sub(old, 1, 16), tonumber(string.sub(old, 18, bar - 1)), string.sub(old, bar + 1, bar + 1), bar + 3
end

local function sameCall(a, b)
  if a == nil or b == nil then return true end
  return math.abs(a - b) <= 1
end

local function keepConflict(id, startText, keptFp, keptKind, otherFp, otherKind, otherRecord)
  redis.call('ZADD', conflictsKey, now, '{"id":' .. cjson.encode(id) .. ',"startTime":' .. (startText == '' and 'null' or startText) ..
    ',"kept":{"fingerprint":"' .. keptFp .. '","kind":"' .. keptKind .. '"},"other":{"fingerprint":"' .. otherFp ..
    '","kind":"' .. otherKind .. '","record":' .. otherRecord .. '}}')
  conflicts = conflicts + 1
end

local KIND = { q = 'receipt', u = 'unbillable' }

for i = 0, N - 1 do
  local kind = string.sub(packed, p, p)
  local c1 = string.find(packed, ',', p + 1, true)
  local c2 = string.find(packed, ',', c1 + 1, true)
  local c3 = string.find(packed, ',', c2 + 1, true)
  local c4 = string.find(packed, ',', c3 + 1, true)
  local group = tonumber(string.sub(packed, p + 1, c1 - 1))
  local startText = string.sub(packed, c3 + 1, c4 - 1)
  local start = tonumber(startText)
  local keyEnd = c4 + 16 + tonumber(string.sub(packed, c1 + 1, c2 - 1))
  p = keyEnd + tonumber(string.sub(packed, c2 + 1, c3 - 1)) + 1
  local fp = string.sub(packed, c4 + 1, c4 + 16)
  local key = string.sub(packed, c4 + 17, keyEnd)
  local body = string.sub(packed, keyEnd + 1, p - 1)
  local seenKey, id, form = seenPrefix .. key, key, 'b'
  local old = redis.call('SET', seenKey, fresh(kind, group, id, fp, startText, body), 'NX', 'EX', ttl, 'GET')
  if old then
    local _, oldStart = parse(old)
    if not sameCall(oldStart, start) then
      -- another call reusing the key: its own record, under key#start (probing 1 ms either side)
      form, old = 'd', nil
      for probe, t in ipairs({ start, start - 1, start + 1 }) do
        local value = redis.call('GET', seenPrefix .. key .. '#' .. t)
        if value then
          seenKey, id, old, form = seenPrefix .. key .. '#' .. t, key .. '#' .. t, value, string.sub('dmp', probe, probe)
          break
        end
      end
      if not old then
        seenKey, id = seenPrefix .. key .. '#' .. start, key .. '#' .. start
        redis.call('SET', seenKey, fresh(kind, group, id, fp, startText, body), 'EX', ttl)
        reused = reused + 1
      end
    end
  end
  if old and staged and old == fresh(kind, group, id, fp, startText, body) then
    -- this very script ran before (re-sent after a lost reply): the record is ours
    old = nil
  end
  local outcome
  if not old then
    if kind == 'q' then
      outcome = 'Q'
      queued = queued + 1
    else
      outcome = 'U'
      redis.call('ZADD', reasonKey[ARGV[7 + group]], now, id)
      unbillable[ARGV[7 + group]] = (unbillable[ARGV[7 + group]] or 0) + 1
    end
  else
    local oldFp, _, oldKind, at = parse(old)
    local oldReason, oldRecord = nil, nil
    if oldKind == 'u' then
      local stop = string.find(old, '|', at, true)
      oldReason = string.sub(old, at, stop - 1)
      oldRecord = string.sub(old, stop + 1)
    end
    if kind == 'q' and oldKind == 'u' then
      redis.call('SET', seenKey, fresh(kind, group, id, fp, startText, body), 'EX', ttl)
      if reasonKey[oldReason] then redis.call('ZREM', reasonKey[oldReason], id) end
      outcome = 'R'
      requeued = requeued + 1
      if oldFp ~= fp then keepConflict(id, startText, fp, 'receipt', oldFp, 'unbillable', oldRecord) end
    elseif oldFp ~= fp and staged and kind == 'q' then
      -- the receipt is in the staged chunk, on another shard: COMMIT records the conflict
      outcome = 'C'
      conflicts = conflicts + 1
      xs[#xs + 1] = i .. '|' .. oldFp .. '|' .. KIND[oldKind]
    elseif oldFp ~= fp then
      outcome = 'C'
      local other
      if kind == 'q' then
        -- the receipt as an object: its row (after the header row) named by the header
        if decoded[group] == nil then decoded[group] = cjson.decode(redis.call('GET', rowsKey[group])) end
        local header, row, element = decoded[group][1], decoded[group][#masks[group] + 2], {}
        for f = 1, #header do element[header[f]] = row[f] end
        element['id'] = id
        other = cjson.encode(element)
      else
        other = record(id, body)
      end
      keepConflict(id, startText, oldFp, KIND[oldKind], fp, KIND[kind], other)
    else
      outcome = 'D'
      duplicates = duplicates + 1
      if kind == 'u' and oldKind == 'u' and oldReason ~= ARGV[7 + group] then
        redis.call('SET', seenKey, fresh(kind, group, id, fp, startText, body), 'KEEPTTL')
        if reasonKey[oldReason] then redis.call('ZREM', reasonKey[oldReason], id) end
        redis.call('ZADD', reasonKey[ARGV[7 + group]], now, id)
      end
    end
  end
  if kind == 'q' then
    local mask = masks[group]
    if outcome == 'D' or outcome == 'C' then
      mask[#mask + 1] = '0'
    else
      accepted[group] = accepted[group] + 1
      if form ~= 'b' then
        mask[#mask + 1] = '2'
        derived[group][#derived[group] + 1] = (#mask - 1) .. ':' .. string.sub(id, #key + 2)
      else
        mask[#mask + 1] = '1'
      end
    end
  end
  out[i + 1] = outcome .. form
end
for c = 1, C do
  if not staged and accepted[c] == 0 then redis.call('DEL', rowsKey[c]) end
  if accepted[c] > 0 and not staged then
    local chain, chunk = ARGV[chainArg + 3 * c - 2], ARGV[chainArg + 3 * c - 1]
    redis.call('PERSIST', rowsKey[c])
    redis.call('HSET', KEYS[chainKey + 2 * c], 'r', '${CHUNK_ROWS_MARKER}', 'm', table.concat(masks[c]), 'd', table.concat(derived[c], ','))
    redis.call('ZADD', KEYS[chainKey + 2 * c - 1], now, chunk)
    redis.call('HINCRBY', KEYS[1], 'queued:' .. chain, accepted[c])
    redis.call('HINCRBY', KEYS[1], 'chunks:' .. chain, 1)
  end
end
local horizon = now - ttl * 1000
for r = 1, R do redis.call('ZREMRANGEBYSCORE', KEYS[1 + r], '-inf', '(' .. horizon) end
if conflicts > 0 then redis.call('ZREMRANGEBYSCORE', conflictsKey, '-inf', '(' .. horizon) end
if queued > 0 then redis.call('HINCRBY', KEYS[1], 'queued', queued) end
if requeued > 0 then redis.call('HINCRBY', KEYS[1], 'requeued', requeued) end
if duplicates > 0 then redis.call('HINCRBY', KEYS[1], 'duplicates', duplicates) end
if reused > 0 then redis.call('HINCRBY', KEYS[1], 'reused', reused) end
if conflicts > 0 then redis.call('HINCRBY', KEYS[1], 'conflicts', conflicts) end
for reason, n in pairs(unbillable) do redis.call('HINCRBY', KEYS[1], 'unbillable:' .. reason, n) end
if staged then return { table.concat(out), xs } end
return table.concat(out)
`;

/**
 * ack: the consumer has the chunk durably; forget it (and its rows key, on the single layout).
 * KEYS: [1] chunk [2] pending zset [3] stats. ARGV: [1] chunk id [2] chain. Returns 1 if the chunk existed.
 */
const ACK = `
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1] .. '${CHUNK_ROWS_SUFFIX}')
if redis.call('DEL', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[3], 'acked:' .. ARGV[2], 1)
  return 1
end
return 0
`;

/**
 * stage (Cluster): writes a POST's chunk for one chain before its dedupe records, not yet visible to the consumer.
 * KEYS: [1] chunk [2] staged zset. ARGV: [1] receipts (rows) [2] the POST's packed entries [3] the chain's group
 * number in them [4] chunk id. Returns the Redis time (ms) it was staged at.
 */
const STAGE = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'r', ARGV[1], 'e', ARGV[2], 'g', ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[4])
return now
`;

/**
 * commit (Cluster): a staged chunk's mask is known (from the shards' outcomes, or rebuilt from the dedupe records
 * by recovery): make it visible to the consumer, or delete it when it holds no accepted receipt. Runs once per chunk
 * (the first caller takes it out of the staged set; any later call returns 0 and changes nothing).
 * KEYS: [1] chunk [2] staged zset [3] pending zset [4] stats [5] conflicts zset.
 * ARGV: [1] chunk id [2] chain [3] mask [4] derived ids [5] accepted [6] now (ms) [7] ttl (s), then per conflicting
 * receipt 6 values: its position in the chunk (1-based), id, start ms (or ""), kept fingerprint, kept kind, its own
 * fingerprint.
 */
const COMMIT = `
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 0 end
local accepted = tonumber(ARGV[5])
local now = tonumber(ARGV[6])
local n = (#ARGV - 7) / 6
if n > 0 then
  local rows = cjson.decode(redis.call('HGET', KEYS[1], 'r'))
  local header = rows[1]
  for k = 0, n - 1 do
    local a = 8 + 6 * k
    local row, element = rows[tonumber(ARGV[a]) + 1], {}
    for f = 1, #header do element[header[f]] = row[f] end
    element['id'] = ARGV[a + 1]
    local startText = ARGV[a + 2]
    redis.call('ZADD', KEYS[5], now, '{"id":' .. cjson.encode(ARGV[a + 1]) .. ',"startTime":' .. (startText == '' and 'null' or startText) ..
      ',"kept":{"fingerprint":"' .. ARGV[a + 3] .. '","kind":"' .. ARGV[a + 4] .. '"},"other":{"fingerprint":"' .. ARGV[a + 5] ..
      '","kind":"receipt","record":' .. cjson.encode(element) .. '}}')
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. (now - tonumber(ARGV[7]) * 1000))
end
if accepted > 0 then
  redis.call('HSET', KEYS[1], 'm', ARGV[3], 'd', ARGV[4])
  redis.call('HDEL', KEYS[1], 'e', 'g')
  redis.call('ZADD', KEYS[3], now, ARGV[1])
  redis.call('HINCRBY', KEYS[4], 'queued:' .. ARGV[2], accepted)
  redis.call('HINCRBY', KEYS[4], 'chunks:' .. ARGV[2], 1)
else
  redis.call('DEL', KEYS[1])
end
return 1
`;

export interface IngestCommands {
  agentgptIngestSubmit(numKeys: number, ...keysAndArgs: Array<string | number | Buffer>): Result<string, { type: "default" }>;
  agentgptIngestAck(chunk: string, pending: string, stats: string, chunkId: string, chain: string): Result<number, { type: "default" }>;
  agentgptIngestSubmitStaged(numKeys: number, ...keysAndArgs: Array<string | number | Buffer>): Result<string | [string, string[]], { type: "default" }>;
  agentgptIngestStage(chunk: string, staged: string, receipts: Buffer, packed: Buffer, group: number, chunkId: string): Result<number, { type: "default" }>;
  agentgptIngestCommit(...keysAndArgs: Array<string | number>): Result<number, { type: "default" }>;
}

export type IngestRedis = RedisClient & IngestCommands;

/** Defines the scripts on `redis` once (idempotent) and returns it typed with them. */
export function withIngestScripts(redis: RedisClient): IngestRedis {
  const typed = redis as IngestRedis;
  if (typeof typed.agentgptIngestSubmit !== "function") {
    redis.defineCommand("agentgptIngestSubmit", { lua: SUBMIT });
    redis.defineCommand("agentgptIngestAck", { lua: ACK, numberOfKeys: 3 });
    redis.defineCommand("agentgptIngestSubmitStaged", { lua: SUBMIT });
    redis.defineCommand("agentgptIngestStage", { lua: STAGE, numberOfKeys: 2 });
    redis.defineCommand("agentgptIngestCommit", { lua: COMMIT, numberOfKeys: 5 });
  }
  return typed;
}
