/**
 * The batcher of one chain: takes receipts from ingest's queue into a durable pool, closes a batch at `maxReceipts`
 * receipts or when the oldest has waited `maxWaitMs`, aggregates it into charge rows, builds both Merkle trees,
 * writes the batch file to the archive, and only then hands it to the settler.
 *
 * Batches are cut at usage-bucket boundaries of the calls' start time (`router.usageBucket()` seconds): every batch
 * holds the receipts of one bucket and commits its start (`callsFrom`) on-chain. Receipts of several buckets in the
 * pool (a backfill, late deliveries, an hour boundary) become batches of their own bucket, oldest waiting first.
 *
 * Exactly once: a receipt enters the pool once (by id, see batch-pool.ts; after its batch is registered the holder
 * moves its id to the pool's long tier, spread over many slots); a sealed batch is rebuilt from the same
 * receipts after a crash (same rows, same receipts root, same batch id, same file); the settler refuses a batch id
 * it knows and the contract one it has settled.
 *
 * Several batchers on one chain (a fleet): only the holder of the chain's batcher lease (`lease`) seals, registers
 * and hands over; the others only take receipts into the pool (atomic, idempotent) and stand by, taking over within
 * the lease's `takeoverMs` when the holder dies. Seal and register are fenced with the lease's token, and register
 * compares the sealing before it deletes it: a batcher that lost the lease, or a race, gets FencedError or
 * StaleSealingError, drops the batch it was building and reads the pool again. A batch file already in the archive
 * for a batch id is kept, never rewritten (the first file of a batch id is the one registered and settled).
 */
import type { Logger } from "pino";

import { failpoint } from "../chaos/failpoint.js";
import type { Receipt } from "../queue/index.js";
import type { Archive } from "./archive.js";
import { BatchFile, buildBatch, chargesOf, type BatchContext, type BuiltBatch } from "./batch-file.js";
import { contentId } from "./content-id.js";
import { FencedError, type Lease } from "../settler/lease.js";
import { StaleSealingError, type BatchPool, type Fence } from "./batch-pool.js";
import type { BatcherEvents } from "./metrics.js";

/** What the batcher needs from the settler: one typed call. */
export interface BatchSink {
  submit(batch: {
    batchId: string;
    path: string;
    cid: string;
    receiptsRoot: string;
    /** start (unix s) of the usage bucket of the batch's calls */
    callsFrom: number;
    rows: number;
    receipts: number;
    amount: string;
  }): Promise<void>;
}

export interface BatcherOptions {
  chain: string;
  pool: BatchPool;
  archive: Archive;
  sink: BatchSink;
  /** the router's usage bucket length (seconds), read once at start (readUsageBucket) */
  usageBucket: number;
  /** chain id, router and the on-chain ids of the receipts' provider and model names (asked before each batch) */
  context: (receipts: readonly Receipt[]) => Promise<Omit<BatchContext, "usageBucket">>;
  /** close a batch at this many receipts (default 2,000) */
  maxReceipts?: number;
  /** close a batch when its oldest receipt has waited this long (ms, default 5,000) */
  maxWaitMs?: number;
  /** ms between checks (default 250) */
  tickMs?: number;
  /**
   * the chain's batcher lease (pool.leaseKeys): when given, only its holder seals and hands over, with fenced writes;
   * without it this batcher assumes it is the only one (tests, tools)
   */
  lease?: Lease;
  /** told of each batch sealed (relayer/batcher/metrics.ts) */
  events?: BatcherEvents;
  logger?: Logger;
}

export class Batcher {
  private readonly maxReceipts: number;
  private readonly maxWaitMs: number;
  private readonly tickMs: number;
  private timer: NodeJS.Timeout | null = null;
  private busy: Promise<void> | null = null;

  constructor(private readonly options: BatcherOptions) {
    this.maxReceipts = options.maxReceipts ?? 2000;
    this.maxWaitMs = options.maxWaitMs ?? 5000;
    this.tickMs = options.tickMs ?? 250;
    if (!Number.isInteger(options.usageBucket) || options.usageBucket <= 0) {
      throw new RangeError(`batcher ${options.chain}: usage bucket must be a positive number of seconds, got ${options.usageBucket}`);
    }
    // see batch-pool.ts: a take whose two steps are more than G/2 apart is refused and retried
    if (options.lease !== undefined && !(options.pool.graceMs > options.lease.takeoverMs)) {
      throw new RangeError(`batcher ${options.chain}: the pool's grace (${options.pool.graceMs} ms) must exceed the lease takeover time (${options.lease.takeoverMs} ms)`);
    }
  }
  /** the chain's batcher lease, when this batcher runs under one */
  get lease(): Lease | undefined {
    return this.options.lease;
  }


  /** The chunk handler for ingest's receipt worker: durable in the pool when it resolves. */
  async take(receipts: readonly Receipt[]): Promise<void> {
    const chainReceipts = receipts.filter((receipt) => receipt.chain === this.options.chain);
    if (chainReceipts.length !== receipts.length) {
      throw new Error(`receipts for another chain reached the ${this.options.chain} batcher`);
    }
    await this.options.pool.take(chainReceipts, this.options.usageBucket);
  }

