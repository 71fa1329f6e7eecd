/**
 * The work behind POST /litellm/spend, free of HTTP: split the body, validate each entry, build receipts and
 * unbillable records, hand them to the sink in one call, and say what happened to each entry.
 *
 * Statuses: 200 when the body was readable (invalid entries are listed by index and reason; the rest are
 * recorded); 400 when the body is not LiteLLM JSON at all; 413 above server.max_entries; 422 when no entry is
 * valid; 503 when the sink (Redis) cannot take the write (nothing is acknowledged; a re-send is safe).
 */
import type { Logger } from "pino";

import {
  describe,
  type InvalidEntry,
  type PreparedSubmissions,
  QueueUnavailableError,
  type SubmitOutcome,
  UNBILLABLE_REASONS,
  type UnbillableReason,
} from "../queue/index.js";
import type { IngestMetrics } from "./metrics.js";
import type { BodyFormat } from "./parse-body.js";
import { type BatchParser, freeBytes } from "./parse-pool.js";

/** Where submissions go: ReceiptQueue in production; the benchmark's one-job-per-receipt baseline also fits. */
export interface ReceiptSink {
  /** records the parts (outcomes in entry order, across parts) */
  addPrepared(parts: readonly PreparedSubmissions[]): Promise<{
    readonly outcomes: ReadonlyArray<{ readonly id: string; readonly outcome: SubmitOutcome }>;
    readonly jobsDeferred?: number;
  }>;
  recordInvalid?(entries: readonly InvalidEntry[], receivedAt: number): Promise<void>;
  ping(timeoutMs?: number): Promise<void>;
}

export interface IngestResponse {
  /** entries in the body, nulls and invalid ones included */
  readonly received: number;
  readonly format?: BodyFormat;
  /** new receipts queued (a kept unbillable call that became billable counts here too) */
  readonly queued: number;
  /** calls kept as unbillable, by reason */
  readonly unbillable: number;
  readonly unbillableReasons: Readonly<Partial<Record<UnbillableReason, number>>>;
  /** entries already recorded by an earlier POST or earlier in this one */
  readonly duplicates: number;
  /**
   * logs of a call already recorded that disagree with it (usage, status or cost): kept in the conflicts list
   * (`agentgpt relayer conflicts`), not billed
   */
  readonly conflicts: number;
  /** null entries (LiteLLM had no payload for a call) */
  readonly nulls: number;
  readonly invalid: ReadonlyArray<{ readonly index: number; readonly reason: string }>;
}

export type IngestReply =
  | { readonly status: 200; readonly body: IngestResponse }
  | { readonly status: 422; readonly body: IngestResponse & { readonly error: "no_valid_entries"; readonly reason: string } }
  | { readonly status: 400 | 413 | 503; readonly body: { readonly error: string; readonly reason: string } };

export interface IngestServiceOptions {
  readonly parser: BatchParser;
  readonly sink: ReceiptSink;
  readonly metrics?: IngestMetrics;
  readonly logger?: Logger;
}

export class IngestService {
  constructor(private readonly options: IngestServiceOptions) {}

