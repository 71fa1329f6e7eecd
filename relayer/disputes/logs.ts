/**
 * `eth_getLogs` over a block range in chunks: public RPCs refuse wide ranges (often above 10,000 blocks), so a
 * range is read `chunkBlocks` at a time, in order.
 */
import type { Filter, Log, Provider } from "ethers";

export const DEFAULT_LOG_CHUNK_BLOCKS = 10_000;

export async function getLogsChunked(
  provider: Provider,
  filter: Omit<Filter, "fromBlock" | "toBlock">,
  fromBlock: number,
  toBlock: number,
  chunkBlocks = DEFAULT_LOG_CHUNK_BLOCKS,
): Promise<Log[]> {
  const out: Log[] = [];
  for (let from = fromBlock; from <= toBlock; from += chunkBlocks) {
    const to = Math.min(toBlock, from + chunkBlocks - 1);
    out.push(...(await provider.getLogs({ ...filter, fromBlock: from, toBlock: to })));
  }
  return out;
}
