/**
 * The refund the UsageOracle gives a disputed row (`UsageOracle.refundFor`, written out): nothing when the provider
 * reports at least the billed tokens, or falls short by at most `toleranceBps` of them; otherwise the amount beyond
 * the fair share `ceil(amount * reported / billed)`.
 */
export function oracleRefund(amount: bigint, billedTokens: bigint, reportedTokens: bigint, toleranceBps: bigint): bigint {
  if (reportedTokens >= billedTokens) return 0n;
  const missing = billedTokens - reportedTokens;
  if (missing * 10_000n <= billedTokens * toleranceBps) return 0n;
  const fair = (amount * reportedTokens + billedTokens - 1n) / billedTokens;
  return amount - fair;
}

/** Whether `shortfall` of `billed` tokens is more than `toleranceBps` of them. */
export function beyondTolerance(shortfall: bigint, billed: bigint, toleranceBps: number): boolean {
  return shortfall * 10_000n > billed * BigInt(toleranceBps);
}
