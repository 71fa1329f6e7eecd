/**
 * Prometheus metrics of the backfill stage, on the process registry (relayer/telemetry). Labels: `outcome`.
 *   agentgpt_backfill_runs_total{outcome}                  counter: scheduled runs (ok, failed)
 *   agentgpt_backfill_calls_total{outcome}                 counter: spend records by what became of them (recovered,
 *                                                          unbillable, already_received, conflict, refused, cache_hit)
 *   agentgpt_backfill_last_success_timestamp_seconds       gauge: when the last run succeeded (unix s)
 *   agentgpt_backfill_covered_until_timestamp_seconds      gauge: up to when every spend record has been read, shared
 *                                                          by the relayers (unix s, as of this process' last run)
 * Alert on `time() - agentgpt_backfill_covered_until_timestamp_seconds` growing past a few intervals: calls LiteLLM's
 * logger dropped meanwhile wait for it, and past ingest.dedupe_ttl they can no longer be recovered safely.
 */
import { Counter, Gauge, type Registry } from "prom-client";

import type { BackfillResult } from "./backfill.js";

export class BackfillMetrics {
  private readonly runs: Counter<"outcome">;
  private readonly calls: Counter<"outcome">;
  private readonly lastSuccess: Gauge;
  private readonly covered: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.runs = new Counter({ name: "agentgpt_backfill_runs_total", help: "scheduled backfill runs by outcome (ok, failed)", labelNames: ["outcome"], registers });
    this.calls = new Counter({
      name: "agentgpt_backfill_calls_total",
      help: "LiteLLM spend records read by the backfill, by outcome (recovered, unbillable, already_received, conflict, refused, cache_hit)",
      labelNames: ["outcome"],
      registers,
    });
    this.lastSuccess = new Gauge({ name: "agentgpt_backfill_last_success_timestamp_seconds", help: "unix time of the last successful backfill run", registers });
    this.covered = new Gauge({
      name: "agentgpt_backfill_covered_until_timestamp_seconds",
      help: "up to when every LiteLLM spend record has been read by the backfill (unix s, shared by the relayers)",
      registers,
    });
  }

  succeeded(result: BackfillResult, coveredUntilMs: number, now = Date.now()): void {
    this.runs.inc({ outcome: "ok" });
    const outcomes: Record<string, number> = {
      recovered: result.recovered,
      unbillable: result.unbillable,
      already_received: result.alreadyReceived,
      conflict: result.conflicts,
      refused: result.invalid.length,
      cache_hit: result.skippedCacheHits,
    };
    for (const [outcome, count] of Object.entries(outcomes)) if (count > 0) this.calls.inc({ outcome }, count);
    this.lastSuccess.set(now / 1000);
    this.covered.set(coveredUntilMs / 1000);
  }

  failed(): void {
    this.runs.inc({ outcome: "failed" });
  }
}
