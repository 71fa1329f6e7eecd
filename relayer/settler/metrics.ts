/**
 * Prometheus metrics of the settler, on the process registry (relayer/telemetry). Labels are bounded: `chain`,
 * `outcome` (settled | reverted), `mode` (bump | rebroadcast), `state` (a ledger state), `endpoint` (a configured
 * RPC URL with its secrets stripped); never a batch id or an address.
 *
 * Counters (since the process started; only the process holding the lease moves them):
 *   agentgpt_settler_batches_final_total{chain}                  batches final on chain (confirmed, outcome read)
 *   agentgpt_settler_receipts_settled_total{chain}               receipts in accepted rows of those batches
 *   agentgpt_settler_receipts_rejected_total{chain}              receipts in rows the router rejected
 *   agentgpt_settler_batches_refused_total{chain}                batches refused for good (receipts root used)
 *   agentgpt_settler_gas_used_total{chain,outcome}               gas of mined settlement transactions
 *   agentgpt_settler_fees_paid_native_total{chain,outcome}       gasUsed x effectiveGasPrice, in the native coin
 *   agentgpt_settler_transactions_stuck_total{chain}             transactions not mined within settler.stuck_after
 *   agentgpt_settler_transactions_replaced_total{chain,mode}     stuck ones bumped (same nonce, higher fees) or
 *                                                                rebroadcast unchanged
 * Histogram:
 *   agentgpt_settler_settlement_seconds{chain}                   batch sealed -> final on chain
 * Gauges read at scrape time (the ledger in Redis, the chain over RPC; every process reports the same):
 *   agentgpt_settler_batches_open{chain,state}                   batches not final, by ledger state
 *   agentgpt_settler_receipts_pending{chain}                     receipts in batches handed to the settler, not final
 *   agentgpt_settler_oldest_batch_age_seconds{chain}             age of the oldest batch not final (0: none)
 *   agentgpt_settler_signer_balance_native{chain}                the active signer's balance, native coin
 *   agentgpt_rpc_breaker_state{chain,stage,endpoint}             0 closed (in use), 1 half-open (trial), 2 open (skipped)
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

import { sharedEach, within } from "../telemetry/within.js";
import type { RpcPool } from "./rpc-pool.js";
import type { SettlementState, SettlementStore } from "./settlement-store.js";

/** What the settler tells its metrics, as it happens. */
export interface SettlerEvents {
  /** a batch became final: when it was sealed (ms), its gas and fee (wei), its receipts */
  final(batch: { sealedAt: number; gasUsed: bigint; feeWei: bigint; receiptsSettled: number; receiptsRejected: number }): void;
  /** a settlement transaction was mined but reverted: its gas was paid, the batch goes back to the queue */
  reverted(fee: { gasUsed: bigint; feeWei: bigint }): void;
  /** a transaction was not mined within stuck_after */
  stuck(): void;
  replaced(mode: "bump" | "rebroadcast"): void;
  refused(): void;
}

const OPEN_STATES: readonly SettlementState[] = ["queued", "blocked", "signed", "sent", "mined"];
const BREAKER_VALUE: Record<string, number> = { closed: 0, "half-open": 1, open: 2 };
const WEI_PER_NATIVE = 1e18;

/** wei as a float of the native coin (metrics only: never for money arithmetic). */
export function nativeOf(wei: bigint): number {
  const whole = wei / 10n ** 18n;
  return Number(whole) + Number(wei - whole * 10n ** 18n) / WEI_PER_NATIVE;
}

export interface WatchedChain {
  readonly store: Pick<SettlementStore, "active">;
  /** the active signer's balance in wei (shared with the readiness check) */
  readonly balance: () => Promise<bigint>;
}

