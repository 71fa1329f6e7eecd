/**
 * The verdict of a dispute over an interval, computed exactly as the contracts do:
 *
 *   UsageOracle.overbilledFor:  excess = max(0, billed - reported); 0 when excess * 10000 <= billed * toleranceBps;
 *                               overbilled = min(max(0, excess - priorRefunded), heldTokens)
 *   AutoPayLLM.resolveDispute:  refund = floor(heldAmount * overbilled / heldTokens)
 */
export interface IntervalTotals {
  readonly billedTokens: bigint;
  readonly heldTokens: bigint;
  readonly heldAmount: bigint;
  /** tokens of this interval refunded by earlier disputes */
  readonly priorRefundedTokens: bigint;
}

export function oracleOverbilled(totals: IntervalTotals, reportedTokens: bigint, toleranceBps: bigint): bigint {
  const { billedTokens: billed } = totals;
  if (billed <= reportedTokens) return 0n;
  const excess = billed - reportedTokens;
  if (excess * 10_000n <= billed * toleranceBps) return 0n;
  const remaining = excess > totals.priorRefundedTokens ? excess - totals.priorRefundedTokens : 0n;
  return remaining < totals.heldTokens ? remaining : totals.heldTokens;
}

export function disputeRefund(heldAmount: bigint, heldTokens: bigint, overbilledTokens: bigint): bigint {
  return heldTokens === 0n ? 0n : (heldAmount * overbilledTokens) / heldTokens;
}

/** The refund a dispute opened now gets for the provider's figure. */
export function predictedRefund(totals: IntervalTotals, reportedTokens: bigint, toleranceBps: bigint): { overbilled: bigint; refund: bigint } {
  const overbilled = oracleOverbilled(totals, reportedTokens, toleranceBps);
  return { overbilled, refund: disputeRefund(totals.heldAmount, totals.heldTokens, overbilled) };
}

/** Whether `shortfall` of `billed` tokens is more than `toleranceBps` of them. */
export function beyondTolerance(shortfall: bigint, billed: bigint, toleranceBps: number): boolean {
  return shortfall * 10_000n > billed * BigInt(toleranceBps);
}
