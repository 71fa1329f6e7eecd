/**
 * Every settled row of an interval, with its proof: the batches whose committed `callsFrom` is the interval's (from
 * the router's BatchSettled logs, which carry it, from the first block at or after `callsFrom` to the head: a batch
 * commits a bucket that started before its settlement), their rows as settled (the settlement calldata, else the
 * batch file from the archive or IPFS, either way rebuilding the rows root on-chain), and per row what a dispute
 * opened now would do with it (held, or named only: released, window closed, held by an earlier dispute).
 */
import { getAddress, type Log } from "ethers";

import { chargesOf } from "../batcher/batch-file.js";
import { buildRowsTree, type Charge, type RowsTree } from "../batcher/rows-tree.js";
import { mapLimit } from "../reconciler/map-limit.js";
import { loadBatchFile, type BatchFileSources } from "./batch-source.js";
import type { BlockClock } from "./block-clock.js";
import type { DisputeChain } from "./dispute-chain.js";
import { DisputeError } from "./errors.js";
import { compareRows, type IntervalKey } from "./interval.js";
import { DEFAULT_LOG_CHUNK_BLOCKS, getLogsChunked } from "./logs.js";
import { decodeSettlementLogs, settlementTopics, submittedCharges, type SettledBatch } from "./settled-batch.js";

/** A settled batch with its rows as settled (null when neither calldata nor a matching file gave them). */
export interface BatchRows {
  readonly batch: SettledBatch;
  readonly charges: readonly Charge[] | null;
  readonly tree: RowsTree | null;
  /** where the rows came from */
  readonly source: "calldata" | "archive" | "ipfs" | null;
  readonly location: string | null;
  /** why the rows are unknown (when `charges` is null) */
  readonly problem?: string | undefined;
}

/** One charged row of an interval and what a dispute opened now does with it. */
export interface IntervalRow {
  readonly batchId: string;
  readonly index: number;
  readonly charge: Charge;
  readonly proof: string[];
  readonly batchState: "escrowed" | "released";
  /** unix seconds when the batch's window closes (null: released); MAX_SAFE_INTEGER while the sequencer is down */
  readonly closesAt: number | null;
  /** the dispute that holds (or held) the row, null when none */
  readonly heldBy: string | null;
  /** a dispute opened now would hold the row's funds: escrowed, window open, never held */
  readonly holdable: boolean;
}

export interface ScanOptions {
  /** only blocks whose time is < toTime (default: to the head) */
  readonly toTime?: number | undefined;
  readonly logChunkBlocks?: number | undefined;
  readonly concurrency?: number | undefined;
}

const ZERO = `0x${"00".repeat(32)}`;

/**
 * The batches settled in blocks whose time is >= `fromTime` (and < `options.toTime`, default to the head), with their committed `callsFrom`;
 * `callsFrom` filters them (undefined: all).
 */
export async function scanSettledBatches(
  chain: DisputeChain,
  clock: BlockClock,
  fromTime: number,
  callsFrom?: ReadonlySet<number>,
  options: ScanOptions = {},
): Promise<SettledBatch[]> {
  const head = await chain.provider.getBlockNumber();
  const fromBlock = await clock.firstBlockAtOrAfter(fromTime, 0, head);
  const toBlock = options.toTime === undefined ? head : (await clock.firstBlockAtOrAfter(options.toTime, fromBlock, head)) - 1;
  if (fromBlock > head || toBlock < fromBlock) return [];
  const topics = settlementTopics(chain);
  const logs = await getLogsChunked(
    chain.provider,
    { address: chain.routerAddress, topics: [[topics.batchSettled, topics.rowRejected]] },
    fromBlock,
    toBlock,
    options.logChunkBlocks ?? DEFAULT_LOG_CHUNK_BLOCKS,
  );
  const byBatch = new Map<string, Log[]>();
  for (const log of logs) {
    const id = log.topics[1]?.toLowerCase();
    if (id === undefined) continue;
    byBatch.set(id, [...(byBatch.get(id) ?? []), log]);
  }
  const decoded = [...byBatch.entries()]
    .map(([batchId, list]) => decodeSettlementLogs(chain, batchId, list))
    .filter((d): d is NonNullable<typeof d> => d !== null && (callsFrom === undefined || callsFrom.has(d.callsFrom)));
  const batches = await mapLimit(decoded, options.concurrency ?? 4, async (d): Promise<SettledBatch> => {
    const info = await chain.router.batchInfo(d.batchId);
    return {
      ...d,
      settledAt: Number(info.settledAt),
      releaseAt: Number(info.releaseAt),
      state: Number(info.status) === 2 ? "released" : "escrowed",
      rowCount: Number(info.rowCount),
      acceptedCount: Number(info.acceptedCount),
    };
  });
  return batches.sort((a, b) => (a.block ?? 0) - (b.block ?? 0));
}

