/**
 * The durable side of the receipt queue, in Redis: dedupe records, chunks of receipts waiting for the
 * consumer, and unbillable records. `submit` is one atomic script per call (see scripts.ts), so a receipt is
 * recorded exactly once however often LiteLLM re-sends it and wherever a process dies.
 */
import { randomBytes } from "node:crypto";

import type { Redis } from "ioredis";

import { asQueueError } from "./errors.js";
import { IngestKeys } from "./keys.js";
import { type PreparedSubmissions, prepareSubmissions } from "./prepared.js";
import type { Receipt, ReceiptBody } from "./receipt.js";
import { readReceiptRows } from "./receipt-rows.js";
import { withIngestScripts, type IngestRedis } from "./scripts.js";
import { UNBILLABLE_REASONS, type UnbillableBody, type UnbillableReason, type UnbillableRecord } from "./unbillable.js";

export interface SubmissionBase {
  /** idempotency key: LiteLLM's id (the request_id of its spend record), else its litellm_call_id */
  readonly key: string;
  /** 16 hex digits of what is billed (usage, status, cost): tells a re-send from a log that disagrees */
  readonly fingerprint: string;
  /**
   * the call's start time, epoch ms: with the key, the identity of a call (within 1 ms). A log with the same key and
   * another start time is another call reusing the id, billed under `<key>#<start>`. Absent: the key alone.
   */
  readonly startTime?: number | undefined;
}

export interface ReceiptSubmission extends SubmissionBase {
  readonly kind: "receipt";
  readonly body: ReceiptBody;
}

export interface UnbillableSubmission extends SubmissionBase {
  readonly kind: "unbillable";
  readonly body: UnbillableBody;
}

export type Submission = ReceiptSubmission | UnbillableSubmission;

/**
 * queued: new receipt; requeued: a kept unbillable call is now billable; duplicate: seen before (either kind);
 * conflict: another log of a call already recorded that disagrees with it (usage, status or cost), kept in the
 * conflicts list and not billed.
 */
export type SubmitOutcome = "queued" | "requeued" | "unbillable" | "duplicate" | "conflict";

/** A log that disagrees with the recorded log of the same call: kept for operators, never billed. */
export interface ConflictRecord {
  /** the call's id (key, or key#start) */
  readonly id: string;
  readonly startTime: number | null;
  /** the log that counts (billed, or kept as unbillable) */
  readonly kept: { readonly fingerprint: string; readonly kind: "receipt" | "unbillable" };
  /** the log that does not count: the receipt or unbillable record it would have been */
  readonly other: { readonly fingerprint: string; readonly kind: "receipt" | "unbillable"; readonly record: Record<string, unknown> };
  /** when it was recorded, epoch ms */
  readonly at: number;
}

export interface ChunkRef {
  readonly chain: string;
  readonly chunkId: string;
  /** receipts in the chunk */
  readonly count: number;
}

export interface SubmitResult {
  /** one per submission, in order; `id` is the receipt id (or unbillable id) it was recorded under */
  readonly outcomes: ReadonlyArray<{ readonly id: string; readonly outcome: SubmitOutcome }>;
  /** chunks written by this call (at most one per chain) */
  readonly chunks: readonly ChunkRef[];
}

export interface IngestStats {
  readonly queued: number;
  readonly requeued: number;
  readonly duplicates: number;
  /** calls that reused another call's id (another start time) and were recorded under id#start */
  readonly reused: number;
  /** logs kept as conflicts: they disagreed with the recorded log of the same call */
  readonly conflicts: number;
  readonly invalid: number;
  readonly unbillable: Readonly<Record<UnbillableReason, number>>;
  readonly chains: Readonly<Record<string, { readonly queued: number; readonly chunks: number; readonly acked: number }>>;
}

export interface InvalidEntry {
  readonly index: number;
  readonly reason: string;
  /** the entry's call id, when it had one */
  readonly key?: string | undefined;
}

export interface ReceiptStoreOptions {
  /** Redis key prefix (see keys.ts) */
  readonly prefix: string;
  /** how long dedupe and unbillable records live, milliseconds */
  readonly dedupeTtlMs: number;
}

