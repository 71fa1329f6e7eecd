/**
 * What the relayer holds for one chain that the chain does not know yet, read from its stores in Redis:
 *   ingest   receipts in chunks not yet taken by the batcher (ReceiptStore.pendingChunks / readChunk), less those
 *            the batcher already holds (a chunk is acknowledged just after its receipts enter the pool)
 *   pool     receipts in the batcher's pool and in the batch being sealed (BatchPool.pooled)
 *   batches  sealed batches the chain has not settled: registered but not handed to the settler
 *            (BatchPool.unhanded) and the settler's active records (SettlementStore.active)
 * Whether a candidate batch is already settled on-chain is for the caller to decide (it has the chain).
 */
import type { Redis } from "ioredis";

import type { BatchPool } from "../batcher/batch-pool.js";
import type { Receipt, ReceiptStore } from "../queue/index.js";
import type { SettlementState, SettlementStore } from "../settler/settlement-store.js";

export interface IngestPending {
  /** unacknowledged chunks, all of them */
  readonly chunks: number;
  /** chunks read (at most `maxChunks`, oldest first); fewer than `chunks` means the figures below are partial */
  readonly chunksRead: number;
  readonly receipts: readonly Receipt[];
  /** epoch ms of the oldest chunk */
  readonly oldestAt: number | null;
}

export interface PoolPending {
  readonly receipts: readonly Receipt[];
  /** epoch ms when the oldest receipt waiting to be sealed entered the pool */
  readonly oldestAt: number | null;
}

export interface BatchCandidate {
  readonly batchId: string;
  /** "sealed": registered by the batcher, not yet handed to the settler */
  readonly state: SettlementState | "sealed";
  readonly cid: string;
  readonly rows: number;
  readonly receipts: number;
  /** Σ rows' amounts as submitted (units) */
  readonly amount: bigint;
  /** epoch ms: sealed (batcher) or submitted to the settler */
  readonly since: number;
  readonly txHash: string | null;
  readonly note: string | null;
}

export interface ChainRelayerState {
  readonly chain: string;
  readonly ingest: IngestPending;
  readonly pool: PoolPending;
  readonly batches: readonly BatchCandidate[];
  /** the settler's counters (SettlementStore.stats) */
  readonly stats: Readonly<Record<string, number>>;
}

export interface RelayerStores {
  readonly redis: Redis;
  readonly receipts: ReceiptStore;
  readonly pool: BatchPool;
  readonly settlement: SettlementStore;
}

export async function readRelayerState(chain: string, stores: RelayerStores, options: { maxChunks?: number } = {}): Promise<ChainRelayerState> {
  const maxChunks = options.maxChunks ?? 2000;
  const [chunkCount, chunks, pooled, poolState, unhanded, active, stats] = await Promise.all([
    stores.receipts.pendingCount(chain),
    stores.receipts.pendingChunks(chain, { limit: maxChunks }),
    stores.pool.pooled(),
    stores.pool.pending(),
    stores.pool.unhanded(),
    stores.settlement.active(),
    stores.settlement.stats(),
  ]);

  const inChunks = new Map<string, Receipt>();
  for (const chunk of chunks) {
    for (const receipt of (await stores.receipts.readChunk(chunk.chunkId)) ?? []) inChunks.set(receipt.id, receipt);
  }
  const pooledIds = new Set(pooled.map((receipt) => receipt.id));
  const where = await Promise.all([...inChunks.keys()].map((id) => (pooledIds.has(id) ? "pool" : stores.pool.whereIs(id))));
  const waiting = [...inChunks.values()].filter((_, i) => where[i] === null);

  const batches = new Map<string, BatchCandidate>();
  for (const record of active) {
    batches.set(record.batchId.toLowerCase(), {
      batchId: record.batchId.toLowerCase(),
      state: record.state,
      cid: record.cid,
      rows: record.rows,
      receipts: record.receipts,
      amount: BigInt(record.amount),
      since: record.submittedAt,
      txHash: record.txHash ?? record.txs.at(-1)?.hash ?? null,
      note: record.note,
    });
  }
  for (const batchId of unhanded) {
    if (batches.has(batchId.toLowerCase())) continue;
    const batch = await stores.pool.batch(batchId);
    if (batch === null) continue;
    batches.set(batchId.toLowerCase(), {
      batchId: batchId.toLowerCase(),
      state: "sealed",
      cid: batch.cid,
      rows: batch.rows,
      receipts: batch.receipts,
      amount: BigInt(batch.amount),
      since: batch.sealedAt,
      txHash: null,
      note: null,
    });
  }

  return {
    chain,
    ingest: { chunks: chunkCount, chunksRead: chunks.length, receipts: waiting, oldestAt: chunks[0]?.createdAt ?? null },
    pool: { receipts: pooled, oldestAt: poolState.oldestAt },
    batches: [...batches.values()].sort((a, b) => a.since - b.since),
    stats,
  };
}
