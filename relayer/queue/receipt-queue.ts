/**
 * `ReceiptQueue`: the producer side. One BullMQ queue per chain (`receipts-<chain>`, prefix `{<prefix>}`); one job
 * per chunk of receipts, never one per receipt.
 *
 * Exactly-once across crashes:
 * 1. `add` records submissions with one atomic script (dedupe + chunk, see ReceiptStore.submit). Once it returns
 *    the receipts are durable in Redis and the caller may acknowledge LiteLLM.
 * 2. It then adds a BullMQ job per new chunk with `jobId = chunkId`. If the process dies before that, the chunk
 *    stays in the chain's pending set and `recover` (at start-up and every sweep interval) adds the missing job
 *    under the same id; adding an existing job id is a no-op in BullMQ.
 * 3. A chunk leaves the pending set only when the consumer acknowledges it (`ReceiptStore.ack`, done for you by
 *    `createReceiptWorker`), so a job lost or removed before its chunk was taken is re-created: consumers see each
 *    chunk at least once and must be idempotent by receipt id (or chunk id).
 */
import { type JobsOptions, Queue } from "bullmq";
import type { Logger } from "pino";

import { asQueueError, QueueUnavailableError } from "./errors.js";
import { bullPrefix, RECEIPTS_JOB_NAME, receiptQueueName } from "./keys.js";
import { type PreparedSubmissions, prepareSubmissions } from "./prepared.js";
import { type ChunkRef, type InvalidEntry, ReceiptStore, type Submission, type SubmitResult } from "./receipt-store.js";
import { masterNodes, type RedisClient } from "./redis-connection.js";

/** Data of every job in a receipt queue (job name: "receipts"). Read the receipts with ReceiptStore.readChunk. */
export interface ReceiptJobData {
  readonly v: 1;
  readonly chain: string;
  readonly chunkId: string;
  /** receipts in the chunk */
  readonly count: number;
}

export interface ReceiptQueueOptions {
  /**
   * ioredis client used for every producer command. Create it with `createProducerRedis` (enableOfflineQueue
   * false, a command timeout) so that calls fail fast while Redis is down instead of hanging the HTTP request.
   */
  readonly connection: RedisClient;
  /** key prefix, letters, digits, "_" and "-" (config redis.prefix) */
  readonly prefix: string;
  /** hash tags the ingest keys are spread over (config redis.shards; see ReceiptStoreOptions.shards) */
  readonly shards?: number | null | undefined;
  /** every chain receipts may be queued for */
  readonly chains: readonly string[];
  /** dedupe and unbillable record lifetime, ms (config ingest.dedupe_ttl; default 32 days) */
  readonly dedupeTtlMs: number;
  /** most submissions per atomic write, hence per chunk and job (config ingest.max_chunk; default 1000) */
  readonly maxChunk?: number;
  /** replicas that must confirm a write before `add` returns (Redis WAIT; default 0) */
  readonly waitReplicas?: number;
  /** how long to wait for them, ms (default 1000) */
  readonly waitTimeoutMs?: number;
  /** options of every chunk job (defaults: 10 attempts, exponential backoff from 1 s, keep failed jobs) */
  readonly jobOptions?: JobsOptions;
  readonly logger?: Logger;
}

export interface AddResult extends SubmitResult {
  /** chunks whose job could not be added now; the sweeper adds them later */
  readonly jobsDeferred: number;
}

const DEFAULT_JOB_OPTIONS: JobsOptions = {
  attempts: 10,
  backoff: { type: "exponential", delay: 1000 },
  removeOnComplete: { age: 24 * 3600, count: 10_000 },
  removeOnFail: false,
};

export class ReceiptQueue {
  readonly store: ReceiptStore;
  private readonly queues = new Map<string, Queue<ReceiptJobData>>();
  private readonly maxChunk: number;
  private readonly logger: Logger | undefined;

