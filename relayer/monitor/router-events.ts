/**
 * What the chain says about the batches one router settled in a time window, read from its event logs:
 * BatchSettled (with its block's time), RowRejected, DisputeOpened, DisputeResolved and BatchReleased.
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

export interface DisputeState {
  readonly index: number;
  readonly payer: string;
  /** the disputed row's charge, held in escrow until resolved */
  readonly amount: bigint;
  readonly bond: bigint;
  readonly openedTx: string;
  /** set once resolved: refund to the payer, the rest to the provider */
  resolved: { refund: bigint; toProvider: bigint; tx: string } | null;
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
}

export interface RouterEventsOptions {
  /** blocks per eth_getLogs (default 10,000) */
  readonly chunkBlocks?: number;
  /** blocks read again on every refresh (default 16) */
  readonly reorgDepth?: number;
}

const contract = AutoPayLLM__factory.createInterface();
const EVENT_NAMES = ["BatchSettled", "RowRejected", "DisputeOpened", "DisputeResolved", "BatchReleased"] as const;
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
    return { head, headTime: latest.timestamp, fromBlock, fromTime, batches: await this.fold() };
  }

  private reset(): void {
    this.logs = [];
    this.scanned = null;
    this.clock = new BlockClock(this.provider);
  }

  /**
   * The logs in order, folded into one record per batch settled in the window. A batch's RowRejected events come
   * before its BatchSettled (same transaction), so batches are collected first, then the other events applied.
   */
  private async fold(): Promise<SettledBatch[]> {
    const parsed = this.logs.flatMap((log) => {
      const event = contract.parseLog({ topics: [...log.topics], data: log.data });
      return event === null ? [] : [{ log, event, batchId: (event.args.getValue("batchId") as string).toLowerCase() }];
    });
    const batches = new Map<string, SettledBatch>();
    for (const { log, event, batchId } of parsed) {
      if (event.name !== "BatchSettled") continue;
      batches.set(batchId, {
        batchId,
        txHash: log.transactionHash,
        block: log.blockNumber,
        settledAt: await this.clock.timestampOf(log.blockNumber),
        acceptedRows: Number(event.args.getValue("acceptedRows")),
        rejectedRows: Number(event.args.getValue("rejectedRows")),
        escrowed: event.args.getValue("escrowed") as bigint,
        releaseAt: Number(event.args.getValue("releaseAt")),
        dataCid: event.args.getValue("dataCid") as string,
        rejected: new Map(),
        disputes: new Map(),
        released: null,
      });
    }
    for (const { log, event, batchId } of parsed) {
      const batch = batches.get(batchId);
      if (batch === undefined) continue; // an event of a batch settled before the window
      switch (event.name) {
        case "RowRejected":
          batch.rejected.set(Number(event.args.getValue("index")), REJECT_REASONS[Number(event.args.getValue("reason"))] ?? "None");
          break;
        case "DisputeOpened": {
          const index = Number(event.args.getValue("index"));
          batch.disputes.set(index, {
            index,
            payer: event.args.getValue("payer") as string,
            amount: event.args.getValue("amount") as bigint,
            bond: event.args.getValue("bond") as bigint,
            openedTx: log.transactionHash,
            resolved: null,
          });
          break;
        }
        case "DisputeResolved": {
          const dispute = batch.disputes.get(Number(event.args.getValue("index")));
          if (dispute !== undefined) {
            dispute.resolved = {
              refund: event.args.getValue("refund") as bigint,
              toProvider: event.args.getValue("toProvider") as bigint,
              tx: log.transactionHash,
            };
          }
          break;
        }
        case "BatchReleased":
          batch.released = { amount: event.args.getValue("amount") as bigint, tx: log.transactionHash, block: log.blockNumber };
          break;
      }
    }
    return [...batches.values()];
  }
}
