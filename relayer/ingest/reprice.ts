/**
 * Prices kept unbillable calls again with the current configuration (after a payer rule or route was added).
 * Each record goes back through the same atomic submit as a fresh POST: one that is billable now is queued
 * exactly once and leaves the unbillable set; one that is still unbillable keeps its record (with its new
 * reason, if that changed).
 */
import { REPRICEABLE_REASONS, type ReceiptQueue, type Submission, type UnbillableReason } from "../queue/index.js";
import type { SubmissionBuilder } from "./build-submission.js";
import { StoredSpendLog } from "./spend-log.js";

export interface RepriceResult {
  /** records read */
  readonly examined: number;
  /** now queued as receipts */
  readonly requeued: number;
  /** still unbillable, by their reason now */
  readonly unbillable: Readonly<Partial<Record<UnbillableReason, number>>>;
  /** records whose stored log could not be read back (left as they are) */
  readonly unreadable: number;
}

export async function repriceUnbillable(
  queue: ReceiptQueue,
  builder: SubmissionBuilder,
  options: { reasons?: readonly UnbillableReason[]; limit?: number } = {},
): Promise<RepriceResult> {
  const reasons = options.reasons ?? REPRICEABLE_REASONS;
  const limit = options.limit ?? 10_000;
  let examined = 0;
  let requeued = 0;
  let unreadable = 0;
  const unbillable: Partial<Record<UnbillableReason, number>> = {};
  for (const reason of reasons) {
    const records = await queue.store.listUnbillable(reason, { limit: Math.max(0, limit - examined) });
    const submissions: Submission[] = [];
    for (const record of records) {
      examined += 1;
      const log = StoredSpendLog.safeParse(record.log);
      if (!log.success) {
        unreadable += 1;
        continue;
      }
      const built = builder.build(log.data, record.receivedAt);
      // Keep the identity the record was stored under, so the submit script finds it.
      submissions.push({ ...built, key: record.key, fingerprint: record.fingerprint, startTime: log.data.startTime } as Submission);
    }
    const result = await queue.add(submissions);
    result.outcomes.forEach((outcome, index) => {
      const submission = submissions[index]!;
      if (outcome.outcome === "requeued" || outcome.outcome === "queued") requeued += 1;
      else if (submission.kind === "unbillable") unbillable[submission.body.reason] = (unbillable[submission.body.reason] ?? 0) + 1;
    });
    if (examined >= limit) break;
  }
  return { examined, requeued, unbillable, unreadable };
}