export class SettlerMetrics {
  private readonly finalBatches: Counter<"chain">;
  private readonly receiptsSettled: Counter<"chain">;
  private readonly receiptsRejected: Counter<"chain">;
  private readonly refusedBatches: Counter<"chain">;
  private readonly gasUsed: Counter<"chain" | "outcome">;
  private readonly feesPaid: Counter<"chain" | "outcome">;
  private readonly stuckTxs: Counter<"chain">;
  private readonly replacedTxs: Counter<"chain" | "mode">;
  private readonly latency: Histogram<"chain">;
  private readonly chains = new Map<string, WatchedChain>();
  private readonly pools = new Map<string, { chain: string; stage: string; rpc: Pick<RpcPool, "health"> }>();

  constructor(registry: Registry) {
    const registers = [registry];
    const chains = this.chains;
    const pools = this.pools;
    this.finalBatches = new Counter({ name: "agentgpt_settler_batches_final_total", help: "batches final on chain (confirmed, outcome read), by chain", labelNames: ["chain"], registers });
    this.receiptsSettled = new Counter({ name: "agentgpt_settler_receipts_settled_total", help: "receipts in accepted rows of final batches, by chain", labelNames: ["chain"], registers });
    this.receiptsRejected = new Counter({ name: "agentgpt_settler_receipts_rejected_total", help: "receipts in rows the router rejected (cap, budget, allowance...), by chain", labelNames: ["chain"], registers });
    this.refusedBatches = new Counter({ name: "agentgpt_settler_batches_refused_total", help: "batches refused for good: their receipts root was settled by another batch id, by chain", labelNames: ["chain"], registers });
    this.gasUsed = new Counter({ name: "agentgpt_settler_gas_used_total", help: "gas used by mined settlement transactions, by chain and outcome (settled, reverted)", labelNames: ["chain", "outcome"], registers });
    this.feesPaid = new Counter({
      name: "agentgpt_settler_fees_paid_native_total",
      help: "fees paid for mined settlement transactions (gasUsed x effectiveGasPrice) in the chain's native coin (ETH, POL), by chain and outcome",
      labelNames: ["chain", "outcome"],
      registers,
    });
    this.stuckTxs = new Counter({ name: "agentgpt_settler_transactions_stuck_total", help: "settlement transactions not mined within settler.stuck_after, by chain", labelNames: ["chain"], registers });
    this.replacedTxs = new Counter({
      name: "agentgpt_settler_transactions_replaced_total",
      help: "stuck settlement transactions replaced: bump (same nonce, higher fees) or rebroadcast (unchanged), by chain",
      labelNames: ["chain", "mode"],
      registers,
    });
    this.latency = new Histogram({
      name: "agentgpt_settler_settlement_seconds",
      help: "seconds from a batch sealed to the batch final on chain, by chain",
      labelNames: ["chain"],
      buckets: [1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
      registers,
    });

    // one ledger read per chain per scrape, shared by the three ledger gauges (collected concurrently); Redis down:
    // the chain is left out and its gauges keep their last values, /readyz reports the outage
    const ledger = sharedEach(chains, async (watched) => {
      const records = await watched.store.active();
      const states = new Map<string, number>(OPEN_STATES.map((state) => [state, 0]));
      let receipts = 0;
      let oldestAt: number | null = null;
      for (const record of records) {
        if (!states.has(record.state)) continue;
        states.set(record.state, states.get(record.state)! + 1);
        receipts += record.receipts;
        oldestAt = oldestAt === null ? record.submittedAt : Math.min(oldestAt, record.submittedAt);
      }
      return { states, receipts, oldestAt };
    });
    new Gauge({
      name: "agentgpt_settler_batches_open",
      help: "batches handed to the settler and not final, by chain and ledger state (read from Redis)",
      labelNames: ["chain", "state"],
      registers,
      async collect() {
        for (const [chain, { states }] of await ledger()) for (const [state, count] of states) this.set({ chain, state }, count);
      },
    });
    new Gauge({
      name: "agentgpt_settler_receipts_pending",
      help: "receipts in batches handed to the settler and not final yet, by chain (read from Redis)",
      labelNames: ["chain"],
      registers,
      async collect() {
        for (const [chain, { receipts }] of await ledger()) this.set({ chain }, receipts);
      },
    });
    new Gauge({
      name: "agentgpt_settler_oldest_batch_age_seconds",
      help: "seconds since the oldest batch not final was handed to the settler (0 when none), by chain (read from Redis)",
      labelNames: ["chain"],
      registers,
      async collect() {
        for (const [chain, { oldestAt }] of await ledger()) this.set({ chain }, oldestAt === null ? 0 : Math.max(0, (Date.now() - oldestAt) / 1000));
      },
    });
    new Gauge({
      name: "agentgpt_settler_signer_balance_native",
      help: "balance of the settler's active signer in the chain's native coin (read over RPC at scrape time), by chain",
      labelNames: ["chain"],
      registers,
      async collect() {
        await Promise.all(
          [...chains].map(async ([chain, watched]) => {
            try {
              this.set({ chain }, nativeOf(await within(watched.balance(), 2000, "eth_getBalance")));
            } catch {
              // RPC down: keep the last value; the breaker gauge and /readyz say why
            }
          }),
        );
      },
    });
    new Gauge({
      name: "agentgpt_rpc_breaker_state",
      help: "circuit breaker of each RPC endpoint: 0 closed (in use), 1 half-open (one trial request), 2 open (skipped), by chain, stage and endpoint",
      labelNames: ["chain", "stage", "endpoint"],
      registers,
      collect() {
        this.reset();
        for (const { chain, stage, rpc } of pools.values()) {
          for (const { endpoint, state } of rpc.health()) this.set({ chain, stage, endpoint }, BREAKER_VALUE[state] ?? 2);
        }
      },
    });
  }

  /** The metrics of the RPC pool a stage uses on a chain (its breakers); returns the removal. */
  watchRpc(stage: string, chain: string, rpc: Pick<RpcPool, "health">): () => void {
    const key = `${stage}\u0000${chain}`;
    const entry = { chain, stage, rpc };
    this.pools.set(key, entry);
    return () => {
      if (this.pools.get(key) === entry) this.pools.delete(key);
    };
  }

  /** The settler of `chain`: its ledger and balance read at scrape time. Returns the removal. */
  watch(chain: string, watched: WatchedChain): () => void {
    this.chains.set(chain, watched);
    return () => {
      if (this.chains.get(chain) === watched) this.chains.delete(chain);
    };
  }

  /** The events the settler of `chain` reports into (counters start at 0, so rate() sees the first one). */
  events(chain: string): SettlerEvents {
    this.finalBatches.inc({ chain }, 0);
    this.receiptsSettled.inc({ chain }, 0);
    this.receiptsRejected.inc({ chain }, 0);
    this.refusedBatches.inc({ chain }, 0);
    this.stuckTxs.inc({ chain }, 0);
    for (const outcome of ["settled", "reverted"]) {
      this.gasUsed.inc({ chain, outcome }, 0);
      this.feesPaid.inc({ chain, outcome }, 0);
    }
    for (const mode of ["bump", "rebroadcast"]) this.replacedTxs.inc({ chain, mode }, 0);
    return {
      final: ({ sealedAt, gasUsed, feeWei, receiptsSettled, receiptsRejected }) => {
        this.finalBatches.inc({ chain });
        this.receiptsSettled.inc({ chain }, receiptsSettled);
        this.receiptsRejected.inc({ chain }, receiptsRejected);
        this.gasUsed.inc({ chain, outcome: "settled" }, Number(gasUsed));
        this.feesPaid.inc({ chain, outcome: "settled" }, nativeOf(feeWei));
        this.latency.observe({ chain }, Math.max(0, (Date.now() - sealedAt) / 1000));
      },
      reverted: ({ gasUsed, feeWei }) => {
        this.gasUsed.inc({ chain, outcome: "reverted" }, Number(gasUsed));
        this.feesPaid.inc({ chain, outcome: "reverted" }, nativeOf(feeWei));
      },
      stuck: () => this.stuckTxs.inc({ chain }),
      replaced: (mode) => this.replacedTxs.inc({ chain, mode }),
      refused: () => this.refusedBatches.inc({ chain }),
    };
  }
}
