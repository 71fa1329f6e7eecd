/**
 * EIP-1559 fees: a first offer from the latest base fee and the node's suggested tip, and replacements that raise
 * both fees by at least `bumpPercent` (10 % by default, rounded up, as geth and Hardhat require), never above the
 * configured ceiling.
 */
export interface Fees {
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
}

export interface FeePolicy {
  /** never offer more than this per gas (wei) */
  maxFeePerGas: bigint;
  /** tip floor (wei), used when the node suggests less */
  minPriorityFeePerGas: bigint;
  /** replacement raise of both fees (percent, at least 10) */
  bumpPercent: number;
}

export class FeeCeilingError extends Error {
  override readonly name = "FeeCeilingError";
}

export function initialFees(baseFee: bigint, suggestedTip: bigint, policy: FeePolicy): Fees {
  let tip = suggestedTip > policy.minPriorityFeePerGas ? suggestedTip : policy.minPriorityFeePerGas;
  let maxFee = 2n * baseFee + tip;
  if (maxFee > policy.maxFeePerGas) maxFee = policy.maxFeePerGas;
  if (maxFee < baseFee) {
    throw new FeeCeilingError(`the base fee (${baseFee} wei) is above the fee ceiling (${policy.maxFeePerGas} wei)`);
  }
  if (tip > maxFee) tip = maxFee;
  return { maxFeePerGas: maxFee, maxPriorityFeePerGas: tip };
}

/** `value` raised by `percent`, rounded up, and by at least 1 wei. */
export function raise(value: bigint, percent: number): bigint {
  const scaled = BigInt(Math.round(percent * 100));
  const raised = value + (value * scaled + 9_999n) / 10_000n;
  return raised > value ? raised : value + 1n;
}

/**
 * Fees for a replacement of a transaction sent with `previous`, given the current base fee. Both fees rise by at
 * least `bumpPercent`; the max fee also covers twice the current base fee. Null when the ceiling forbids a valid
 * replacement (then the pending transaction is left to be mined as it is).
 */
export function bumpedFees(previous: Fees, baseFee: bigint, policy: FeePolicy): Fees | null {
  const percent = Math.max(policy.bumpPercent, 10);
  const tip = raise(previous.maxPriorityFeePerGas, percent);
  let maxFee = raise(previous.maxFeePerGas, percent);
  const wanted = 2n * baseFee + tip;
  if (wanted > maxFee) maxFee = wanted;
  if (maxFee > policy.maxFeePerGas) maxFee = policy.maxFeePerGas;
  if (maxFee < raise(previous.maxFeePerGas, percent) || tip > maxFee) return null;
  return { maxFeePerGas: maxFee, maxPriorityFeePerGas: tip };
}
