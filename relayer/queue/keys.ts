/**
 * Redis key layout. Every ingest key shares the hash tag `{<prefix>:ingest}`, so the submit script, which checks
 * and writes dedupe records, unbillable records and chunks in one atomic step, stays in one Redis Cluster slot.
 * BullMQ queues use the prefix `{<prefix>}` (BullMQ's own advice for Cluster) and the name `receipts-<chain>`.
 *
 *   {p:ingest}:seen:<id>            dedupe record "<fp>|<start>|q|<chain>|<chunk>" or "<fp>|<start>|u|<reason>|<record JSON>",
 *                                   TTL dedupe_ttl (see scripts.ts); a record rebuilt by a backup restore has
 *                                   "restored:<batchId>" in place of the chunk (ReceiptStore.restoreQueued)
 *   {p:ingest}:unbillable:<reason>  sorted set of unbillable ids by time recorded
 *   {p:ingest}:chunk:<chunkId>      hash: r (receipts as rows under a header, receipt-rows.ts), m (acceptance mask),
 *                                   d (ids under key#start),
 *                                   until acknowledged by the consumer
 *   {p:ingest}:pending:<chain>      sorted set of unacknowledged chunk ids by creation time
 *   {p:ingest}:stats                hash of counters
 *   {p:ingest}:invalid              capped list of refused entries (reason and id only)
 *   {p:ingest}:conflicts            sorted set (by time) of logs that disagree with the recorded log of the same call
 *                                   (JSON: id, start time, fingerprints, the log not billed); trimmed after dedupe_ttl
 */
import type { UnbillableReason } from "./unbillable.js";

export const RECEIPTS_JOB_NAME = "receipts";

export function receiptQueueName(chain: string): string {
  return `receipts-${chain}`;
}

export function bullPrefix(prefix: string): string {
  return `{${prefix}}`;
}

export class IngestKeys {
  readonly tag: string;
  constructor(readonly prefix: string) {
    this.tag = `{${prefix}:ingest}`;
  }
  get stats(): string {
    return `${this.tag}:stats`;
  }
  get invalid(): string {
    return `${this.tag}:invalid`;
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
  pending(chain: string): string {
    return `${this.tag}:pending:${chain}`;
  }
}
