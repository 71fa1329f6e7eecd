/**
 * `runBackfill`: reads LiteLLM's spend records for a time range and submits every call through the same atomic
 * submit as a POST from LiteLLM's logger. A call already received is a duplicate (same id and start time, same
 * usage) and costs nothing; a call never received is queued exactly as the logger path would have queued it; a
 * record that disagrees with the log received for the same call is kept as a conflict, never billed twice.
 * Running it again over the same range, or from two processes at once, changes nothing more. It refuses a range that
 * starts before the calls whose dedupe records may have expired: those calls may have been billed and forgotten.
 */
import type { Logger } from "pino";

import { dedupeSafeLookbackMs, formatDurationMs } from "../config/index.js";
import type { SubmissionBuilder } from "../ingest/build-submission.js";
import type { SpendLogParse } from "../ingest/spend-log.js";
import type { Submission, SubmitOutcome } from "../queue/index.js";
import { BackfillError } from "./errors.js";
import type { SpendCursor, SpendPage } from "./pg-source.js";
import { entryOfRecord, isCacheHit } from "./spend-record.js";

/** Where spend records come from (PgSpendSource). */
export interface SpendSource {
  page(fromMs: number, toMs: number, limit: number, cursor: SpendCursor | null): Promise<SpendPage>;
}

/** Where submissions go (ReceiptQueue). */
export interface SubmissionSink {
  add(submissions: readonly Submission[]): Promise<{ readonly outcomes: ReadonlyArray<{ readonly id: string; readonly outcome: SubmitOutcome }> }>;
}

export interface BackfillRange {
  /** epoch ms, inclusive: calls that started at or after */
  readonly fromMs: number;
  /** epoch ms, exclusive */
  readonly toMs: number;
}

export interface BackfillOptions {
  /**
   * ingest.dedupe_ttl: a range may not start before the calls whose dedupe records may have expired (see
   * dedupeSafeLookbackMs), or a call billed and forgotten would be billed again
   */
  readonly dedupeTtlMs: number;
  readonly builder: SubmissionBuilder;
  readonly parse: (entry: unknown) => SpendLogParse;
  /** rows per query (default 1000) */
  readonly pageSize?: number;
  /** read and compare, queue nothing */
  readonly dryRun?: boolean;
  readonly logger?: Logger | undefined;
  readonly now?: () => number;
  /**
   * called after each page is recorded, with the start time (epoch ms) every record before which has been read: a
   * long run keeps its progress (the backfill stage's coverage) if it stops half-way
   */
  readonly onProgress?: (readBeforeMs: number) => Promise<void>;
  /** checked between pages: true stops the run there (its result covers what was read); a stopping relayer */
  readonly stopping?: () => boolean;
}

export interface BackfillResult {
  readonly fromMs: number;
  readonly toMs: number;
  /** spend records read */
  readonly read: number;
  /** calls the logger never delivered, now queued as receipts (with dryRun: 0) */
  readonly recovered: number;
  /** calls never delivered that cannot be billed, now kept with their reason */
  readonly unbillable: number;
  /** calls already received through the logger */
  readonly alreadyReceived: number;
  /** records that disagree with the log received for the same call: kept as conflicts, not billed */
  readonly conflicts: number;
  /** cache hits (never billed; LiteLLM gives them ids of their own) */
  readonly skippedCacheHits: number;
  /** records that cannot be read, or that ingest's parser refuses, with the reason */
  readonly invalid: ReadonlyArray<{ readonly requestId: string; readonly reason: string }>;
  /** ids of the recovered receipts (at most 1000 listed) */
  readonly recoveredIds: readonly string[];
}

export async function runBackfill(source: SpendSource, sink: SubmissionSink, range: BackfillRange, options: BackfillOptions): Promise<BackfillResult> {
  if (!(range.fromMs < range.toMs)) throw new BackfillError("bad_range", `the range is empty: since ${new Date(range.fromMs).toISOString()} is not before until ${new Date(range.toMs).toISOString()}`);
  const pageSize = options.pageSize ?? 1000;
  const now = options.now ?? Date.now;
  const horizon = now() - dedupeSafeLookbackMs(options.dedupeTtlMs);
  if (range.fromMs < horizon) {
    throw new BackfillError(
      "beyond_dedupe",
      `calls that started before ${new Date(horizon).toISOString()} may have been billed and their dedupe records expired ` +
        `(ingest.dedupe_ttl ${formatDurationMs(options.dedupeTtlMs)}): a backfill from ${new Date(range.fromMs).toISOString()} could bill them a second time; ` +
        `start at ${new Date(Math.ceil(horizon / 1000) * 1000).toISOString()} or later`,
    );
  }
  let read = 0;
  let recovered = 0;
  let unbillable = 0;
  let alreadyReceived = 0;
  let conflicts = 0;
  let skippedCacheHits = 0;
  const invalid: Array<{ requestId: string; reason: string }> = [];
  const recoveredIds: string[] = [];
  let cursor: SpendCursor | null = null;
  do {
    const page = await source.page(range.fromMs, range.toMs, pageSize, cursor);
    cursor = page.next;
    read += page.rows.length + page.refused.length;
    for (const refused of page.refused) invalid.push(refused);
    const submissions: Submission[] = [];
    const receivedAt = now();
    for (const row of page.rows) {
      if (isCacheHit(row)) {
        skippedCacheHits += 1;
        continue;
      }
      const parsed = options.parse(entryOfRecord(row));
      if (!parsed.ok) {
        invalid.push({ requestId: row.request_id, reason: parsed.reason });
        continue;
      }
      submissions.push(options.builder.build(parsed.log, receivedAt));
    }
    const { outcomes } = submissions.length === 0 || options.dryRun === true ? { outcomes: [] } : await sink.add(submissions);
    for (const result of outcomes) {
      switch (result.outcome) {
        case "queued":
        case "requeued":
          recovered += 1;
          if (recoveredIds.length < 1000) recoveredIds.push(result.id);
          break;
        case "unbillable":
          unbillable += 1;
          break;
        case "duplicate":
          alreadyReceived += 1;
          break;
        case "conflict":
          conflicts += 1;
          break;
      }
    }
    // every record that started before this page's last one has been read (rows of that very millisecond may follow)
    if (cursor !== null && page.lastStartMs !== null) await options.onProgress?.(page.lastStartMs);
  } while (cursor !== null && options.stopping?.() !== true);
  const result = { fromMs: range.fromMs, toMs: range.toMs, read, recovered, unbillable, alreadyReceived, conflicts, skippedCacheHits, invalid, recoveredIds };
  options.logger?.info(
    {
      from: new Date(range.fromMs).toISOString(),
      to: new Date(range.toMs).toISOString(),
      read,
      recovered,
      unbillable,
      alreadyReceived,
      conflicts,
      skippedCacheHits,
      invalid: invalid.length,
    },
    recovered > 0 ? "backfill recovered calls LiteLLM's logger never delivered" : "backfill: nothing missing",
  );
  return result;
}