  constructor(private readonly options: ReceiptQueueOptions) {
    this.store = new ReceiptStore(options.connection, { prefix: options.prefix, dedupeTtlMs: options.dedupeTtlMs, shards: options.shards });
    this.maxChunk = options.maxChunk ?? 1000;
    this.logger = options.logger;
    for (const chain of new Set(options.chains)) {
      this.queues.set(
        chain,
        new Queue<ReceiptJobData>(receiptQueueName(chain), {
          connection: options.connection,
          prefix: bullPrefix(options.prefix),
          defaultJobOptions: { ...DEFAULT_JOB_OPTIONS, ...options.jobOptions },
        }),
      );
    }
  }

  get chains(): string[] {
    return [...this.queues.keys()];
  }

  /** The BullMQ queue of `chain` (for inspection; consume it with createReceiptWorker). */
  queue(chain: string): Queue<ReceiptJobData> {
    const queue = this.queues.get(chain);
    if (queue === undefined) throw new Error(`no receipt queue for chain "${chain}" (configured: ${this.chains.join(", ")})`);
    return queue;
  }

  /**
   * Records submissions exactly once and queues their chunks. When it resolves, everything it reports is durable
   * in Redis. Throws QueueUnavailableError (answer 503) when Redis cannot take the write.
   */
  async add(submissions: readonly Submission[]): Promise<AddResult> {
    return this.addPrepared(prepareSubmissions(submissions, this.maxChunk));
  }

  /** `add` for submissions already encoded (by prepareSubmissions with parts of at most maxChunk). */
  async addPrepared(parts: readonly PreparedSubmissions[]): Promise<AddResult> {
    for (const part of parts) {
      for (const { chain } of part.chains) {
        if (!this.queues.has(chain)) throw new Error(`receipts for chain "${chain}", which has no queue (configured: ${this.chains.join(", ")})`);
      }
    }
    const outcomes: Array<SubmitResult["outcomes"][number]> = [];
    const chunks: ChunkRef[] = [];
    const now = Date.now();
    for (const part of parts) {
      const result = await this.store.submitPrepared(part, now);
      outcomes.push(...result.outcomes);
      chunks.push(...result.chunks);
    }
    // Also for a body of duplicates: the earlier write of those receipts may not have reached the replicas yet.
    await this.waitForReplicas();
    const jobsDeferred = await this.addJobs(chunks);
    return { outcomes, chunks, jobsDeferred };
  }

  /**
   * Adds the missing job of every pending chunk older than `graceMs` (younger ones belong to a request still in
   * flight). Safe to run anywhere, any time: a job id that exists is left alone. Returns the chunks re-queued.
   */
  async recover(options: { graceMs?: number; now?: number } = {}): Promise<ChunkRef[]> {
    const before = (options.now ?? Date.now()) - (options.graceMs ?? 0);
    const requeued: ChunkRef[] = [];
    for (const [chain, queue] of this.queues) {
      const committed = await this.store.recoverStaged(chain, options.now ?? Date.now());
      if (committed.length > 0) this.logger?.warn({ chain, chunks: committed.length }, "committed chunks of POSTs that died between their steps");
      for (const { chunkId } of await this.store.pendingChunks(chain, { before })) {
        if ((await queue.getJobState(chunkId)) !== "unknown") continue;
        const receipts = await this.store.readChunk(chunkId);
        if (receipts === null) continue; // acknowledged meanwhile
        await queue.add(RECEIPTS_JOB_NAME, { v: 1, chain, chunkId, count: receipts.length }, { jobId: chunkId });
        requeued.push({ chain, chunkId, count: receipts.length });
      }
    }
    if (requeued.length > 0) this.logger?.warn({ chunks: requeued.length }, "re-queued chunks whose job was missing");
    return requeued;
  }

