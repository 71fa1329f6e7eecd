/**
 * Prometheus metrics of the release stage, on the process registry (relayer/telemetry). Labels: `chain`, `outcome`.
 *   agentgpt_payout_releases_total{chain,outcome}        counter: batches this process released (released), found
 *                                                        released by someone else first (elsewhere), or whose
 *                                                        release did not go through and is retried (failed)
 *   agentgpt_payout_fees_paid_native_total{chain}        counter: fees of mined release transactions (reverted
 *                                                        ones included), in the chain's native coin
 *   agentgpt_payout_batches_awaiting_release{chain}      gauge (Redis at scrape): settled batches waiting for their
 *                                                        dispute window to close and their release
 */
import { Counter, Gauge, type Registry } from "prom-client";

import { nativeOf } from "../settler/metrics.js";
import { sharedEach } from "../telemetry/within.js";
import type { ReleaseSchedule } from "./release-schedule.js";

export type ReleaseOutcome = "released" | "elsewhere" | "failed";

/** What the release stage tells its metrics. */
export interface PayoutEvents {
  release(outcome: ReleaseOutcome): void;
  /** a release transaction was mined: its fee, wei */
  feePaid(wei: bigint): void;
}

export class PayoutMetrics {
  private readonly releases: Counter<"chain" | "outcome">;
  private readonly fees: Counter<"chain">;
  private readonly schedules = new Map<string, Pick<ReleaseSchedule, "size">>();

  constructor(registry: Registry) {
    const registers = [registry];
    const schedules = this.schedules;
    this.releases = new Counter({
      name: "agentgpt_payout_releases_total",
      help: "batch releases by chain and outcome: released (mined), elsewhere (released by someone else first), failed (retried)",
      labelNames: ["chain", "outcome"],
      registers,
    });
    this.fees = new Counter({
      name: "agentgpt_payout_fees_paid_native_total",
      help: "fees of mined release transactions (gasUsed x effectiveGasPrice), in the chain's native coin, by chain",
      labelNames: ["chain"],
      registers,
    });
    // Redis down: the chain is left out and the gauge keeps its last value
    const read = sharedEach(schedules, (schedule) => schedule.size());
    new Gauge({
      name: "agentgpt_payout_batches_awaiting_release",
      help: "settled batches waiting for their dispute window to close and their release, by chain (read from Redis)",
      labelNames: ["chain"],
      registers,
      async collect() {
        for (const [chain, size] of await read()) this.set({ chain }, size);
      },
    });
  }

  /** The release schedule of `chain`, read at scrape time. Returns the removal. */
  watch(chain: string, schedule: Pick<ReleaseSchedule, "size">): () => void {
    this.schedules.set(chain, schedule);
    return () => {
      if (this.schedules.get(chain) === schedule) this.schedules.delete(chain);
    };
  }

  events(chain: string): PayoutEvents {
    for (const outcome of ["released", "elsewhere", "failed"]) this.releases.inc({ chain, outcome }, 0);
    this.fees.inc({ chain }, 0);
    return {
      release: (outcome) => this.releases.inc({ chain, outcome }),
      feePaid: (wei) => this.fees.inc({ chain }, nativeOf(wei)),
    };
  }
}
