/**
 * What the chain says about the batches one router settled in a time window, read from its event logs:
 * BatchSettled (with its block's time and its call interval), RowRejected, DisputeOpened, DisputeRowHeld,
 * DisputeResolved and BatchReleased; and what providers' payees withdrew in the window (CreditsWithdrawn).
 *
 * A dispute covers one payer's calls of one provider and model in one usage bucket and may hold rows of several
 * batches (DisputeRowHeld: what each held row keeps in escrow). Its resolution (DisputeResolved, also emitted when
 * an expired dispute is settled: nothing refunded) splits the held amount in two: `refund` to the payer and
 * `toProvider`. The chain does not split them per row; here each held row gets its share of the refund
 * (floor(refund * row / held), the units left over one each to the first rows in the order they were held), and the
 * provider the rest of the row, so every row's parts add up to its amount and the rows' parts to the dispute's.
 *
 * The logs are kept between reads: a later read fetches only the blocks since the last one, plus the last
 * `reorgDepth` blocks again (a short reorg rewrites them), and starts over when the block it stopped at has
 * another hash now (a deep reorg, or a local node restarted or reverted). Blocks that left the window are dropped.
 */
import type { Log, Provider } from "ethers";

import { BlockClock } from "../disputes/block-clock.js";
import { DEFAULT_LOG_CHUNK_BLOCKS, getLogsChunked } from "../disputes/logs.js";
import { REJECT_REASONS, type RejectReasonName } from "../settler/outcome.js";
import { AutoPayLLM__factory } from "../../typechain-types/factories/AutoPayLLM__factory.js";

/** One row a dispute holds. */
export interface DisputeState {
  readonly disputeId: string;
  readonly index: number;
  readonly payer: string;
  /** the held row's charge, kept in escrow until the dispute is resolved */
  readonly amount: bigint;
  /** the dispute's bond (posted once for all the rows it holds) */
  readonly bond: bigint;
  readonly openedTx: string;
  /**
   * set once resolved (or expired): this row's share of the refund to the payer, the rest of the row to the provider
   * (refund + toProvider = amount). `expired`: nobody judged it in time, the charge stands (refund 0).
   */
  resolved: { refund: bigint; toProvider: bigint; tx: string; expired: boolean } | null;
}

export interface SettledBatch {
  readonly batchId: string;
  readonly txHash: string;
  readonly block: number;
  /** the block's timestamp, unix seconds */
  readonly settledAt: number;
  readonly acceptedRows: number;
  readonly rejectedRows: number;
  /** Σ accepted rows' amounts (units) */
  readonly escrowed: bigint;
  /** unix seconds */
  readonly releaseAt: number;
  /** start (unix seconds) of the usage bucket in which the batch's calls started */
  readonly callsFrom: number;
  readonly dataCid: string;
  /** row index -> reason */
  readonly rejected: Map<number, RejectReasonName>;
  /** row index -> dispute */
  readonly disputes: Map<number, DisputeState>;
  released: { amount: bigint; tx: string; block: number } | null;
}

export interface RouterWindow {
  readonly head: number;
  /** head block's timestamp, unix seconds */
  readonly headTime: number;
  /** first block of the window, and the window's start (unix seconds) */
  readonly fromBlock: number;
  readonly fromTime: number;
  /** batches settled in the window, oldest first */
  readonly batches: readonly SettledBatch[];
  /** Σ CreditsWithdrawn in the window (units) */
  readonly withdrawn: bigint;
}

export interface RouterEventsOptions {
  /** blocks per eth_getLogs (default 10,000) */
  readonly chunkBlocks?: number;
  /** blocks read again on every refresh (default 16) */
  readonly reorgDepth?: number;
}

const contract = AutoPayLLM__factory.createInterface();
const EVENT_NAMES = ["BatchSettled", "RowRejected", "DisputeOpened", "DisputeRowHeld", "DisputeResolved", "BatchReleased", "CreditsWithdrawn"] as const;
const TOPICS = EVENT_NAMES.map((name) => contract.getEvent(name).topicHash);

