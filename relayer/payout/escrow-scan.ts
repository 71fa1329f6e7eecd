/**
 * Which settled batches still hold escrow, and which of them can be released now: the router's BatchSettled logs
 * (read in chunks from `fromBlock`), each batch's status, and its window's close (extended over L2 sequencer
 * outages) against the chain's own clock.
 */
import type { AutoPayLLM } from "../../typechain-types/index.js";
import { DEFAULT_LOG_CHUNK_BLOCKS, getLogsChunked } from "../disputes/logs.js";

export interface EscrowedBatch {
  readonly batchId: string;
  /** escrowed at settlement (disputed rows included) */
  readonly escrowed: bigint;
  /** unix seconds; null while the window cannot close (sequencer down, or its history unknown) */
  readonly closesAt: number | null;
  /** the window closed by the latest block's time: `release` succeeds now (unless paused) */
  readonly releasable: boolean;
}

export interface EscrowScan {
  /** chain time of the latest block (unix seconds) */
  readonly now: number;
  /** the last block read: start the next scan after it */
  readonly toBlock: number;
  readonly escrowed: EscrowedBatch[];
  /** batches of the scan already released */
  readonly released: number;
}

const NEVER = (1n << 256n) - 1n;

/**
 * Scans batches settled in blocks `fromBlock`..latest and returns those still escrowed, the releasable ones
 * first. `known` are batch ids found by an earlier scan and not released yet: they are checked again.
 */
export async function scanEscrow(
  router: AutoPayLLM,
  fromBlock: number,
  known: readonly string[] = [],
  options: { chunkBlocks?: number } = {},
): Promise<EscrowScan> {
  const provider = router.runner!.provider!;
  const latest = (await provider.getBlock("latest"))!;
  const filter = router.filters.BatchSettled();
  const logs = fromBlock > latest.number
    ? []
    : await getLogsChunked(
        provider,
        { address: await router.getAddress(), topics: await filter.getTopicFilter() },
        fromBlock,
        latest.number,
        options.chunkBlocks ?? DEFAULT_LOG_CHUNK_BLOCKS,
      );
  const escrowedAt = new Map<string, bigint>();
  for (const id of known) escrowedAt.set(id.toLowerCase(), -1n);
  for (const log of logs) {
    const parsed = router.interface.parseLog(log);
    if (parsed?.name === "BatchSettled") escrowedAt.set(String(parsed.args.batchId).toLowerCase(), parsed.args.escrowed as bigint);
  }
  const escrowed: EscrowedBatch[] = [];
  let released = 0;
  for (const [batchId, amount] of escrowedAt) {
    const info = await router.batchInfo(batchId);
    if (Number(info.status) !== 1) {
      released += 1;
      continue;
    }
    const closes = await router.disputeClosesAt(batchId);
    const closesAt = closes === NEVER ? null : Number(closes);
    escrowed.push({
      batchId,
      escrowed: amount,
      closesAt,
      releasable: closesAt !== null && closesAt <= latest.timestamp,
    });
  }
  escrowed.sort((a, b) => Number(b.releasable) - Number(a.releasable) || (a.closesAt ?? Infinity) - (b.closesAt ?? Infinity));
  return { now: latest.timestamp, toBlock: latest.number, escrowed, released };
}
