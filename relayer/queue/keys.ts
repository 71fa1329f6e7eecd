/**
 * Redis key layout. On a single Redis every ingest key shares the hash tag `{<prefix>:ingest}` (the layout of every
 * earlier version; the submit script checks and writes dedupe records, unbillable records and chunks in one atomic
 * step). On a Redis Cluster the same keys are spread over `redis.shards` hash tags `{<prefix>:ingest:<n>}`, n = FNV-1a
 * of the call's key (dedupe records, unbillable indexes, conflicts, stats) or of the chunk id (chunks and their
 * pending/staged sets) modulo the shard count, so that a month of dedupe records is not one slot on one master; each
 * script still touches one shard (one slot) and declares every key it touches (see receipt-store.ts). The shard
 * count is recorded in `{<prefix>:ingest}:layout` at first use and must not change afterwards.
 * BullMQ queues use the prefix `{<prefix>}` (BullMQ's own advice for Cluster) and the name `receipts-<chain>`.
 *
 * Under each tag T = {p:ingest} (single Redis) or {p:ingest:<n>} (Cluster):
 *   T:seen:<id>            dedupe record "<fp>|<start>|q|<chain>|<chunk>" or "<fp>|<start>|u|<reason>|<record JSON>",
 *                          TTL dedupe_ttl (see scripts.ts); a record rebuilt by a backup restore has
 *                          "restored:<batchId>" in place of the chunk (ReceiptStore.restoreQueued)
 *   T:unbillable:<reason>  sorted set of unbillable ids by time recorded
 *   T:chunk:<chunkId>      hash: r (receipts as rows under a header, receipt-rows.ts), m (acceptance mask),
 *                          d (ids under key#start), until acknowledged by the consumer; while staged (Cluster only,
 *                          before its mask is known) also e (the POST's packed entries) and g (the chain's group)
 *   T:pending:<chain>      sorted set of unacknowledged chunk ids by creation time
 *   T:staged:<chain>       Cluster only: sorted set of chunks written but not yet committed, by staging time
 *   T:stats                hash of counters (on a Cluster, one per shard: ReceiptStore.stats adds them up)
 *   T:conflicts            sorted set (by time) of logs that disagree with the recorded log of the same call
 *                          (JSON: id, start time, fingerprints, the log not billed); trimmed after dedupe_ttl
 * and under {p:ingest} only:
 *   {p:ingest}:invalid     capped list of refused entries (reason and id only)
 *   {p:ingest}:layout      Cluster only: the shard count the keys were written with
 *   {p:ingest}:backfill:covered  epoch ms up to which the backfill stage has read LiteLLM's spend records without a
 *                          gap (relayer/backfill/coverage.ts)
 */
import type { UnbillableReason } from "./unbillable.js";

/** The rows key of a chunk is its hash's key with this suffix (the scripts derive it the same way). */
export const CHUNK_ROWS_SUFFIX = ":rows";

export const RECEIPTS_JOB_NAME = "receipts";

export function receiptQueueName(chain: string): string {
  return `receipts-${chain}`;
}

export function bullPrefix(prefix: string): string {
  return `{${prefix}}`;
}

/** 32-bit FNV-1a of the UTF-16 code units of `text` (stable, fast; only spreads keys, never secures anything). */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The keys under one hash tag: `{<prefix>:ingest}`, or `{<prefix>:ingest:<shard>}` when `shard` is given. */
export class IngestKeys {
  readonly tag: string;
  constructor(
    readonly prefix: string,
    readonly shard?: number,
  ) {
    this.tag = shard === undefined ? `{${prefix}:ingest}` : `{${prefix}:ingest:${shard}}`;
  }
  get layout(): string {
    return `${this.tag}:layout`;
  }
  staged(chain: string): string {
    return `${this.tag}:staged:${chain}`;
  }
  get stats(): string {
    return `${this.tag}:stats`;
  }
  get invalid(): string {
    return `${this.tag}:invalid`;
  }
  get backfillCovered(): string {
    return `${this.tag}:backfill:covered`;
  }
  get conflicts(): string {
    return `${this.tag}:conflicts`;
  }
  seen(id: string): string {
    return `${this.tag}:seen:${id}`;
  }
  reasonIndex(reason: UnbillableReason): string {
    return `${this.tag}:unbillable:${reason}`;
  }
  chunk(chunkId: string): string {
    return `${this.tag}:chunk:${chunkId}`;
  }
  /** a chunk's receipts (rows under a header) on the single layout: a string of its own, see scripts.ts */
  chunkRows(chunkId: string): string {
    return `${this.chunk(chunkId)}${CHUNK_ROWS_SUFFIX}`;
  }
  pending(chain: string): string {
    return `${this.tag}:pending:${chain}`;
  }
}

/**
 * Where each ingest key lives: one tag (`shards` null: a single Redis, the layout of every earlier version) or
 * `shards` tags (a Redis Cluster).
 */
export class IngestLayout {
  /** `{<prefix>:ingest}`: the single layout's keys, and on a Cluster the invalid list and the layout record */
  readonly global: IngestKeys;
  /** the tags that hold dedupe records and chunks: [global], or one per shard */
  readonly all: readonly IngestKeys[];

  constructor(
    readonly prefix: string,
    readonly shards: number | null,
  ) {
    if (shards !== null && !(Number.isSafeInteger(shards) && shards >= 1 && shards <= 16384)) throw new RangeError(`shards must be 1 .. 16384: ${shards}`);
    this.global = new IngestKeys(prefix);
    this.all = shards === null ? [this.global] : Array.from({ length: shards }, (_, shard) => new IngestKeys(prefix, shard));
  }

  get sharded(): boolean {
    return this.shards !== null;
  }

  /** The tag of a call's dedupe record (of its key: `<key>#<start>` records live beside `<key>`'s). */
  ofCall(key: string): IngestKeys {
    return this.shards === null ? this.global : this.all[fnv1a(key) % this.shards]!;
  }

  /** The tag of a chunk, its pending and staged sets. */
  ofChunk(chunkId: string): IngestKeys {
    return this.shards === null ? this.global : this.all[fnv1a(chunkId) % this.shards]!;
  }
}