export class RouterEvents {
  private clock: BlockClock;
  private readonly chunkBlocks: number;
  private readonly reorgDepth: number;
  private logs: Log[] = [];
  private scanned: { from: number; fromTime: number; to: number; toHash: string } | null = null;

  constructor(
    private readonly provider: Provider,
    readonly router: string,
    options: RouterEventsOptions = {},
  ) {
    this.clock = new BlockClock(provider);
    this.chunkBlocks = options.chunkBlocks ?? DEFAULT_LOG_CHUNK_BLOCKS;
    this.reorgDepth = options.reorgDepth ?? 16;
  }

  /** Batches settled during the last `windowMs` of chain time (up to the head block). */
  async read(windowMs: number): Promise<RouterWindow> {
    const latest = await this.provider.getBlock("latest");
    if (latest === null) throw new Error("the RPC returned no latest block");
    const head = latest.number;
    if (this.scanned !== null) {
      const tip = head >= this.scanned.to ? await this.provider.getBlock(this.scanned.to) : null;
      if (tip === null || tip.hash !== this.scanned.toHash) this.reset();
    }
    const fromTime = latest.timestamp - Math.floor(windowMs / 1000);
    // The window only moves forward while its length stays: its start is at or after the last one.
    const low = this.scanned !== null && this.scanned.from <= head && fromTime >= this.scanned.fromTime ? this.scanned.from : 0;
    const fromBlock = Math.min(head, await this.clock.firstBlockAtOrAfter(fromTime, low, head));
    const start = this.scanned === null || fromBlock < this.scanned.from ? fromBlock : Math.max(fromBlock, this.scanned.to - this.reorgDepth + 1);
    if (this.scanned === null || fromBlock < this.scanned.from) this.logs = [];
    const kept = this.logs.filter((log) => log.blockNumber >= fromBlock && log.blockNumber < start);
    const fresh = start <= head ? await getLogsChunked(this.provider, { address: this.router, topics: [TOPICS] }, start, head, this.chunkBlocks) : [];
    this.logs = [...kept, ...fresh].sort((a, b) => a.blockNumber - b.blockNumber || a.index - b.index);
    this.scanned = { from: fromBlock, fromTime, to: head, toHash: latest.hash ?? "" };
    return { head, headTime: latest.timestamp, fromBlock, fromTime, batches: await this.fold(), withdrawn: this.withdrawn() };
  }

  private withdrawn(): bigint {
    let total = 0n;
    for (const log of this.logs) {
      const event = contract.parseLog({ topics: [...log.topics], data: log.data });
      if (event?.name === "CreditsWithdrawn") total += event.args.getValue("amount") as bigint;
    }
    return total;
  }

  private reset(): void {
    this.logs = [];
    this.scanned = null;
    this.clock = new BlockClock(this.provider);
  }

