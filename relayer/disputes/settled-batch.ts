/**
 * What the chain says about a settled batch: its stored record (`batchInfo`), the `BatchSettled` log (rows root,
 * receipts root, CID of the batch file) and the rows it rejected (`RowRejected` logs, found by the batch id topic in
 * the blocks of its settlement time). The settler's ledger may supply the outcome instead, when it is at hand.
 * Also decodes the rows exactly as submitted from the settlement transaction's calldata.
 */
import { getAddress, type Log } from "ethers";

import type { Charge } from "../batcher/rows-tree.js";
import { REJECT_REASONS, type RejectReasonName, type SettlementOutcome } from "../settler/outcome.js";
import type { BlockClock } from "./block-clock.js";
import type { DisputeChain } from "./dispute-chain.js";
import { DisputeError } from "./errors.js";

export type BatchState = "escrowed" | "released";

export interface SettledBatch {
  readonly batchId: string;
  readonly rowsRoot: string;
  readonly receiptsRoot: string;
  readonly dataCid: string;
  /** unix seconds */
  readonly settledAt: number;
  /** end of the dispute window as settled (the sequencer feed may extend it: see `disputeClosesAt`) */
  readonly releaseAt: number;
  /** unix seconds: start of the usage bucket in which every call of the batch started (committed on-chain) */
  readonly callsFrom: number;
  readonly state: BatchState;
  readonly rowCount: number;
  readonly acceptedCount: number;
  /** row index -> why the contract rejected it (rejected rows charged nothing and are in no tree) */
  readonly rejected: ReadonlyMap<number, RejectReasonName>;
  readonly escrowed: bigint;
  /** block and transaction of the settlement (null when only the settler's ledger was read and it had none) */
  readonly block: number | null;
  readonly txHash: string | null;
}

const STATES: Record<number, BatchState | undefined> = { 1: "escrowed", 2: "released" };

export function isBatchId(text: string): boolean {
  return /^0x[0-9a-fA-F]{64}$/.test(text);
}

/** The topics of the router's settlement events. */
export function settlementTopics(chain: DisputeChain): { batchSettled: string; rowRejected: string } {
  const contract = chain.router.interface;
  return { batchSettled: contract.getEvent("BatchSettled").topicHash, rowRejected: contract.getEvent("RowRejected").topicHash };
}

/**
 * Reads batch `batchId` as settled on `chain`. `outcome` (the settler's ledger record, if any) saves the log query.
 *
 * @throws DisputeError UNKNOWN_BATCH when the router has no such batch; NO_SETTLEMENT_LOG when the node cannot find
 * its BatchSettled log (a pruned node: point --rpc at an archive node).
 */
export async function readSettledBatch(
  chain: DisputeChain,
  batchId: string,
  clock: BlockClock,
  outcome?: SettlementOutcome | null,
  txHash?: string | null,
  block?: number | null,
): Promise<SettledBatch> {
  const info = await chain.router.batchInfo(batchId);
  const state = STATES[Number(info.status)];
  if (state === undefined) {
    throw new DisputeError(
      "UNKNOWN_BATCH",
      `batch ${batchId} is not settled on chain ${chain.chainId} (router ${chain.routerAddress}): check --batch and the network`,
    );
  }
  const settledAt = Number(info.settledAt);
  const base = {
    batchId,
    settledAt,
    releaseAt: Number(info.releaseAt),
    callsFrom: Number(info.callsFrom),
    state,
    rowCount: Number(info.rowCount),
    acceptedCount: Number(info.acceptedCount),
  };
  if (outcome != null && outcome.rowsRoot.toLowerCase() === info.rowsRoot.toLowerCase()) {
    return {
      ...base,
      rowsRoot: info.rowsRoot,
      receiptsRoot: info.receiptsRoot,
      dataCid: outcome.dataCid,
      rejected: new Map(outcome.rejected),
      escrowed: BigInt(outcome.escrowed),
      block: block ?? null,
      txHash: txHash ?? null,
    };
  }
  const head = await chain.provider.getBlockNumber();
  const range = await clock.blocksBetween(settledAt, settledAt + 1, head);
  const logs =
    range === null
      ? []
      : await chain.provider.getLogs({
          address: chain.routerAddress,
          fromBlock: range.fromBlock,
          toBlock: range.toBlock,
          topics: [[settlementTopics(chain).batchSettled, settlementTopics(chain).rowRejected], batchId],
        });
  const decoded = decodeSettlementLogs(chain, batchId, logs);
  if (decoded === null) {
    throw new DisputeError(
      "NO_SETTLEMENT_LOG",
      `batch ${batchId} is settled (at ${new Date(settledAt * 1000).toISOString()}) but the RPC returned no BatchSettled log ` +
        `for it: use an RPC that serves logs of old blocks (an archive node)`,
    );
  }
  return { ...base, ...decoded };
}

/** The settlement of `batchId` from its logs (BatchSettled and RowRejected), or null without a BatchSettled. */
export function decodeSettlementLogs(
  chain: DisputeChain,
  batchId: string,
  logs: readonly Log[],
): Omit<SettledBatch, "settledAt" | "releaseAt" | "state" | "rowCount" | "acceptedCount"> | null {
  let settled: Omit<SettledBatch, "settledAt" | "releaseAt" | "state" | "rowCount" | "acceptedCount" | "rejected"> | null = null;
  const rejected = new Map<number, RejectReasonName>();
  for (const log of logs) {
    if (getAddress(log.address) !== chain.routerAddress) continue;
    const parsed = chain.router.interface.parseLog({ topics: [...log.topics], data: log.data });
    if (parsed === null || (parsed.args.getValue("batchId") as string).toLowerCase() !== batchId.toLowerCase()) continue;
    if (parsed.name === "RowRejected") {
      rejected.set(Number(parsed.args.getValue("index")), REJECT_REASONS[Number(parsed.args.getValue("reason"))] ?? "None");
    } else if (parsed.name === "BatchSettled") {
      settled = {
        batchId,
        rowsRoot: parsed.args.getValue("rowsRoot") as string,
        receiptsRoot: parsed.args.getValue("receiptsRoot") as string,
        dataCid: parsed.args.getValue("dataCid") as string,
        escrowed: parsed.args.getValue("escrowed") as bigint,
        callsFrom: Number(parsed.args.getValue("callsFrom") as bigint),
        block: log.blockNumber,
        txHash: log.transactionHash,
      };
    }
  }
  return settled === null ? null : { ...settled, rejected };
}

/**
 * The rows exactly as submitted, decoded from the settlement transaction's calldata; null when the transaction is
 * not a direct `settleBatch`/`settleBatchAt` call to the router (e.g. sent through a multisig), so the caller falls back to the
 * batch file checked against the rows root.
 */
export async function submittedCharges(chain: DisputeChain, batchId: string, txHash: string): Promise<Charge[] | null> {
  const tx = await chain.provider.getTransaction(txHash);
  if (tx === null || tx.to === null || getAddress(tx.to) !== chain.routerAddress) return null;
  const parsed = chain.router.interface.parseTransaction({ data: tx.data });
  if (parsed === null || (parsed.name !== "settleBatch" && parsed.name !== "settleBatchAt")) return null;
  if ((parsed.args.getValue("batchId") as string).toLowerCase() !== batchId.toLowerCase()) return null;
  const charges = parsed.args.getValue("charges") as readonly { user: string; provider: bigint; model: bigint; tokens: bigint; amount: bigint }[];
  return charges.map((c) => ({
    user: getAddress(c.user),
    provider: Number(c.provider),
    model: Number(c.model),
    tokens: c.tokens,
    amount: c.amount,
  }));
}
