/**
 * What a reconciliation finds, per epoch: every settled batch checked against the archive, every charged row
 * against the provider's report over the oracle's window for it, and one line per provider comparing the sums.
 */
import type { TokenUnit } from "../config/amount.js";
import type { ArchivedRow } from "./archive-check.js";
import type { Epoch } from "./epoch.js";

export type RowStatus =
  /** the provider reports the billed tokens (within the tolerance) */
  | "ok"
  /** the provider reports fewer tokens than billed, beyond the tolerance, and the oracle would refund */
  | "overcharged"
  /** the provider reports fewer tokens beyond the tolerance, but the oracle's refund would be below min_refund */
  | "short"
  /** no adapter for this provider */
  | "no-report"
  | "report-failed";

export type DisputeMark = "none" | "open" | "resolved";

export interface RowCheck {
  readonly batchId: string;
  readonly index: number;
  readonly settledAt: number;
  readonly payer: string;
  readonly provider: string;
  readonly providerId: number;
  readonly model: string;
  readonly modelId: number;
  readonly tokens: bigint;
  readonly amount: bigint;
  /** the archived receipts of the row (null without a matching file) */
  readonly archive: ArchivedRow | null;
  /** the usage window the oracle asks about: [settledAt - usageLookback, settledAt) */
  readonly window: Epoch;
  readonly reported: bigint | null;
  readonly reportError?: string | undefined;
  /** billed - reported when positive */
  readonly shortfall: bigint;
  /** what UsageOracle.refundFor gives for the provider's figure */
  readonly predictedRefund: bigint;
  readonly status: RowStatus;
  readonly dispute: DisputeMark;
  readonly refunded: bigint;
  /** the batch is escrowed and its dispute window still open (by the chain's clock) */
  readonly disputable: boolean;
  /** unix seconds; null when the batch was released */
  readonly closesAt: number | null;
}

export interface BatchCheck {
  readonly batchId: string;
  readonly settledAt: number;
  readonly block: number | null;
  readonly txHash: string | null;
  readonly rows: number;
  readonly accepted: number;
  readonly rejected: readonly (readonly [number, string])[];
  readonly escrowed: bigint;
  readonly state: "escrowed" | "released";
  /** false when neither the calldata nor a matching file gave the rows: they are missing from every total */
  readonly rowsKnown: boolean;
  readonly archive: { readonly status: "ok" | "missing" | "mismatch"; readonly location: string | null; readonly problems: readonly string[] };
}

export type ProviderStatus = "ok" | "overcharged" | "undercharged" | "archive-mismatch" | "no-report" | "report-failed";

export interface ProviderLine {
  readonly provider: string;
  readonly rows: number;
  /** settled on-chain (accepted rows) */
  readonly tokens: bigint;
  readonly amount: bigint;
  /** from the archived receipts of the same rows (null when a file is missing or does not match) */
  readonly archiveReceipts: number | null;
  readonly archiveTokens: bigint | null;
  readonly archiveAmount: bigint | null;
  /** the provider's report over each (payer, model)'s window (null without a report) */
  readonly reported: bigint | null;
  /** tokens - reported */
  readonly diffTokens: bigint | null;
  /** diffTokens in basis points of the settled tokens */
  readonly diffBps: number | null;
  readonly overchargedRows: number;
  readonly predictedRefund: bigint;
  readonly disputed: number;
  readonly refunded: bigint;
  readonly status: ProviderStatus;
}

export interface EpochReport {
  readonly chain: { readonly name: string; readonly chainId: number; readonly router: string; readonly oracle: string | null };
  readonly epoch: Epoch;
  /** chain time when the report was made */
  readonly at: number;
  readonly token: TokenUnit;
  readonly toleranceBps: number;
  readonly usageLookback: number;
  readonly batches: readonly BatchCheck[];
  readonly rows: readonly RowCheck[];
  readonly providers: readonly ProviderLine[];
  /** differences above the tolerance and archive problems, one sentence each */
  readonly findings: readonly string[];
}
