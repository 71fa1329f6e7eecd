/**
 * What a reconciliation finds, per epoch: every batch settled in it checked against the archive; every interval
 * those batches bill (payer, provider, model, usage bucket) with ALL its settled rows, whatever batch settled them,
 * against the provider's report for that bucket (the comparison the UsageOracle makes); one line per provider.
 */
import type { TokenUnit } from "../config/amount.js";
import type { ArchivedRow } from "./archive-check.js";
import type { Epoch } from "./epoch.js";

export type IntervalStatus =
  /** the provider reports the billed tokens (within the tolerance) */
  | "ok"
  /**
   * billed beyond the report (less what earlier disputes refunded) and the tolerance, and a dispute opened now would
   * refund at least min_refund
   */
  | "overcharged"
  /** billed beyond the report and the tolerance, but a dispute now would refund less than min_refund (or nothing) */
  | "short"
  /** no adapter for this provider */
  | "no-report"
  | "report-failed";

export interface IntervalRowCheck {
  readonly batchId: string;
  readonly index: number;
  readonly tokens: bigint;
  readonly amount: bigint;
  /** settled in the epoch reported (else in another epoch, billing the same bucket) */
  readonly inEpoch: boolean;
  /** a dispute opened now would hold its funds */
  readonly holdable: boolean;
  readonly heldBy: string | null;
  /** the archived receipts of the row (null without a matching file) */
  readonly archive: ArchivedRow | null;
}

export interface IntervalCheck {
  readonly payer: string;
  readonly provider: string;
  readonly providerId: number;
  readonly model: string;
  readonly modelId: number;
  /** the usage bucket [callsFrom, callsTo), unix seconds: the window the provider is asked about */
  readonly callsFrom: number;
  readonly callsTo: number;
  readonly rows: readonly IntervalRowCheck[];
  readonly billedTokens: bigint;
  readonly billedAmount: bigint;
  /** what a dispute opened now would hold */
  readonly heldTokens: bigint;
  readonly heldAmount: bigint;
  readonly reported: bigint | null;
  readonly reportError?: string | undefined;
  /** billed - reported when positive */
  readonly excess: bigint;
  /** over-billed tokens of this interval already refunded by resolved disputes */
  readonly refundedTokens: bigint;
  /** the oracle's verdict for a dispute opened now (UsageOracle.overbilledFor) and the router's refund */
  readonly predictedOverbilled: bigint;
  readonly predictedRefund: bigint;
  readonly status: IntervalStatus;
  /** the open dispute of this interval (null: none) */
  readonly openDispute: string | null;
  readonly disputes: number;
  /** the earliest settlement time of its rows in the epoch (for retries) */
  readonly settledAt: number;
}

export interface BatchCheck {
  readonly batchId: string;
  readonly settledAt: number;
  readonly callsFrom: number;
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
  readonly intervals: number;
  readonly rows: number;
  /** billed in those intervals (every settled row of them) */
  readonly tokens: bigint;
  readonly amount: bigint;
  /** from the archived receipts of the same rows (null when a file is missing or does not match) */
  readonly archiveReceipts: number | null;
  readonly archiveTokens: bigint | null;
  readonly archiveAmount: bigint | null;
  /** the provider's reports over those intervals (null without a report) */
  readonly reported: bigint | null;
  /** tokens - reported */
  readonly diffTokens: bigint | null;
  /** diffTokens in basis points of the billed tokens */
  readonly diffBps: number | null;
  readonly overchargedIntervals: number;
  readonly predictedRefund: bigint;
  readonly disputed: number;
  readonly refundedTokens: bigint;
  readonly status: ProviderStatus;
}

export interface EpochReport {
  readonly chain: { readonly name: string; readonly chainId: number; readonly router: string; readonly oracle: string | null };
  readonly epoch: Epoch;
  /** chain time when the report was made */
  readonly at: number;
  readonly token: TokenUnit;
  readonly toleranceBps: number;
  /** the oracle's tolerance (its verdicts are predicted with it) */
  readonly oracleToleranceBps: number;
  /** the router's usage bucket, seconds */
  readonly usageBucket: number;
  readonly batches: readonly BatchCheck[];
  readonly intervals: readonly IntervalCheck[];
  readonly providers: readonly ProviderLine[];
  /** differences above the tolerance and archive problems, one sentence each */
  readonly findings: readonly string[];
}