/**
 * The dedupe record of a receipt that was already batched, rebuilt from its batch file (backup restore): written as
 * ingest writes a queued receipt's record, `"<fp>|<start ms>|q|<chain>|<origin>"`, the origin in place of the chunk.
 */
export interface QueuedRecord {
  /** the receipt id: its key, or `<key>#<start ms>` for another call that reused the key */
  readonly id: string;
  /** the call's key (LiteLLM's id); equal to `id` unless the id is derived */
  readonly key: string;
  readonly fingerprint: string;
  /** the call's start time, epoch ms (null: unknown) */
  readonly startTime: number | null;
  readonly chain: string;
  /** where the record was rebuilt from, in place of the chunk id (e.g. "restored:<batchId>") */
  readonly origin: string;
  /** epoch ms when the record expires, as ingest's would have: dedupe_ttl after the receipt was received */
  readonly expiresAt: number;
}

/** A dedupe record as read back: what it says of the call. */
export interface DedupeRecord {
  readonly fingerprint: string;
  readonly startTime: number | null;
  /** q: the call was queued as a receipt (billed); u: kept as unbillable */
  readonly kind: "q" | "u";
}

export interface RestoreQueuedResult {
  /** records written (ids) */
  readonly written: number;
  /** a record was there already (ingest's own, or an earlier restore): left as it is */
  readonly present: number;
  /** expired by now (dedupe_ttl after they were received): not written, as ingest's would be gone too */
  readonly expired: number;
}

/** The fields of a dedupe record value (see scripts.ts), or null when it is not one. */
export function parseDedupeRecord(value: string | null): DedupeRecord | null {
  if (value === null || value.length < 19 || value[16] !== "|") return null;
  const fingerprint = value.slice(0, 16);
  // "<fp>|q|..." and "<fp>|u|..." were written before start times were kept
  if ((value[17] === "q" || value[17] === "u") && value[18] === "|") return { fingerprint, startTime: null, kind: value[17] };
  const bar = value.indexOf("|", 17);
  const kind = value[bar + 1];
  if (bar === -1 || (kind !== "q" && kind !== "u")) return null;
  const start = value.slice(17, bar);
  return { fingerprint, startTime: start === "" ? null : Number(start), kind };
}

const OUTCOME: Record<string, SubmitOutcome> = { Q: "queued", R: "requeued", U: "unbillable", D: "duplicate", C: "conflict" };
const INVALID_LOG_LENGTH = 1000;

const REASON_KEYS = (keys: IngestKeys) => UNBILLABLE_REASONS.map((reason) => keys.reasonIndex(reason));

