/**
 * Moving a local development node forward: mine blocks (the governance clock counts blocks) and move time (the
 * timelock counts seconds). Refused on anything but a local node.
 */
import { toQuantity, type JsonRpcProvider } from "ethers";

import { ChainError } from "./errors.js";
import { LOCAL_CHAIN_IDS } from "./networks.js";

export interface Advance {
  /** Blocks to mine (at least 1 when `seconds` is set, so the new time is in a block). */
  blocks?: number;
  /** Seconds to add to the chain's time before mining. */
  seconds?: number;
}

/** @returns the latest block number and timestamp afterwards. */
export async function advanceLocalChain(
  provider: JsonRpcProvider,
  { blocks = 0, seconds = 0 }: Advance,
): Promise<{ block: number; timestamp: number }> {
  const chainId = Number((await provider.getNetwork()).chainId);
  if (!LOCAL_CHAIN_IDS.has(chainId)) {
    throw new ChainError(
      "NOT_LOCAL",
      `chain ${chainId} is not a local development node: blocks and time cannot be forced there, only waited for`,
    );
  }
  if (!Number.isInteger(blocks) || !Number.isInteger(seconds) || blocks < 0 || seconds < 0) {
    throw new ChainError("NOT_LOCAL", "--blocks and --seconds take whole non-negative numbers");
  }
  if (seconds > 0) await provider.send("evm_increaseTime", [seconds]);
  const mine = Math.max(blocks, seconds > 0 ? 1 : 0);
  if (mine > 0) await provider.send("hardhat_mine", [toQuantity(mine)]);
  const latest = await provider.getBlock("latest");
  return { block: latest?.number ?? 0, timestamp: latest?.timestamp ?? 0 };
}