/**
 * The rows of `batch` as settled: from the settlement calldata when it is a direct call, else from the batch file
 * (archive, else IPFS by the CID on-chain). Either way they must rebuild the rows root the chain stores.
 */
export async function batchRows(chain: DisputeChain, sources: BatchFileSources, batch: SettledBatch): Promise<BatchRows> {
  const rejected = new Set(batch.rejected.keys());
  const matches = (charges: readonly Charge[]) => {
    const tree = buildRowsTree(charges, rejected);
    return tree.root.toLowerCase() === batch.rowsRoot.toLowerCase() || (batch.acceptedCount === 0 && batch.rowsRoot === ZERO) ? tree : null;
  };
  const submitted = batch.txHash === null ? null : await submittedCharges(chain, batch.batchId, batch.txHash);
  if (submitted !== null) {
    const tree = matches(submitted);
    if (tree !== null) return { batch, charges: submitted, tree, source: "calldata", location: batch.txHash };
  }
  try {
    const loaded = await loadBatchFile(sources, { batchId: batch.batchId, dataCid: batch.dataCid, chainId: chain.chainId, router: chain.routerAddress });
    const charges = chargesOf(loaded.file);
    const tree = matches(charges);
    if (tree === null) {
      return {
        batch,
        charges: null,
        tree: null,
        source: null,
        location: loaded.location,
        problem: `the rows of ${loaded.location} do not rebuild the rows root ${batch.rowsRoot} of batch ${batch.batchId}`,
      };
    }
    return { batch, charges, tree, source: loaded.from, location: loaded.location };
  } catch (error) {
    if (!(error instanceof DisputeError)) throw error;
    return { batch, charges: null, tree: null, source: null, location: null, problem: error.message };
  }
}

/** The accepted rows of `key` among `batches` (whose callsFrom must be the key's), proven and sorted for `dispute`. */
export async function intervalRowsOf(chain: DisputeChain, batches: readonly BatchRows[], key: IntervalKey, now: number): Promise<IntervalRow[]> {
  const payer = getAddress(key.payer);
  const out: IntervalRow[] = [];
  for (const rows of batches) {
    const { batch, charges, tree } = rows;
    if (batch.callsFrom !== key.callsFrom) continue;
    if (charges === null || tree === null) {
      throw new DisputeError(
        "BATCH_FILE_MISSING",
        `batch ${batch.batchId} settled rows of the interval's bucket but its rows are unknown (${rows.problem ?? "no source"}): ` +
          "a dispute must name every row of the interval; pass --archive <dir> or --ipfs <url> so its batch file can be read",
      );
    }
    let closesAt: number | null | undefined;
    for (const [index, charge] of charges.entries()) {
      if (batch.rejected.has(index)) continue;
      if (getAddress(charge.user) !== payer || charge.provider !== key.provider || charge.model !== key.model) continue;
      if (closesAt === undefined) closesAt = batch.state === "escrowed" ? safeSeconds(await chain.router.disputeClosesAt(batch.batchId)) : null;
      const held = await chain.router.rowDispute(batch.batchId, index);
      const heldBy = held === ZERO ? null : held.toLowerCase();
      out.push({
        batchId: batch.batchId.toLowerCase(),
        index,
        charge: { ...charge, user: getAddress(charge.user) },
        proof: tree.proof(index),
        batchState: batch.state,
        closesAt,
        heldBy,
        holdable: batch.state === "escrowed" && closesAt !== null && now < closesAt && heldBy === null,
      });
    }
  }
  return out.sort(compareRows);
}

/** Seconds as a number; "never" (the window waits for the L2 sequencer) as MAX_SAFE_INTEGER. */
export function safeSeconds(value: bigint): number {
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
}
