/**
 * A dispute's subject: one payer's usage of one provider and model over one usage bucket [callsFrom, callsTo), as the
 * router keys it. The ids here are computed exactly as AutoPayLLM computes them:
 *
 *   key       = keccak256(abi.encode(address payer, uint32 provider, uint32 model, uint256 callsFrom))
 *   disputeId = keccak256(abi.encode(bytes32 key, uint256 n))   n = intervalInfo(...).disputes before opening
 */
import { AbiCoder, getAddress, keccak256 } from "ethers";

export interface IntervalKey {
  /** checksummed */
  readonly payer: string;
  readonly provider: number;
  readonly model: number;
  /** unix seconds, a multiple of the router's usageBucket */
  readonly callsFrom: number;
}

const coder = AbiCoder.defaultAbiCoder();

export function intervalKeyHash(key: IntervalKey): string {
  return keccak256(coder.encode(["address", "uint32", "uint32", "uint256"], [key.payer, key.provider, key.model, key.callsFrom]));
}

export function disputeIdOf(key: IntervalKey, n: number | bigint): string {
  return keccak256(coder.encode(["bytes32", "uint256"], [intervalKeyHash(key), n]));
}

/** A stable text form, for maps and logs: "payer|provider|model|callsFrom". */
export function intervalLabel(key: IntervalKey): string {
  return `${getAddress(key.payer)}|${key.provider}|${key.model}|${key.callsFrom}`;
}

export function isDisputeId(text: string): boolean {
  return /^0x[0-9a-fA-F]{64}$/.test(text);
}

/** Orders rows as `dispute(rows)` requires: by batch id as uint256, then index. */
export function compareRows(a: { batchId: string; index: number }, b: { batchId: string; index: number }): number {
  const x = BigInt(a.batchId);
  const y = BigInt(b.batchId);
  if (x !== y) return x < y ? -1 : 1;
  return a.index - b.index;
}
