/**
 * The consumer side, for the batcher: a BullMQ worker on one chain's receipt queue that hands each chunk's
 * receipts to `handler` and acknowledges the chunk when the handler resolves.
 *
 * Contract for `handler`:
 * - Resolve only once the receipts are durable on your side (your batch state). Then the chunk is acknowledged
 *   and deleted from ingest's storage.
 * - Be idempotent by receipt id: a chunk can be delivered again (the process died between your write and the
 *   acknowledgement, or a job was lost and the sweeper re-queued it). Receipt ids are unique and stable.
 * - Throwing makes BullMQ retry the job (10 attempts with exponential backoff by default); the chunk stays
 *   pending until a handler resolves.
 *
 * ```ts
 * const worker = createReceiptWorker({
 *   connection: createWorkerRedis(config.redis),
 *   prefix: config.redis.prefix,
 *   chain: "arbitrum",
 *   handler: async (receipts, { chunkId }) => { await batcher.take(chunkId, receipts); },
 * });
 * ```
 */
import { type Job, Worker } from "bullmq";

import { bullPrefix, RECEIPTS_JOB_NAME, receiptQueueName } from "./keys.js";
import type { ReceiptJobData } from "./receipt-queue.js";
import type { Receipt } from "./receipt.js";
import { ReceiptStore } from "./receipt-store.js";
import type { RedisClient } from "./redis-connection.js";

export interface ChunkContext {
  readonly chain: string;
  readonly chunkId: string;
  readonly job: Job<ReceiptJobData>;
}

export type ChunkHandler = (receipts: Receipt[], context: ChunkContext) => Promise<void>;

export interface ReceiptWorkerOptions {
  /** ioredis client with `maxRetriesPerRequest: null` (createWorkerRedis); BullMQ duplicates it for blocking calls */
  readonly connection: RedisClient;
  /** config redis.prefix */
  readonly prefix: string;
  /** config redis.shards (on a Cluster): must be the producers' (see ReceiptStoreOptions.shards) */
  readonly shards?: number | null | undefined;
  readonly chain: string;
  readonly handler: ChunkHandler;
  /** chunks processed at once (default 1). Chunks are not ordered: a retried chunk comes after later ones. */
  readonly concurrency?: number;
  /** dedupe TTL is irrelevant to consumers; present only to build the store (default 32 days) */
  readonly dedupeTtlMs?: number;
  /**
   * A chunk whose worker died (or lost Redis) mid-way is handed out again after this long (ms, default 5,000):
   * BullMQ's stalled-job check. Handlers are quick Redis writes, so the lock (twice this) is never outlived.
   */
  readonly stalledIntervalMs?: number;
}

export type ChunkResult = { readonly receipts: number } | { readonly skipped: "already-acknowledged" };

export function createReceiptWorker(options: ReceiptWorkerOptions): Worker<ReceiptJobData, ChunkResult> {
  const store = new ReceiptStore(options.connection, { prefix: options.prefix, dedupeTtlMs: options.dedupeTtlMs ?? 32 * 86_400_000, shards: options.shards });
  return new Worker<ReceiptJobData, ChunkResult>(
    receiptQueueName(options.chain),
    async (job) => {
      if (job.name !== RECEIPTS_JOB_NAME) throw new Error(`unexpected job "${job.name}" in ${receiptQueueName(options.chain)}`);
      const { chain, chunkId } = job.data;
      const receipts = await store.readChunk(chunkId);
      if (receipts === null) return { skipped: "already-acknowledged" };
      await options.handler(receipts, { chain, chunkId, job });
      await store.ack(chain, chunkId);
      return { receipts: receipts.length };
    },
    {
      connection: options.connection,
      prefix: bullPrefix(options.prefix),
      concurrency: options.concurrency ?? 1,
      stalledInterval: options.stalledIntervalMs ?? 5000,
      lockDuration: 2 * (options.stalledIntervalMs ?? 5000),
    },
  );
}