/** The unbillable record inside a dedupe record "<fp>|<start>|u|<reason>|<JSON>" (or "<fp>|u|..."), else null. */
function unbillableOf(value: string | null): UnbillableRecord | null {
  if (value === null) return null;
  // "<fp>|u|..." was written before start times were kept
  const bar = (value[17] === "u" || value[17] === "q") && value[18] === "|" ? 16 : value.indexOf("|", 17);
  if (bar === -1 || value[bar + 1] !== "u") return null;
  const start = value.indexOf("|", bar + 3);
  return start === -1 ? null : (JSON.parse(value.slice(start + 1)) as UnbillableRecord);
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function newChunkId(chain: string): string {
  return `${chain}-${Date.now().toString(36)}-${randomBytes(6).toString("hex")}`;
}

export class ReceiptStore {
  readonly keys: IngestKeys;
  readonly redis: IngestRedis;
  private readonly ttlSeconds: number;

  constructor(redis: Redis, readonly options: ReceiptStoreOptions) {
    this.redis = withIngestScripts(redis);
    this.keys = new IngestKeys(options.prefix);
    this.ttlSeconds = Math.max(1, Math.ceil(options.dedupeTtlMs / 1000));
  }

  /**
   * Records `submissions` atomically: new receipts go into one new chunk per chain, unbillable calls into their
   * records, re-sends are duplicates. Throws QueueUnavailableError when Redis cannot take the write (then
   * nothing was recorded, or everything was: the script is atomic, and a retry is idempotent).
   */
  async submit(submissions: readonly Submission[], now = Date.now()): Promise<SubmitResult> {
    const parts = prepareSubmissions(submissions, Number.MAX_SAFE_INTEGER);
    return parts.length === 0 ? { outcomes: [], chunks: [] } : this.submitPrepared(parts[0]!, now);
  }

  /** `submit` for submissions already encoded (by prepareSubmissions, possibly on another thread). */
  async submitPrepared(prepared: PreparedSubmissions, now = Date.now()): Promise<SubmitResult> {
    const { chains, entries } = prepared;
    if (entries.length === 0) return { outcomes: [], chunks: [] };
    const chunkIds = chains.map(({ chain }) => newChunkId(chain));

    const keys: string[] = [this.keys.stats, ...REASON_KEYS(this.keys)];
    const args: Array<string | number | Buffer> = [
      now,
      this.ttlSeconds,
      UNBILLABLE_REASONS.length,
      chains.length,
      entries.length,
      this.keys.seen(""),
      this.keys.conflicts,
      ...UNBILLABLE_REASONS,
    ];
    chains.forEach(({ chain, receipts }, index) => {
      keys.push(this.keys.pending(chain), this.keys.chunk(chunkIds[index]!));
      args.push(chain, chunkIds[index]!, asBuffer(receipts));
    });
    args.push(asBuffer(prepared.packed));

    let reply: string;
    try {
      reply = await this.redis.agentgptIngestSubmit(keys.length, ...keys, ...args);
    } catch (error) {
      throw asQueueError(error, "record receipts");
    }

    const counts = new Array<number>(chains.length).fill(0);
    const outcomes = entries.map((entry, index) => {
      const outcome = OUTCOME[reply[index * 2]!];
      if (outcome === undefined) throw new Error(`submit script returned an unknown outcome at ${index}: ${reply}`);
      const form = reply[index * 2 + 1];
      const id = form === "b" ? entry.key : `${entry.key}#${(entry.startTime ?? 0) + (form === "m" ? -1 : form === "p" ? 1 : 0)}`;
      if (entry.kind === "receipt" && (outcome === "queued" || outcome === "requeued")) counts[entry.chain]! += 1;
      return { id, outcome };
    });
    const chunks = chains.flatMap(({ chain }, index) => (counts[index] === 0 ? [] : [{ chain, chunkId: chunkIds[index]!, count: counts[index]! }]));
    return { outcomes, chunks };
  }

  /**
   * The receipts of a chunk (only those this chunk recorded, with their final ids), or null when it was
   * acknowledged already (or never existed).
   */
  async readChunk(chunkId: string): Promise<Receipt[] | null> {
    let fields: Array<string | null>;
    try {
      fields = await this.redis.hmget(this.keys.chunk(chunkId), "r", "m", "d");
    } catch (error) {
      throw asQueueError(error, "read a chunk");
    }
    const [text, mask, derived] = fields;
    if (text === null || text === undefined || mask === null || mask === undefined) return null;
    const all = readReceiptRows(text);
    const suffixes = new Map<number, string>();
    for (const pair of (derived ?? "").split(",")) {
      if (pair === "") continue;
      const [index, suffix] = pair.split(":");
      suffixes.set(Number(index), suffix!);
    }
    const receipts: Receipt[] = [];
    all.forEach((receipt, index) => {
      const flag = mask[index];
      if (flag === "1") receipts.push(receipt);
      else if (flag === "2") receipts.push({ ...receipt, id: `${receipt.id}#${suffixes.get(index)}` });
    });
    return receipts;
  }

  /** The consumer holds the chunk durably: forget it. Returns false if it was already acknowledged. */
  async ack(chain: string, chunkId: string): Promise<boolean> {
    try {
      const done = await this.redis.agentgptIngestAck(this.keys.chunk(chunkId), this.keys.pending(chain), this.keys.stats, chunkId, chain);
      return done === 1;
    } catch (error) {
      throw asQueueError(error, "acknowledge a chunk");
    }
  }

  /** Unacknowledged chunks of `chain` created at or before `before` (ms), oldest first. */
  async pendingChunks(chain: string, options: { before?: number; limit?: number } = {}): Promise<Array<{ chunkId: string; createdAt: number }>> {
    const flat = await this.redis.zrangebyscore(
      this.keys.pending(chain),
      "-inf",
      options.before ?? "+inf",
      "WITHSCORES",
      "LIMIT",
      0,
      options.limit ?? 1000,
    );
    const out: Array<{ chunkId: string; createdAt: number }> = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ chunkId: flat[i]!, createdAt: Number(flat[i + 1]) });
    return out;
  }

  async pendingCount(chain: string): Promise<number> {
    return this.redis.zcard(this.keys.pending(chain));
  }

  /** Keeps the reason and id of refused entries (never their content) for operators, and counts them. */
  async recordInvalid(entries: readonly InvalidEntry[], receivedAt = Date.now()): Promise<void> {
    if (entries.length === 0) return;
    const lines = entries.map((entry) => JSON.stringify({ receivedAt, index: entry.index, reason: entry.reason, key: entry.key ?? null }));
    try {
      await this.redis
        .multi()
        .lpush(this.keys.invalid, ...lines)
        .ltrim(this.keys.invalid, 0, INVALID_LOG_LENGTH - 1)
        .hincrby(this.keys.stats, "invalid", entries.length)
        .exec();
    } catch (error) {
      throw asQueueError(error, "record refused entries");
    }
  }

  /** The most recent refused entries, newest first. */
  async recentInvalid(limit = 100): Promise<Array<{ receivedAt: number; index: number; reason: string; key: string | null }>> {
    const lines = await this.redis.lrange(this.keys.invalid, 0, limit - 1);
    return lines.map((line) => JSON.parse(line) as { receivedAt: number; index: number; reason: string; key: string | null });
  }

  async stats(): Promise<IngestStats> {
    const hash = await this.redis.hgetall(this.keys.stats);
    const number = (field: string) => Number(hash[field] ?? 0);
    const unbillable = Object.fromEntries(UNBILLABLE_REASONS.map((reason) => [reason, number(`unbillable:${reason}`)])) as Record<
      UnbillableReason,
      number
    >;
    const chains: Record<string, { queued: number; chunks: number; acked: number }> = {};
    for (const field of Object.keys(hash)) {
      const match = /^(queued|chunks|acked):(.+)$/.exec(field);
      if (match === null) continue;
      const chain = (chains[match[2]!] ??= { queued: 0, chunks: 0, acked: 0 });
      chain[match[1] as "queued" | "chunks" | "acked"] = number(field);
    }
    return {
      queued: number("queued"),
      requeued: number("requeued"),
      duplicates: number("duplicates"),
      reused: number("reused"),
      conflicts: number("conflicts"),
      invalid: number("invalid"),
      unbillable,
      chains,
    };
  }

  /** Unbillable calls kept now (within the dedupe TTL), per reason. */
  async unbillableCounts(now = Date.now()): Promise<Record<UnbillableReason, number>> {
    const horizon = now - this.ttlSeconds * 1000;
    const pipeline = this.redis.pipeline();
    for (const reason of UNBILLABLE_REASONS) pipeline.zcount(this.keys.reasonIndex(reason), horizon, "+inf");
    const replies = (await pipeline.exec()) ?? [];
    return Object.fromEntries(UNBILLABLE_REASONS.map((reason, index) => [reason, Number(replies[index]?.[1] ?? 0)])) as Record<
      UnbillableReason,
      number
    >;
  }

  /** Kept unbillable records of one reason, newest first. */
  async listUnbillable(reason: UnbillableReason, options: { limit?: number; offset?: number } = {}): Promise<UnbillableRecord[]> {
    const offset = options.offset ?? 0;
    const ids = await this.redis.zrevrange(this.keys.reasonIndex(reason), offset, offset + (options.limit ?? 100) - 1);
    if (ids.length === 0) return [];
    const values = await this.redis.mget(...ids.map((id) => this.keys.seen(id)));
    return values.flatMap((value) => {
      const record = unbillableOf(value);
      return record === null ? [] : [record];
    });
  }

  /** Logs kept as conflicts (within the dedupe TTL), newest first. */
  async listConflicts(options: { limit?: number; offset?: number } = {}): Promise<ConflictRecord[]> {
    const offset = options.offset ?? 0;
    const flat = await this.redis.zrevrange(this.keys.conflicts, offset, offset + (options.limit ?? 100) - 1, "WITHSCORES");
    const out: ConflictRecord[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ ...(JSON.parse(flat[i]!) as Omit<ConflictRecord, "at">), at: Number(flat[i + 1]) });
    return out;
  }

  async conflictCount(): Promise<number> {
    return this.redis.zcard(this.keys.conflicts);
  }

  /**
   * Writes the dedupe records of receipts already batched (a restore into a fresh Redis), so that a re-send of any of
   * those calls is a duplicate, never a new receipt. A record that exists is never replaced (SET NX); one whose
   * `expiresAt` has passed is not written. Once every batch's records are written, call `holdReusedKeys`.
   */
  async restoreQueued(records: readonly QueuedRecord[], options: { now?: number } = {}): Promise<RestoreQueuedResult> {
    const now = options.now ?? Date.now();
    const live = records.filter((record) => record.expiresAt > now);
    const written = await this.writeRecords(live.map((record) => ({ id: record.id, record })));
    return { written, present: live.length - written, expired: records.length - live.length };
  }

  /**
   * For each derived id `<key>#<start>` of `records`, writes its record under the bare key too when nothing holds
   * it: the submit script tries the bare key first, and a free one would take that call again. Run it only after
   * `restoreQueued` wrote every record (of every batch): a bare key is a call's own id, whose record must win.
   * Returns the keys written.
   */
  async holdReusedKeys(records: readonly QueuedRecord[], options: { now?: number } = {}): Promise<number> {
    const now = options.now ?? Date.now();
    const bare = new Map<string, QueuedRecord>();
    for (const record of records) if (record.expiresAt > now && record.id !== record.key && !bare.has(record.key)) bare.set(record.key, record);
    return this.writeRecords([...bare].map(([id, record]) => ({ id, record })));
  }

  private async writeRecords(pairs: ReadonlyArray<{ id: string; record: QueuedRecord }>): Promise<number> {
    let written = 0;
    for (let start = 0; start < pairs.length; start += 1000) {
      const pipeline = this.redis.pipeline();
      for (const { id, record } of pairs.slice(start, start + 1000)) {
        pipeline.set(this.keys.seen(id), `${record.fingerprint}|${record.startTime ?? ""}|q|${record.chain}|${record.origin}`, "PXAT", record.expiresAt, "NX");
      }
      let replies: Array<[Error | null, unknown]>;
      try {
        replies = (await pipeline.exec()) ?? [];
      } catch (error) {
        throw asQueueError(error, "restore dedupe records");
      }
      for (const [error, reply] of replies) {
        if (error !== null) throw asQueueError(error, "restore dedupe records");
        if (reply === "OK") written += 1;
      }
    }
    return written;
  }

  /** The dedupe records of `ids` (null where there is none), in order. */
  async dedupeRecords(ids: readonly string[]): Promise<Array<DedupeRecord | null>> {
    const out: Array<DedupeRecord | null> = [];
    for (let start = 0; start < ids.length; start += 1000) {
      const part = ids.slice(start, start + 1000);
      if (part.length === 0) break;
      const values = await this.redis.mget(...part.map((id) => this.keys.seen(id)));
      out.push(...values.map(parseDedupeRecord));
    }
    return out;
  }

  /** Every id that has a dedupe record now, with the record, a page at a time (SCAN: no blocking on a large Redis). */
  async *dedupeIds(): AsyncGenerator<Array<{ id: string; record: DedupeRecord | null }>> {
    const prefix = this.keys.seen("");
    let cursor = "0";
    do {
      const [next, keys] = await this.redis.scan(cursor, "MATCH", `${prefix.replace(/[*?[\]\\]/g, "\\$&")}*`, "COUNT", 1000);
      cursor = next;
      if (keys.length === 0) continue;
      const values = await this.redis.mget(...keys);
      yield keys.map((key, index) => ({ id: key.slice(prefix.length), record: parseDedupeRecord(values[index] ?? null) }));
    } while (cursor !== "0");
  }

  async getUnbillable(id: string): Promise<UnbillableRecord | null> {
    return unbillableOf(await this.redis.get(this.keys.seen(id)));
  }
}
