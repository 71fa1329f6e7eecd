/**
 * The durable side of the receipt queue, in Redis: dedupe records, chunks of receipts waiting for the
 * consumer, and unbillable records. `submit` is one atomic script per call (see scripts.ts), so a receipt is
 * recorded exactly once however often LiteLLM re-sends it and wherever a process dies.
 */
import { randomBytes } from "node:crypto";

import { asQueueError, QueueUnavailableError } from "./errors.js";
import { IngestKeys, IngestLayout } from "./keys.js";
import { type PreparedSubmissions, prepareSubmissions } from "./prepared.js";
import { isCluster, type RedisClient, scanKeys } from "./redis-connection.js";
import type { Receipt, ReceiptBody } from "./receipt.js";
import { readReceiptRows } from "./receipt-rows.js";
import { CHUNK_ROWS_MARKER, withIngestScripts, type IngestRedis } from "./scripts.js";
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
  /**
   * hash tags the keys are spread over (see keys.ts; config redis.shards): default 256 on a Redis Cluster, none (the
   * single-tag layout of earlier versions) on a single Redis. A number forces the spread layout on either.
   */
  readonly shards?: number | null | undefined;
}

/** Default shard count on a Cluster: no slot holds more than about 1/256 of the records (0.4 %). */
export const DEFAULT_SHARDS = 256;

/**
 * How long the shards of a staged POST may take (ms, Redis time from staging): a shard's script refuses to run
 * after it, and recovery commits a chunk still staged `STAGE_WINDOW_MS + STAGE_RECOVERY_MARGIN_MS` after it was
 * staged (the margin covers clock differences between the Cluster's nodes and the relayer's host).
 */
export const STAGE_WINDOW_MS = 30_000;
export const STAGE_RECOVERY_MARGIN_MS = 30_000;

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

/**
 * How long a chunk's rows key lives until its submit script claims it (the script runs right after the SET; a
 * process that dies between the two leaves the rows to expire, and nothing was recorded).
 */
const ROWS_UNCLAIMED_TTL_MS = 10 * 60 * 1000;

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function newChunkId(chain: string): string {
  return `${chain}-${Date.now().toString(36)}-${randomBytes(6).toString("hex")}`;
}

/** One entry of a POST's packed entries (prepared.ts packEntry): where it is in the bytes, and what the script needs. */
interface PackedEntry {
  readonly begin: number;
  readonly end: number;
  readonly kind: "q" | "u";
  readonly group: number;
  readonly key: string;
  readonly fingerprint: string;
  readonly startText: string;
}

/** Splits packed entries (`<kind><group>,<key bytes>,<body bytes>,<start ms>,<fingerprint><key><body>` ...). */
export function readPackedEntries(packed: Buffer): PackedEntry[] {
  const out: PackedEntry[] = [];
  let p = 0;
  while (p < packed.length) {
    const c1 = packed.indexOf(0x2c, p + 1);
    const c2 = packed.indexOf(0x2c, c1 + 1);
    const c3 = packed.indexOf(0x2c, c2 + 1);
    const c4 = packed.indexOf(0x2c, c3 + 1);
    if (c4 === -1) throw new Error(`packed entries are malformed at byte ${p}`);
    const keyBytes = Number(packed.toString("latin1", c1 + 1, c2));
    const bodyBytes = Number(packed.toString("latin1", c2 + 1, c3));
    const keyStart = c4 + 17;
    const end = keyStart + keyBytes + bodyBytes;
    out.push({
      begin: p,
      end,
      kind: packed[p] === 0x71 ? "q" : "u",
      group: Number(packed.toString("latin1", p + 1, c1)),
      key: packed.toString("utf8", keyStart, keyStart + keyBytes),
      fingerprint: packed.toString("latin1", c4 + 1, keyStart),
      startText: packed.toString("latin1", c3 + 1, c4),
    });
    p = end;
  }
  return out;
}

/** The seen keys a script may touch for an entry: its key's, and key#start, #start-1, #start+1 when it has a start. */
function seenKeysOf(keys: IngestKeys, key: string, startText: string): string[] {
  if (startText === "") return [keys.seen(key)];
  const start = Number(startText);
  return [keys.seen(key), keys.seen(`${key}#${start}`), keys.seen(`${key}#${start - 1}`), keys.seen(`${key}#${start + 1}`)];
}