  /** `body` is the raw POST body, in its chunks (the parser may free them once read: do not reuse them). */
  async ingest(body: readonly Buffer[] | string, receivedAt = Date.now()): Promise<IngestReply> {
    const { metrics, logger } = this.options;
    const batch = await this.options.parser.parse(typeof body === "string" ? [Buffer.from(body, "utf8")] : body, receivedAt);
    if (!batch.ok) return { status: batch.status, body: { error: batch.error, reason: batch.reason } };
    const { prepared, invalid, nulls } = batch;
    const entryCount = prepared.reduce((sum, part) => sum + part.entries.length, 0);

    metrics?.entries.inc({ outcome: "null" }, nulls);
    metrics?.entries.inc({ outcome: "invalid" }, invalid.length);

    let outcomes: ReadonlyArray<{ readonly id: string; readonly outcome: SubmitOutcome }> = [];
    if (entryCount > 0) {
      try {
        const added = await this.options.sink.addPrepared(prepared);
        // Redis has the encoded receipts now (only then: a command still queued in the client may write them yet)
        for (const part of prepared) {
          for (const chain of part.chains) freeBytes(chain.receipts);
          freeBytes(part.packed);
        }
        outcomes = added.outcomes;
        if ((added.jobsDeferred ?? 0) > 0) metrics?.jobsDeferred.inc(added.jobsDeferred);
      } catch (error) {
        if (error instanceof QueueUnavailableError) {
          metrics?.queueUnavailable.inc();
          logger?.warn({ err: describe(error), entries: batch.received }, "refused a POST: the queue is unavailable");
          return {
            status: 503,
            body: {
              error: "queue_unavailable",
              reason:
                `${error.message}; this POST is not acknowledged. LiteLLM's generic API logger does not send a batch again: ` +
                "its calls are recovered from LiteLLM's spend records by the backfill (`agentgpt litellm backfill`, or the " +
                "backfill: section of the relayer). A re-send is never counted twice.",
            },
          };
        }
        throw error;
      }
    }
    await this.recordInvalid(invalid, receivedAt);

    const summary = this.summarize(prepared, outcomes);
    const response: IngestResponse = {
      received: batch.received,
      format: batch.format,
      ...summary,
      nulls,
      invalid: invalid.map(({ index, reason }) => ({ index, reason })),
    };
    logger?.info(
      { format: batch.format, received: batch.received, queued: summary.queued, unbillable: summary.unbillable, duplicates: summary.duplicates, invalid: invalid.length, nulls },
      "ingested LiteLLM logs",
    );
    if (entryCount === 0 && invalid.length > 0) {
      return {
        status: 422,
        body: { ...response, error: "no_valid_entries", reason: `none of the ${invalid.length} entries is a valid LiteLLM log; see invalid[] for each` },
      };
    }
    return { status: 200, body: response };
  }

  private summarize(parts: readonly PreparedSubmissions[], outcomes: ReadonlyArray<{ readonly id: string; readonly outcome: SubmitOutcome }>) {
    let queued = 0;
    let unbillable = 0;
    let duplicates = 0;
    let conflicts = 0;
    let reused = 0;
    const reasons: Partial<Record<UnbillableReason, number>> = {};
    const byOutcome = new Map<SubmitOutcome, number>();
    // per chain: receipts and tokens queued
    const byChain = new Map<string, { receipts: number; tokens: number }>();
    let index = 0;
    for (const part of parts) {
      for (const entry of part.entries) {
        const result = outcomes[index++];
        if (result === undefined) continue;
        byOutcome.set(result.outcome, (byOutcome.get(result.outcome) ?? 0) + 1);
        if (result.outcome === "duplicate") {
          duplicates += 1;
          continue;
        }
        if (result.outcome === "conflict") {
          conflicts += 1;
          continue;
        }
        if (result.id !== entry.key) reused += 1;
        if (entry.kind === "receipt") {
          queued += 1;
          const chain = part.chains[entry.chain]!.chain;
          const sums = byChain.get(chain) ?? { receipts: 0, tokens: 0 };
          sums.receipts += 1;
          sums.tokens += entry.tokens;
          byChain.set(chain, sums);
        } else {
          unbillable += 1;
          reasons[entry.reason] = (reasons[entry.reason] ?? 0) + 1;
        }
      }
    }
    // One update per label, not per entry (512 entries per POST).
    const metrics = this.options.metrics;
    if (metrics !== undefined) {
      for (const [outcome, count] of byOutcome) metrics.entries.inc({ outcome }, count);
      if (reused > 0) metrics.conflicts.inc(reused);
      for (const [chain, sums] of byChain) {
        metrics.receiptsQueued.inc({ chain }, sums.receipts);
        metrics.tokensQueued.inc({ chain }, sums.tokens);
      }
      for (const [reason, count] of Object.entries(reasons)) metrics.unbillable.inc({ reason }, count);
    }
    const ordered = Object.fromEntries(UNBILLABLE_REASONS.filter((reason) => reasons[reason] !== undefined).map((reason) => [reason, reasons[reason]!]));
    return { queued, unbillable, unbillableReasons: ordered, duplicates, conflicts };
  }

  private async recordInvalid(invalid: ReadonlyArray<InvalidEntry>, receivedAt: number): Promise<void> {
    if (invalid.length === 0 || this.options.sink.recordInvalid === undefined) return;
    try {
      await this.options.sink.recordInvalid(invalid, receivedAt);
    } catch (error) {
      this.options.logger?.warn({ err: describe(error), count: invalid.length }, "could not keep the list of refused entries");
    }
  }
}
