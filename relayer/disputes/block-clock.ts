/**
 * Block numbers by time: the first block at or after a timestamp, by binary search over block headers (cached).
 * Used to turn "settled at T" or an epoch [start, end) into the block range whose logs to read, so no query spans
 * the whole chain.
 */
import type { Provider } from "ethers";

export class BlockClock {
  private readonly times = new Map<number, number>();

  constructor(private readonly provider: Provider) {}

  /** Timestamp (unix seconds) of block `number`. */
  async timestampOf(number: number): Promise<number> {
    const cached = this.times.get(number);
    if (cached !== undefined) return cached;
    const block = await this.provider.getBlock(number);
    if (block === null) throw new Error(`block ${number} is not available from the RPC`);
    this.times.set(number, block.timestamp);
    return block.timestamp;
  }

  /**
   * The first block in [low, high] whose timestamp is >= `timestamp`, or `high + 1` when there is none.
   * Block timestamps never decrease, so this is a binary search: about log2(high - low) header reads.
   */
  async firstBlockAtOrAfter(timestamp: number, low: number, high: number): Promise<number> {
    let lo = low;
    let hi = high + 1;
    while (lo < hi) {
      const mid = lo + Math.floor((hi - lo) / 2);
      if ((await this.timestampOf(mid)) >= timestamp) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Blocks with `start <= timestamp < end` among [0, head]: `null` when none. */
  async blocksBetween(start: number, end: number, head: number, low = 0): Promise<{ fromBlock: number; toBlock: number } | null> {
    const fromBlock = await this.firstBlockAtOrAfter(start, low, head);
    if (fromBlock > head) return null;
    const toBlock = (await this.firstBlockAtOrAfter(end, fromBlock, head)) - 1;
    return toBlock < fromBlock ? null : { fromBlock, toBlock };
  }
}