export class ReceiptStore {
  /** the keys of the single layout; on a Cluster the global tag (invalid list, layout record): see `layout` */
  readonly keys: IngestKeys;
  readonly layout: IngestLayout;
  readonly redis: IngestRedis;
  private readonly ttlSeconds: number;
  private layoutChecked: Promise<void> | undefined;

  constructor(redis: RedisClient, readonly options: ReceiptStoreOptions) {
    this.redis = withIngestScripts(redis);
    const shards = options.shards === undefined ? (isCluster(redis) ? DEFAULT_SHARDS : null) : options.shards;
    this.layout = new IngestLayout(options.prefix, shards);
    this.keys = this.layout.global;
    this.ttlSeconds = Math.max(1, Math.ceil(options.dedupeTtlMs / 1000));
  }

  /**
   * The spread layout records its shard count at first use; a process configured with another count would look for
   * dedupe records in the wrong tags (and bill re-sends again), so it refuses to work instead.
   */
  checkLayout(): Promise<void> {
    if (this.layout.shards === null) return Promise.resolve();
    this.layoutChecked ??= (async () => {
      const wanted = String(this.layout.shards);
      const found = await this.redis.set(this.keys.layout, wanted, "NX", "GET");
      if (found !== null && found !== wanted) {
        throw new Error(
          `the ingest keys in Redis were written with redis.shards: ${found}, this process has ${wanted}: set redis.shards to ${found} (changing it needs a migration)`,
        );
      }
    })().catch((error: unknown) => {
      this.layoutChecked = undefined;
      throw error;
    });
    return this.layoutChecked;
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
    if (this.layout.sharded) return this.submitSharded(prepared, chunkIds, now);

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
    chains.forEach(({ chain }, index) => {
      keys.push(this.keys.pending(chain), this.keys.chunk(chunkIds[index]!));
      args.push(chain, chunkIds[index]!, "");
    });
    args.push(asBuffer(prepared.packed));

    let reply: string;
    try {
      // Each chain's receipts go in by a plain SET, sent just before the script on the same connection (Redis keeps
      // a SET's argument as the value, where a script's would be copied twice; see scripts.ts). The script refuses
      // when one is missing; a SET whose script never ran expires.
      const rows = chains.map(({ receipts }, index) => this.redis.set(this.keys.chunkRows(chunkIds[index]!), asBuffer(receipts), "PX", ROWS_UNCLAIMED_TTL_MS));
      const submitted = this.redis.agentgptIngestSubmit(keys.length, ...keys, ...args);
      const settled = await Promise.allSettled([...rows, submitted]);
      const failed = settled.find((outcome): outcome is PromiseRejectedResult => outcome.status === "rejected");
      if (failed !== undefined) throw failed.reason;
      reply = await submitted;
    } catch (error) {
      throw asQueueError(error, "record receipts");
    }

    return this.resultOf(prepared, chunkIds, reply);
  }

