/**
 * Prometheus metrics of ingest, on the process registry when given (relayer/telemetry: every stage's metrics, served
 * at GET /metrics), else on a registry of their own. Counters count events since
 * start; the two gauges read Redis at scrape time (pending chunks, unbillable calls kept), so they are the same
 * across restarts and replicas.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

import { UNBILLABLE_REASONS } from "../queue/index.js";
import type { ReceiptQueue } from "../queue/index.js";

export class IngestMetrics {
  readonly registry: Registry;
  readonly requests: Counter<"code">;
  readonly entries: Counter<"outcome">;
  readonly unbillable: Counter<"reason">;
  readonly receiptsQueued: Counter<"chain">;
  readonly tokensQueued: Counter<"chain">;
  readonly conflicts: Counter;
  readonly jobsDeferred: Counter;
  readonly queueUnavailable: Counter;
  readonly ackSeconds: Histogram;

  constructor(options: { queue?: ReceiptQueue; defaultMetrics?: boolean; /** the process registry (relayer/telemetry) */ registry?: Registry } = {}) {
    this.registry = options.registry ?? new Registry();
    const registers = [this.registry];
    this.requests = new Counter({
      name: "agentgpt_ingest_requests_total",
      help: "POST /litellm/spend requests by HTTP status",
      labelNames: ["code"],
      registers,
    });
    this.entries = new Counter({
      name: "agentgpt_ingest_entries_total",
      help: "LiteLLM log entries by outcome: queued, requeued (unbillable before), unbillable, duplicate, invalid, null",
      labelNames: ["outcome"],
      registers,
    });
    this.unbillable = new Counter({
      name: "agentgpt_ingest_unbillable_total",
      help: "calls kept as unbillable, by reason",
      labelNames: ["reason"],
      registers,
    });
    this.receiptsQueued = new Counter({
      name: "agentgpt_ingest_receipts_queued_total",
      help: "receipts queued for settlement, by chain",
      labelNames: ["chain"],
      registers,
    });
    this.tokensQueued = new Counter({
      name: "agentgpt_ingest_tokens_queued_total",
      help: "LLM tokens in queued receipts, by chain",
      labelNames: ["chain"],
      registers,
    });
    this.conflicts = new Counter({
      name: "agentgpt_ingest_call_id_conflicts_total",
      help: "calls that reused another call's id (another start time) and were recorded under id#start",
      registers,
    });
    this.jobsDeferred = new Counter({
      name: "agentgpt_ingest_jobs_deferred_total",
      help: "chunks stored whose BullMQ job could not be added at once (the sweeper adds it)",
      registers,
    });
    this.queueUnavailable = new Counter({
      name: "agentgpt_ingest_queue_unavailable_total",
      help: "POSTs answered 503 because Redis could not take the write",
      registers,
    });
    this.ackSeconds = new Histogram({
      name: "agentgpt_ingest_ack_seconds",
      help: "time from receiving a POST to acknowledging it",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    for (const reason of UNBILLABLE_REASONS) this.unbillable.inc({ reason }, 0);

    const queue = options.queue;
    if (queue !== undefined) {
      new Gauge({
        name: "agentgpt_ingest_pending_chunks",
        help: "chunks of receipts not yet acknowledged by the batcher, by chain (read from Redis)",
        labelNames: ["chain"],
        registers,
        async collect() {
          for (const chain of queue.chains) {
            try {
              this.set({ chain }, await queue.store.pendingCount(chain));
            } catch {
              // Redis down: leave the last value; /readyz reports the outage.
            }
          }
        },
      });
      new Gauge({
        name: "agentgpt_ingest_unbillable_kept",
        help: "unbillable calls kept (within the dedupe TTL), by reason (read from Redis)",
        labelNames: ["reason"],
        registers,
        async collect() {
          try {
            const counts = await queue.store.unbillableCounts();
            for (const reason of UNBILLABLE_REASONS) this.set({ reason }, counts[reason]);
          } catch {
            // as above
          }
        },
      });
    }
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: "agentgpt_ingest_" });
  }
}
