/**
 * Prometheus metrics of the reconciler, on the process registry (relayer/telemetry). Labels: `chain`, `outcome`
 * (ok | failed), `mine` (true: opened by this relayer for a payer it holds the key of), `deadline` (arbiter |
 * governance); never a dispute id or an address.
 *   agentgpt_reconciler_passes_total{chain,outcome}                  counter: reconciler passes
 *   agentgpt_reconciler_last_pass_timestamp_seconds{chain}           gauge: when the last pass succeeded (unix s)
 *   agentgpt_reconciler_disputes_opened_total{chain}                 counter: overcharged intervals disputed here
 *   agentgpt_reconciler_disputes_open{chain,mine}                    gauge (Redis at scrape): disputes open on the
 *                                                                    router that the reconciler follows
 *   agentgpt_reconciler_dispute_deadline_seconds{chain,deadline}     gauge: seconds left to the nearest arbiter and
 *                                                                    governance deadline of the open disputes (as
 *                                                                    of the last pass; no sample when none is open;
 *                                                                    negative: past it, to be settled as expired)
 */
import { Counter, Gauge, type Registry } from "prom-client";

import { sharedEach } from "../telemetry/within.js";
import type { DisputeLedger } from "./dispute-ledger.js";

/** What the reconciler of a chain tells its metrics. */
export interface ReconcilerEvents {
  pass(outcome: "ok" | "failed", disputesOpened: number): void;
  /** the disputes open after a follow-up (deadlines in chain time, unix s), and the chain's time then */
  openDisputes(open: readonly { arbiterDeadline: number; governanceDeadline: number }[], chainNow: number): void;
}

export class ReconcilerMetrics {
  private readonly passes: Counter<"chain" | "outcome">;
  private readonly lastPass: Gauge<"chain">;
  private readonly opened: Counter<"chain">;
  private readonly deadlines: Gauge<"chain" | "deadline">;
  private readonly ledgers = new Map<string, Pick<DisputeLedger, "list">>();
  /** per chain: nearest deadlines as wall-clock ms (chain time mapped at observation) */
  private readonly nearest = new Map<string, { arbiter: number; governance: number } | null>();

  constructor(registry: Registry) {
    const registers = [registry];
    const ledgers = this.ledgers;
    const nearest = this.nearest;
    this.passes = new Counter({ name: "agentgpt_reconciler_passes_total", help: "reconciler passes by chain and outcome (ok, failed)", labelNames: ["chain", "outcome"], registers });
    this.lastPass = new Gauge({ name: "agentgpt_reconciler_last_pass_timestamp_seconds", help: "unix time of the last successful reconciler pass, by chain", labelNames: ["chain"], registers });
    this.opened = new Counter({ name: "agentgpt_reconciler_disputes_opened_total", help: "overcharged intervals this relayer disputed for the payers it holds keys of, by chain", labelNames: ["chain"], registers });
    // Redis down: the chain is left out and the gauge keeps its last values; /readyz reports the outage
    const read = sharedEach(ledgers, async (ledger) => {
      const entries = await ledger.list();
      const mine = entries.filter((entry) => entry.mine).length;
      return { mine, others: entries.length - mine };
    });
    new Gauge({
      name: "agentgpt_reconciler_disputes_open",
      help: "disputes open on the router that the reconciler follows, by chain and whether this relayer opened them (read from Redis)",
      labelNames: ["chain", "mine"],
      registers,
      async collect() {
        for (const [chain, { mine, others }] of await read()) {
          this.set({ chain, mine: "true" }, mine);
          this.set({ chain, mine: "false" }, others);
        }
      },
    });
    this.deadlines = new Gauge({
      name: "agentgpt_reconciler_dispute_deadline_seconds",
      help: "seconds left to the nearest arbiter and governance deadline among the open disputes (negative: past it), by chain",
      labelNames: ["chain", "deadline"],
      registers,
      collect() {
        this.reset();
        const now = Date.now();
        for (const [chain, at] of nearest) {
          if (at === null) continue;
          this.set({ chain, deadline: "arbiter" }, (at.arbiter - now) / 1000);
          this.set({ chain, deadline: "governance" }, (at.governance - now) / 1000);
        }
      },
    });
  }

  /** The reconciler of `chain`: its dispute ledger read at scrape time. Returns the removal. */
  watch(chain: string, ledger: Pick<DisputeLedger, "list">): () => void {
    this.ledgers.set(chain, ledger);
    return () => {
      if (this.ledgers.get(chain) === ledger) this.ledgers.delete(chain);
      this.nearest.delete(chain);
    };
  }

  events(chain: string): ReconcilerEvents {
    for (const outcome of ["ok", "failed"]) this.passes.inc({ chain, outcome }, 0);
    this.opened.inc({ chain }, 0);
    return {
      pass: (outcome, disputesOpened) => {
        this.passes.inc({ chain, outcome });
        if (outcome === "ok") this.lastPass.set({ chain }, Date.now() / 1000);
        if (disputesOpened > 0) this.opened.inc({ chain }, disputesOpened);
      },
      openDisputes: (open, chainNow) => {
        if (open.length === 0) {
          this.nearest.set(chain, null);
          return;
        }
        // chain time -> wall clock at this observation, so the gauge counts down between passes
        const offsetMs = Date.now() - chainNow * 1000;
        this.nearest.set(chain, {
          arbiter: Math.min(...open.map((d) => d.arbiterDeadline)) * 1000 + offsetMs,
          governance: Math.min(...open.map((d) => d.governanceDeadline)) * 1000 + offsetMs,
        });
      },
    };
  }
}