  /** Outcomes and chunks from the scripts' reply (two characters per entry). */
  private resultOf(prepared: PreparedSubmissions, chunkIds: readonly string[], reply: string): SubmitResult {
    const { chains, entries } = prepared;
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
   * A POST on the spread layout (Cluster), where its dedupe records are in many slots and no one script can write
   * them all with the chunk. Exactly once, in three steps:
   * 1. stage: each chain's chunk (every receipt of the POST, and the packed entries) is written under its own tag,
   *    in the chain's staged set, invisible to the consumer.
   * 2. per shard touched, one SUBMIT (staged): the dedupe records of that shard's entries, each naming the chunk.
   *    It refuses to run after the deadline (staging time + STAGE_WINDOW_MS, Redis time).
   * 3. commit: the chunk's mask (which receipts this POST recorded) is written and the chunk made pending.
   * A receipt is billed when its dedupe record names the chunk it is in, and only then: if the process dies (or a
   * shard fails) between the steps, the POST answers 503 (or nothing) and `recoverStaged`, after the window, rebuilds
   * the mask from the dedupe records and commits; a re-send of the POST finds the recorded receipts duplicate.
   */
  private async submitSharded(prepared: PreparedSubmissions, chunkIds: readonly string[], now: number): Promise<SubmitResult> {
    await this.checkLayout();
    const { chains, entries } = prepared;
    const packed = asBuffer(prepared.packed);
    const packedEntries = readPackedEntries(packed);
    if (packedEntries.length !== entries.length) throw new Error(`packed entries: ${packedEntries.length}, entries: ${entries.length}`);

    // 1. stage
    let stagedAt: number;
    try {
      const times = await Promise.all(
        chains.map(({ receipts }, index) => {
          const keys = this.layout.ofChunk(chunkIds[index]!);
          return this.redis.agentgptIngestStage(keys.chunk(chunkIds[index]!), keys.staged(chains[index]!.chain), asBuffer(receipts), packed, index + 1, chunkIds[index]!);
        }),
      );
      stagedAt = times.length === 0 ? now : Math.min(...times.map(Number));
    } catch (error) {
      throw asQueueError(error, "stage receipts");
    }
    const deadline = stagedAt + STAGE_WINDOW_MS;

    // 2. one script per shard touched
    const byShard = new Map<IngestKeys, number[]>();
    packedEntries.forEach((entry, index) => {
      const keys = this.layout.ofCall(entry.key);
      let list = byShard.get(keys);
      if (list === undefined) byShard.set(keys, (list = []));
      list.push(index);
    });
    const reply = new Array<string>(entries.length);
    const conflicts: Array<{ index: number; keptFp: string; keptKind: string }> = [];
    try {
      await Promise.all(
        [...byShard].map(async ([keys, indexes]) => {
          const scriptKeys: string[] = [keys.stats, ...REASON_KEYS(keys)];
          const args: Array<string | number | Buffer> = [now, this.ttlSeconds, UNBILLABLE_REASONS.length, chains.length, indexes.length, keys.seen(""), keys.conflicts, ...UNBILLABLE_REASONS];
          chains.forEach(({ chain }, index) => {
            // declared for the script's fixed positions, in this shard's tag; staged, it writes neither
            scriptKeys.push(keys.pending(chain), keys.chunk(chunkIds[index]!));
            args.push(chain, chunkIds[index]!, "");
          });
          scriptKeys.push(keys.conflicts);
          for (const index of indexes) scriptKeys.push(...seenKeysOf(keys, packedEntries[index]!.key, packedEntries[index]!.startText));
          args.push(Buffer.concat(indexes.map((index) => packed.subarray(packedEntries[index]!.begin, packedEntries[index]!.end))), deadline);
          const answer = await this.redis.agentgptIngestSubmitStaged(scriptKeys.length, ...scriptKeys, ...args);
          if (!Array.isArray(answer)) throw new QueueUnavailableError(`a shard of the POST was not recorded within ${STAGE_WINDOW_MS} ms (${String(answer)}); recovery commits what was`);
          const [outcomes, xs] = answer;
          indexes.forEach((index, k) => (reply[index] = outcomes.slice(2 * k, 2 * k + 2)));
          for (const x of xs) {
            const [k, keptFp, keptKind] = x.split("|");
            conflicts.push({ index: indexes[Number(k)]!, keptFp: keptFp!, keptKind: keptKind! });
          }
        }),
      );
    } catch (error) {
      throw asQueueError(error, "record receipts");
    }
    const result = this.resultOf(prepared, chunkIds, reply.join(""));

    // 3. commit each chain's chunk with its mask
    const rowOf = new Array<number>(entries.length);
    const rows = new Array<number>(chains.length).fill(0);
    entries.forEach((entry, index) => {
      if (entry.kind === "receipt") rowOf[index] = ++rows[entry.chain]!;
    });
    try {
      await Promise.all(
        chains.map(({ chain }, c) => {
          const masks: string[] = [];
          const derived: string[] = [];
          let accepted = 0;
          entries.forEach((entry, index) => {
            if (entry.kind !== "receipt" || entry.chain !== c) return;
            const { id, outcome } = result.outcomes[index]!;
            if (outcome !== "queued" && outcome !== "requeued") return void masks.push("0");
            accepted += 1;
            if (id === entry.key) masks.push("1");
            else {
              masks.push("2");
              derived.push(`${masks.length - 1}:${id.slice(entry.key.length + 1)}`);
            }
          });
          const conflictArgs = conflicts.flatMap(({ index, keptFp, keptKind }) => {
            const entry = entries[index]!;
            if (entry.kind !== "receipt" || entry.chain !== c) return [];
            return [rowOf[index]!, entry.key, packedEntries[index]!.startText, keptFp, keptKind, entry.fingerprint];
          });
          return this.commit(chain, chunkIds[c]!, masks.join(""), derived.join(","), accepted, now, conflictArgs);
        }),
      );
    } catch (error) {
      throw asQueueError(error, "commit receipts");
    }
    return result;
  }

  private commit(chain: string, chunkId: string, mask: string, derived: string, accepted: number, now: number, conflictArgs: Array<string | number> = []): Promise<number> {
    const keys = this.layout.ofChunk(chunkId);
    return this.redis.agentgptIngestCommit(
      keys.chunk(chunkId),
      keys.staged(chain),
      keys.pending(chain),
      keys.stats,
      keys.conflicts,
      chunkId,
      chain,
      mask,
      derived,
      accepted,
      now,
      this.ttlSeconds,
      ...conflictArgs,
    );
  }

  /**
   * Commits chunks of `chain` still staged `STAGE_WINDOW_MS + STAGE_RECOVERY_MARGIN_MS` after they were staged (the
   * POST died between its steps): a receipt of the chunk is accepted exactly when its dedupe record names the chunk.
   * No shard script can write such a record any more (past the deadline), so the mask is final. Returns the chunks
   * committed with receipts. A no-op on the single layout.
   */
  async recoverStaged(chain: string, now = Date.now()): Promise<ChunkRef[]> {
    if (!this.layout.sharded) return [];
    await this.checkLayout();
    const before = now - STAGE_WINDOW_MS - STAGE_RECOVERY_MARGIN_MS;
    const out: ChunkRef[] = [];
    const stagedPerShard = await Promise.all(this.layout.all.map((shard) => this.redis.zrangebyscore(shard.staged(chain), "-inf", before, "LIMIT", 0, 100)));
    for (const [index, shard] of this.layout.all.entries()) {
      for (const chunkId of stagedPerShard[index]!) {
        const [packedText, groupText] = await this.redis.hmgetBuffer(shard.chunk(chunkId), "e", "g");
        if (packedText === null || packedText === undefined || groupText === null || groupText === undefined) {
          await this.commit(chain, chunkId, "", "", 0, now);
          continue;
        }
        const group = Number(groupText.toString());
        const suffix = `|q|${chain}|${chunkId}`;
        const mine = readPackedEntries(packedText).filter((entry) => entry.kind === "q" && entry.group === group);
        const masks: string[] = [];
        const derived: string[] = [];
        let accepted = 0;
        for (const entry of mine) {
          const keys = this.layout.ofCall(entry.key);
          const candidates = [entry.key, ...(entry.startText === "" ? [] : [0, -1, 1].map((d) => `${entry.key}#${Number(entry.startText) + d}`))];
          const values = await Promise.all(candidates.map((id) => this.redis.get(keys.seen(id))));
          const found = values.findIndex((value) => value !== null && value.endsWith(suffix));
          if (found === -1) masks.push("0");
          else {
            accepted += 1;
            masks.push(found === 0 ? "1" : "2");
            if (found > 0) derived.push(`${masks.length - 1}:${candidates[found]!.slice(entry.key.length + 1)}`);
          }
        }
        if ((await this.commit(chain, chunkId, masks.join(""), derived.join(","), accepted, now)) === 1 && accepted > 0) {
          out.push({ chain, chunkId, count: accepted });
        }
      }
    }
    return out;
  }

  /**
   * The receipts of a chunk (only those this chunk recorded, with their final ids), or null when it was
   * acknowledged already (or never existed).
   */
  async readChunk(chunkId: string): Promise<Receipt[] | null> {
    let fields: Array<string | null>;
    let rows: string | null;
    try {
      await this.checkLayout();
      const keys = this.layout.ofChunk(chunkId);
      // one round trip: the hash and, on the single layout, the rows key (both in the chunk's slot); a Cluster's
      // chunks hold their rows in the hash (STAGE writes them there)
      [fields, rows] = await Promise.all([
        this.redis.hmget(keys.chunk(chunkId), "r", "m", "d"),
        this.layout.sharded ? Promise.resolve(null) : this.redis.get(keys.chunkRows(chunkId)),
      ]);
    } catch (error) {
      throw asQueueError(error, "read a chunk");
    }
    const [stored, mask, derived] = fields;
    const text = stored === CHUNK_ROWS_MARKER ? rows : stored;
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
      const keys = this.layout.ofChunk(chunkId);
      const done = await this.redis.agentgptIngestAck(keys.chunk(chunkId), keys.pending(chain), keys.stats, chunkId, chain);
      return done === 1;
    } catch (error) {
      throw asQueueError(error, "acknowledge a chunk");
    }
  }