  start(): void {
    if (this.timer !== null) return;
    this.options.lease?.start(); // renewed on its own timer too, so a slow batch does not outlive the lease
    const tick = () => {
      this.busy = this.tick()
        .then(() => undefined)
        .catch((error: unknown) => {
          this.options.logger?.error({ err: error instanceof Error ? error.message : String(error) }, "batcher tick failed; retrying");
        })
        .finally(() => {
          if (this.timer !== null) this.timer = setTimeout(tick, this.tickMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.busy;
    await this.options.lease?.release().catch(() => undefined);
  }

  /**
   * Hands over what a crash left behind, finishes a batch a crash left half-sealed, then closes every due batch.
   * With a lease: a standby does nothing (false); the holder renews the lease first. True when it ran as the holder.
   */
  async tick(now = Date.now()): Promise<boolean> {
    const lease = this.options.lease;
    if (lease !== undefined && !(await lease.acquire())) {
      if (!this.standby) this.options.logger?.info({ lease: lease.key, takeoverMs: lease.takeoverMs }, "another batcher holds this chain's lease: standing by");
      this.standby = true;
      return false;
    }
    if (this.standby) this.options.logger?.info({ lease: lease?.key, token: lease?.token }, "took the batcher lease: sealing on this chain");
    this.standby = false;
    try {
      await this.handOverUnhanded();
      await this.archiveKnown();
      if (await this.options.pool.hasSealing()) await this.sealAndArchive(now);
      for (;;) {
        const { count, oldestAt } = await this.options.pool.pending();
        const due = count >= this.maxReceipts || (oldestAt !== null && now - oldestAt >= this.maxWaitMs);
        if (!due) return true;
        if (!(await this.sealAndArchive(now))) return true;
      }
    } catch (error) {
      if (error instanceof FencedError || error instanceof StaleSealingError) {
        // another batcher took over (or won the race): drop what was built; the next tick reads the pool again
        this.options.logger?.warn({ err: error.message }, "batch dropped: another batcher registered it or holds the lease now");
        return true;
      }
      throw error;
    }
  }

  private standby = false;

  /** The fence for this tick's writes (undefined without a lease); throws FencedError once the lease lapsed. */
  private fence(): Fence | undefined {
    return this.options.lease?.fence();
  }

  /**
   * Seals one batch (or resumes the one being sealed), archives it, registers it and hands it to the settler.
   * False when there was nothing to seal.
   */
  private async sealAndArchive(now: number): Promise<boolean> {
    const { pool, chain } = this.options;
    const sealing = await pool.seal(this.maxReceipts, this.options.usageBucket, now, this.fence());
    if (sealing === null) return false;
    const receipts = await pool.receiptsOf(sealing);
    const context = { ...(await this.options.context(receipts)), usageBucket: this.options.usageBucket };
    const { built, path } = await this.archived(await buildBatch(receipts, sealing.sealedAt, sealing.callsFrom, context));
    const { batchId } = built.file;
    failpoint("after-archive");
    const amount = built.charges.reduce((sum, charge) => sum + charge.amount, 0n).toString();
    await pool.register(sealing, { batchId, cid: built.cid, path, receipts: receipts.length, rows: built.charges.length, amount }, this.fence());
    this.options.logger?.info(
      { batchId, cid: built.cid, callsFrom: sealing.callsFrom, receipts: receipts.length, rows: built.charges.length, amount },
      "batch sealed and archived",
    );
    this.options.events?.sealed({ receipts: receipts.length });
    await this.handOver(batchId);
    await pool.archiveKnown(batchId);
    return true;
  }

  /**
   * Writes the batch file unless the archive has one for this batch id already (a crash after archiving, or another
   * batcher that built the same sealing): that file is kept and used, so a batch id has one file, whoever wrote it.
   */
  private async archived(built: BuiltBatch): Promise<{ built: BuiltBatch; path: string }> {
    const { archive, chain } = this.options;
    const { batchId, receiptsRoot } = built.file;
    const bytes = await archive.readBytes(chain, batchId);
    if (bytes !== null) {
      const parsed = BatchFile.safeParse(safeJson(bytes));
      if (parsed.success && parsed.data.batchId === batchId && parsed.data.receiptsRoot === receiptsRoot) {
        const existing: BuiltBatch = { file: parsed.data, bytes, cid: await contentId(bytes), charges: chargesOf(parsed.data) };
        if (existing.cid !== built.cid) this.options.logger?.warn({ batchId, kept: existing.cid, built: built.cid }, "the archive already holds this batch's file: kept as is");
        return { built: existing, path: archive.locationOf(chain, batchId) };
      }
      this.options.logger?.warn({ batchId }, "the archive holds an unreadable or different file for this batch id: it is never replaced, so this write is refused");
    }
    this.fence(); // a lapsed lease stops here rather than writing the file
    return { built, path: await archive.write(chain, batchId, built.bytes) };
  }

  /** Moves the ids of registered batches to the pool's long tier (batch-pool.ts); a crash left some undone. */
  private async archiveKnown(): Promise<void> {
    for (const batchId of await this.options.pool.unarchived()) await this.options.pool.archiveKnown(batchId);
  }

  private async handOverUnhanded(): Promise<void> {
    for (const batchId of await this.options.pool.unhanded()) await this.handOver(batchId);
  }

  private async handOver(batchId: string): Promise<void> {
    const batch = await this.options.pool.batch(batchId);
    if (batch === null) return;
    const file = await this.options.archive.read(this.options.chain, batchId);
    if (file === null) throw new Error(`batch ${batchId} is registered but its archive file is missing: ${batch.path}`);
    await this.options.sink.submit({
      batchId,
      path: batch.path,
      cid: batch.cid,
      receiptsRoot: file.receiptsRoot,
      callsFrom: file.callsFrom,
      rows: batch.rows,
      receipts: batch.receipts,
      amount: batch.amount,
    });
    await this.options.pool.markHandedOff(batchId);
  }
}

function safeJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}
