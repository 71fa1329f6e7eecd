/**
 * Prometheus metrics of the batcher, on the process registry (relayer/telemetry). Labels: `chain` only.
 *   agentgpt_batcher_batches_sealed_total{chain}          counter: batches sealed, archived and registered
 *   agentgpt_batcher_receipts_sealed_total{chain}         counter: receipts in those batches
 *   agentgpt_batcher_receipts_pending{chain}              gauge (Redis at scrape): receipts in the pool, not sealed yet
 *   agentgpt_batcher_oldest_receipt_age_seconds{chain}    gauge (Redis at scrape): how long the oldest of them has
 *                                                         waited (0 when the pool is empty)
 * Counters count since the process started (rate() them); the gauges read the shared pool, so every process that
 * runs the batcher of a chain reports the same value.
 */
import { Counter, Gauge, type Registry } from "prom-client";

import { sharedEach } from "../telemetry/within.js";
import type { BatchPool } from "./batch-pool.js";

/** What the batcher tells its metrics. */
export interface BatcherEvents {
  sealed(batch: { receipts: number }): void;
}

export class BatcherMetrics {
  private readonly batchesSealed: Counter<"chain">;
  private readonly receiptsSealed: Counter<"chain">;
  private readonly pools = new Map<string, Pick<BatchPool, "pending">>();

  constructor(registry: Registry) {
    const registers = [registry];
    const pools = this.pools;
    this.batchesSealed = new Counter({ name: "agentgpt_batcher_batches_sealed_total", help: "batches sealed, archived and registered, by chain", labelNames: ["chain"], registers });
    this.receiptsSealed = new Counter({ name: "agentgpt_batcher_receipts_sealed_total", help: "receipts in the batches sealed, by chain", labelNames: ["chain"], registers });
    // one Redis read per chain per scrape, shared by both gauges (prom-client collects them concurrently)
    const read = sharedEach(pools, (pool) => pool.pending()); // Redis down: a chain left out keeps its last values
    new Gauge({
      name: "agentgpt_batcher_receipts_pending",
      help: "receipts taken from ingest's queue into the batch pool and not sealed into a batch yet, by chain (read from Redis)",
      labelNames: ["chain"],
      registers,
      async collect() {
        for (const [chain, { count }] of await read()) this.set({ chain }, count);
      },
    });
    new Gauge({
      name: "agentgpt_batcher_oldest_receipt_age_seconds",
      help: "seconds the oldest receipt in the batch pool has waited to be sealed (0 when the pool is empty), by chain (read from Redis)",
      labelNames: ["chain"],
      registers,
      async collect() {
        for (const [chain, { oldestAt }] of await read()) this.set({ chain }, oldestAt === null ? 0 : Math.max(0, (Date.now() - oldestAt) / 1000));
      },
    });
  }

  /** The batcher of `chain`: its pool read at scrape time. Returns the removal. */
  watch(chain: string, pool: Pick<BatchPool, "pending">): () => void {
    this.pools.set(chain, pool);
    return () => {
      if (this.pools.get(chain) === pool) this.pools.delete(chain);
    };
  }

  /** The events the batcher of `chain` reports into (counters start at 0, so rate() sees the first one). */
  events(chain: string): BatcherEvents {
    this.batchesSealed.inc({ chain }, 0);
    this.receiptsSealed.inc({ chain }, 0);
    return {
      sealed: ({ receipts }) => {
        this.batchesSealed.inc({ chain });
        this.receiptsSealed.inc({ chain }, receipts);
      },
    };
  }
}