  /** Unacknowledged chunks of `chain` created at or before `before` (ms), oldest first. */
  async pendingChunks(chain: string, options: { before?: number; limit?: number } = {}): Promise<Array<{ chunkId: string; createdAt: number }>> {
    const limit = options.limit ?? 1000;
    const pages = await Promise.all(
      this.layout.all.map((keys) => this.redis.zrangebyscore(keys.pending(chain), "-inf", options.before ?? "+inf", "WITHSCORES", "LIMIT", 0, limit)),
    );
    const out: Array<{ chunkId: string; createdAt: number }> = [];
    for (const flat of pages) for (let i = 0; i + 1 < flat.length; i += 2) out.push({ chunkId: flat[i]!, createdAt: Number(flat[i + 1]) });
    if (pages.length > 1) out.sort((a, b) => a.createdAt - b.createdAt);
    return out.slice(0, limit);
  }

  async pendingCount(chain: string): Promise<number> {
    const counts = await Promise.all(this.layout.all.map((keys) => this.redis.zcard(keys.pending(chain))));
    return counts.reduce((a, b) => a + b, 0);
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
    const tags = this.layout.sharded ? [this.layout.global, ...this.layout.all] : this.layout.all;
    const hashes = await Promise.all(tags.map((keys) => this.redis.hgetall(keys.stats)));
    const hash: Record<string, number> = {};
    for (const one of hashes) for (const [field, value] of Object.entries(one)) hash[field] = (hash[field] ?? 0) + Number(value);
    const number = (field: string) => hash[field] ?? 0;
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
    const totals = new Array<number>(UNBILLABLE_REASONS.length).fill(0);
    await Promise.all(
      this.layout.all.map(async (keys) => {
        // one pipeline per tag: on a Cluster a pipeline goes to one node
        const pipeline = this.redis.pipeline();
        for (const reason of UNBILLABLE_REASONS) pipeline.zcount(keys.reasonIndex(reason), horizon, "+inf");
        const replies = (await pipeline.exec()) ?? [];
        replies.forEach((reply, index) => (totals[index]! += Number(reply?.[1] ?? 0)));
      }),
    );
    return Object.fromEntries(UNBILLABLE_REASONS.map((reason, index) => [reason, totals[index]!])) as Record<UnbillableReason, number>;
  }