  /** Runs `recover` now and every `intervalMs`; returns a stop function that waits for a running sweep. */
  startSweeper(options: { intervalMs: number; graceMs: number }): () => Promise<void> {
    let running: Promise<unknown> = Promise.resolve();
    let busy = false;
    const sweep = () => {
      if (busy) return;
      busy = true;
      running = this.recover({ graceMs: options.graceMs })
        .catch((error: unknown) => this.logger?.warn({ err: describe(error) }, "recovery sweep failed; will retry"))
        .finally(() => {
          busy = false;
        });
    };
    sweep();
    const timer = setInterval(sweep, options.intervalMs);
    timer.unref();
    return async () => {
      clearInterval(timer);
      await running;
    };
  }

  /** Keeps the reason and id of entries refused as invalid (see ReceiptStore.recordInvalid). */
  recordInvalid(entries: readonly InvalidEntry[], receivedAt = Date.now()): Promise<void> {
    return this.store.recordInvalid(entries, receivedAt);
  }

  /** Resolves when Redis answers PING within `timeoutMs`; throws QueueUnavailableError otherwise. */
  async ping(timeoutMs = 1000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.options.connection.ping(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new QueueUnavailableError(`Redis did not answer PING within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (error) {
      throw asQueueError(error, "answer PING");
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Whether Redis persists what it acknowledges: "aof" (appendonly yes), "off", or "unknown" (CONFIG is disabled,
   * as on some managed services). With "off", a Redis restart loses receipts already acknowledged to LiteLLM.
   */
  async persistence(): Promise<"aof" | "off" | "unknown"> {
    try {
      const reply = (await this.options.connection.config("GET", "appendonly")) as string[];
      return reply[1] === "yes" ? "aof" : "off";
    } catch {
      return "unknown";
    }
  }

  /**
   * Closes the BullMQ queues (not the connection, which the caller owns). Each queue's start (a version check over
   * the shared connection) is waited for first, at most 5 s: a queue closed before its start ended stops listening
   * to it, and a start that then fails because the caller quit the connection (on a Redis Cluster: "Cluster is
   * ended") was an uncaught error that killed the process, e.g. a CLI command that opens the queue only to read it.
   */
  async close(): Promise<void> {
    await Promise.all(
      [...this.queues.values()].map(async (queue) => {
        let timer: NodeJS.Timeout | undefined;
        const bounded = new Promise<void>((resolve) => (timer = setTimeout(resolve, 5000)));
        await Promise.race([queue.waitUntilReady().then(() => undefined, () => undefined), bounded]);
        clearTimeout(timer);
        await queue.close();
      }),
    );
  }

  private async waitForReplicas(): Promise<void> {
    const wanted = this.options.waitReplicas ?? 0;
    if (wanted === 0) return;
    let confirmed: number;
    try {
      // WAIT counts this connection's writes on one server; on a Cluster each master that took a shard's writes
      // must confirm (a master this connection did not write to answers at once)
      const counts = await Promise.all(masterNodes(this.options.connection).map((node) => node.wait(wanted, this.options.waitTimeoutMs ?? 1000)));
      confirmed = Math.min(...counts);
    } catch (error) {
      throw asQueueError(error, "confirm the write on replicas");
    }
    if (confirmed < wanted) {
      throw new QueueUnavailableError(`only ${confirmed} of ${wanted} Redis replicas confirmed the write (redis.wait_replicas)`);
    }
  }

  private async addJobs(chunks: readonly ChunkRef[]): Promise<number> {
    let deferred = 0;
    await Promise.all(
      chunks.map(async (chunk) => {
        try {
          await this.queue(chunk.chain).add(
            RECEIPTS_JOB_NAME,
            { v: 1, chain: chunk.chain, chunkId: chunk.chunkId, count: chunk.count },
            { jobId: chunk.chunkId },
          );
        } catch (error) {
          deferred += 1;
          this.logger?.warn({ chunkId: chunk.chunkId, err: describe(error) }, "chunk stored, job not added yet; the sweeper will add it");
        }
      }),
    );
    return deferred;
  }
}

/** An error for a log line: name, code and message only (messages here never carry secrets). */
export function describe(error: unknown): { name: string; code?: string; message: string } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { name: error.name, ...(typeof code === "string" ? { code } : {}), message: error.message };
  }
  return { name: "unknown", message: String(error) };
}