  /**
   * The logs in order, folded into one record per batch settled in the window. A batch's RowRejected events come
   * before its BatchSettled (same transaction), and a dispute's DisputeRowHeld events before its DisputeOpened, so
   * batches and disputes are collected first, then the other events applied. Disputes are keyed by dispute id;
   * their held rows are attached to the window's batches they belong to.
   */
  private async fold(): Promise<SettledBatch[]> {
    const parsed = this.logs.flatMap((log) => {
      const event = contract.parseLog({ topics: [...log.topics], data: log.data });
      return event === null ? [] : [{ log, event }];
    });
    const batches = new Map<string, SettledBatch>();
    for (const { log, event } of parsed) {
      if (event.name !== "BatchSettled") continue;
      const batchId = (event.args.getValue("batchId") as string).toLowerCase();
      batches.set(batchId, {
        batchId,
        txHash: log.transactionHash,
        block: log.blockNumber,
        settledAt: await this.clock.timestampOf(log.blockNumber),
        acceptedRows: Number(event.args.getValue("acceptedRows")),
        rejectedRows: Number(event.args.getValue("rejectedRows")),
        escrowed: event.args.getValue("escrowed") as bigint,
        releaseAt: Number(event.args.getValue("releaseAt")),
        callsFrom: Number(event.args.getValue("callsFrom")),
        dataCid: event.args.getValue("dataCid") as string,
        rejected: new Map(),
        disputes: new Map(),
        released: null,
      });
    }
    const disputes = new Map<string, { payer: string; bond: bigint; openedTx: string; held: DisputeState[] }>();
    for (const { log, event } of parsed) {
      if (event.name !== "DisputeOpened") continue;
      disputes.set((event.args.getValue("disputeId") as string).toLowerCase(), {
        payer: event.args.getValue("payer") as string,
        bond: event.args.getValue("bond") as bigint,
        openedTx: log.transactionHash,
        held: [],
      });
    }
    for (const { log, event } of parsed) {
      switch (event.name) {
        case "RowRejected": {
          const batch = batches.get((event.args.getValue("batchId") as string).toLowerCase());
          batch?.rejected.set(Number(event.args.getValue("index")), REJECT_REASONS[Number(event.args.getValue("reason"))] ?? "None");
          break;
        }
        case "DisputeRowHeld": {
          const disputeId = (event.args.getValue("disputeId") as string).toLowerCase();
          const dispute = disputes.get(disputeId);
          if (dispute === undefined) break; // opened before the window: its rows' batches are older still
          const row: DisputeState = {
            disputeId,
            index: Number(event.args.getValue("index")),
            payer: dispute.payer,
            amount: event.args.getValue("amount") as bigint,
            bond: dispute.bond,
            openedTx: dispute.openedTx,
            resolved: null,
          };
          dispute.held.push(row);
          batches.get((event.args.getValue("batchId") as string).toLowerCase())?.disputes.set(row.index, row);
          break;
        }
        case "DisputeResolved": {
          const dispute = disputes.get((event.args.getValue("disputeId") as string).toLowerCase());
          if (dispute === undefined) break;
          const refund = event.args.getValue("refund") as bigint;
          const expired = (event.args.getValue("overbilledTokens") as bigint) === 0n && (event.args.getValue("bondReturned") as boolean);
          const shares = splitRefund(refund, dispute.held.map((row) => row.amount));
          dispute.held.forEach((row, i) => {
            row.resolved = { refund: shares[i]!, toProvider: row.amount - shares[i]!, tx: log.transactionHash, expired };
          });
          break;
        }
        case "BatchReleased": {
          const batch = batches.get((event.args.getValue("batchId") as string).toLowerCase());
          if (batch !== undefined) batch.released = { amount: event.args.getValue("amount") as bigint, tx: log.transactionHash, block: log.blockNumber };
          break;
        }
      }
    }
    return [...batches.values()];
  }
}

/**
 * Splits `refund` over rows of `amounts` (refund <= their sum): floor(refund * amount / sum) each, then the units
 * left over (fewer than the rows) one each to the first rows that can take one. Every share is at most its row's
 * amount and the shares add up to `refund` exactly.
 */
export function splitRefund(refund: bigint, amounts: readonly bigint[]): bigint[] {
  const total = amounts.reduce((sum, amount) => sum + amount, 0n);
  if (refund < 0n || refund > total) throw new RangeError(`refund ${refund} is not within the held amount ${total}`);
  if (refund === 0n) return amounts.map(() => 0n);
  const shares = amounts.map((amount) => (refund * amount) / total);
  let left = refund - shares.reduce((sum, share) => sum + share, 0n);
  for (let i = 0; left > 0n && i < shares.length; i++) {
    if (shares[i]! < amounts[i]!) {
      shares[i]! += 1n;
      left -= 1n;
    }
  }
  return shares;
}