  /** Kept unbillable records of one reason, newest first. */
  async listUnbillable(reason: UnbillableReason, options: { limit?: number; offset?: number } = {}): Promise<UnbillableRecord[]> {
    const offset = options.offset ?? 0;
    const end = offset + (options.limit ?? 100);
    const found = await this.newestFirst((keys) => keys.reasonIndex(reason), end);
    const page = found.slice(offset, end);
    if (page.length === 0) return [];
    const values = await Promise.all(page.map(({ member, keys }) => this.redis.get(keys.seen(member))));
    return values.flatMap((value) => {
      const record = unbillableOf(value);
      return record === null ? [] : [record];
    });
  }

  /** Logs kept as conflicts (within the dedupe TTL), newest first. */
  async listConflicts(options: { limit?: number; offset?: number } = {}): Promise<ConflictRecord[]> {
    const offset = options.offset ?? 0;
    const end = offset + (options.limit ?? 100);
    const found = await this.newestFirst((keys) => keys.conflicts, end);
    return found.slice(offset, end).map(({ member, score }) => ({ ...(JSON.parse(member) as Omit<ConflictRecord, "at">), at: score }));
  }

  async conflictCount(): Promise<number> {
    const counts = await Promise.all(this.layout.all.map((keys) => this.redis.zcard(keys.conflicts)));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** The first `count` members of a sorted set kept in every tag, newest (highest score) first, merged. */
  private async newestFirst(keyOf: (keys: IngestKeys) => string, count: number): Promise<Array<{ member: string; score: number; keys: IngestKeys }>> {
    const pages = await Promise.all(this.layout.all.map(async (keys) => ({ keys, flat: await this.redis.zrevrange(keyOf(keys), 0, count - 1, "WITHSCORES") })));
    const out: Array<{ member: string; score: number; keys: IngestKeys }> = [];
    for (const { keys, flat } of pages) for (let i = 0; i + 1 < flat.length; i += 2) out.push({ member: flat[i]!, score: Number(flat[i + 1]), keys });
    if (pages.length > 1) out.sort((a, b) => b.score - a.score);
    return out.slice(0, count);
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
    await this.checkLayout();
    let written = 0;
    for (let start = 0; start < pairs.length; start += 1000) {
      // one pipeline per tag: on a Cluster a pipeline goes to one node (a record lives in its call key's tag)
      const byTag = new Map<IngestKeys, Array<{ id: string; record: QueuedRecord }>>();
      for (const pair of pairs.slice(start, start + 1000)) {
        const keys = this.layout.ofCall(pair.record.key);
        const list = byTag.get(keys);
        if (list === undefined) byTag.set(keys, [pair]);
        else list.push(pair);
      }
      const counts = await Promise.all(
        [...byTag].map(async ([keys, list]) => {
          const pipeline = this.redis.pipeline();
          for (const { id, record } of list) {
            pipeline.set(keys.seen(id), `${record.fingerprint}|${record.startTime ?? ""}|q|${record.chain}|${record.origin}`, "PXAT", record.expiresAt, "NX");
          }
          let replies: Array<[Error | null, unknown]>;
          try {
            replies = (await pipeline.exec()) ?? [];
          } catch (error) {
            throw asQueueError(error, "restore dedupe records");
          }
          let n = 0;
          for (const [error, reply] of replies) {
            if (error !== null) throw asQueueError(error, "restore dedupe records");
            if (reply === "OK") n += 1;
          }
          return n;
        }),
      );
      written += counts.reduce((a, b) => a + b, 0);
    }
    return written;
  }

  /**
   * The dedupe records of `ids` (null where there is none), in order. `keys[i]` is the call key of `ids[i]` (they
   * differ for a derived id `<key>#<start>`; default: the ids), which says where the record lives on a Cluster.
   */
  async dedupeRecords(ids: readonly string[], keys: readonly string[] = ids): Promise<Array<DedupeRecord | null>> {
    const out: Array<DedupeRecord | null> = [];
    for (let start = 0; start < ids.length; start += 1000) {
      const part = ids.slice(start, start + 1000);
      if (part.length === 0) break;
      const values = this.layout.sharded
        ? await Promise.all(part.map((id, i) => this.redis.get(this.layout.ofCall(keys[start + i]!).seen(id))))
        : await this.redis.mget(...part.map((id) => this.keys.seen(id)));
      out.push(...values.map(parseDedupeRecord));
    }
    return out;
  }

  /** Every id that has a dedupe record now, with the record, a page at a time (SCAN: no blocking on a large Redis). */
  async *dedupeIds(): AsyncGenerator<Array<{ id: string; record: DedupeRecord | null }>> {
    const pattern = this.layout.sharded ? `{${this.options.prefix}:ingest:*}:seen:*` : `${this.keys.seen("").replace(/[*?[\]\\]/g, "\\$&")}*`;
    for await (const keys of scanKeys(this.redis, pattern)) {
      const values = this.layout.sharded ? await Promise.all(keys.map((key) => this.redis.get(key))) : await this.redis.mget(...keys);
      yield keys.map((key, index) => ({ id: key.slice(key.indexOf("}:seen:") + 7), record: parseDedupeRecord(values[index] ?? null) }));
    }
  }

  /** The unbillable record of `id`; `key`: its call key when `id` is derived (`<key>#<start>`; default: `id`). */
  async getUnbillable(id: string, key = id): Promise<UnbillableRecord | null> {
    return unbillableOf(await this.redis.get(this.layout.ofCall(key).seen(id)));
  }
}
