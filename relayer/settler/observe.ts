/**
 * The settlement stages of one chain seen from operations: their metrics (relayer/batcher/metrics.ts,
 * ./metrics.ts, relayer/payout/metrics.ts) and their /readyz checks, registered on the process telemetry.
 *
 * Readiness, per stage:
 *   batcher:<chain>   redis   the batcher's Redis answers PING
 *   settler:<chain>   redis   the settler's Redis answers PING
 *                     rpc     an RPC endpoint of the chain answers eth_blockNumber
 *                     chain   the chain guard finds the chain the settler started on (same id and genesis, router code)
 *                     lease   this process holds the chain's settler lease, or stands by (ready: it takes over when
 *                             the holder's lease lapses; the body says "standby")
 *                     balance the active signer holds more than settler.min_signer_balance (chains.<name> overrides)
 */
import type { Redis } from "ioredis";

import { BatcherMetrics, type BatcherEvents } from "../batcher/metrics.js";
import type { BatchPool } from "../batcher/batch-pool.js";
import type { Batcher } from "../batcher/batcher.js";
import { PayoutMetrics, type PayoutEvents } from "../payout/metrics.js";
import type { ReleaseStage } from "../payout/release-stage.js";
import { metricsOnce, type ProcessTelemetry } from "../telemetry/process-telemetry.js";
import { failed, ok } from "../telemetry/readiness.js";
import { shared } from "../telemetry/within.js";
import { nativeOf, SettlerMetrics, type SettlerEvents } from "./metrics.js";
import type { RpcPool } from "./rpc-pool.js";
import type { SettlementStore } from "./settlement-store.js";
import type { Settler } from "./settler.js";

export function settlerMetricsOf(telemetry: ProcessTelemetry): SettlerMetrics {
  return metricsOnce(telemetry.registry, "settler", () => new SettlerMetrics(telemetry.registry));
}

export function batcherMetricsOf(telemetry: ProcessTelemetry): BatcherMetrics {
  return metricsOnce(telemetry.registry, "batcher", () => new BatcherMetrics(telemetry.registry));
}

export function payoutMetricsOf(telemetry: ProcessTelemetry): PayoutMetrics {
  return metricsOnce(telemetry.registry, "payout", () => new PayoutMetrics(telemetry.registry));
}

export interface ObservedChain {
  /** hand to the Settler (`events`) */
  readonly settler: SettlerEvents;
  /** hand to the ReleaseStage (`events`) */
  readonly payout: PayoutEvents;
  /** hand to the Batcher (`events`) */
  readonly batcher: BatcherEvents;
  /** once the chain's stages exist: their gauges and readiness checks */
  attach(parts: {
    readonly redis: Pick<Redis, "ping">;
    readonly rpc: RpcPool;
    readonly store: SettlementStore;
    readonly pool: BatchPool;
    /** null when this process runs no batcher for the chain */
    readonly batcher: Batcher | null;
    /** null when this process runs no settler for the chain (a batcher host) */
    readonly settler: Settler | null;
    /** null when payout.enabled is false */
    readonly release: ReleaseStage | null;
    /** the component the settler's chain guard raises its problem on (Readiness.set) */
    readonly guardComponent: string;
    /** wei */
    readonly minSignerBalance: bigint;
  }): void;
  /** removes every registration (the stages stopped) */
  detach(): void;
}

export function observeChain(telemetry: ProcessTelemetry, chain: string): ObservedChain {
  const settlerMetrics = settlerMetricsOf(telemetry);
  const batcherMetrics = batcherMetricsOf(telemetry);
  const removals: Array<() => void> = [];
  return {
    settler: settlerMetrics.events(chain),
    batcher: batcherMetrics.events(chain),
    payout: payoutMetricsOf(telemetry).events(chain),
    attach({ redis, rpc, store, pool, batcher, settler, release, guardComponent, minSignerBalance }) {
      const ping = async () => {
        await redis.ping();
        return ok();
      };
      const readiness = telemetry.readiness;
      if (batcher !== null) {
        const batcherStage = `batcher:${chain}`;
        const lease = batcher.lease;
        removals.push(batcherMetrics.watch(chain, pool), readiness.add(batcherStage, "redis", ping));
        if (lease !== undefined) {
          removals.push(
            telemetry.registerLease("batcher", chain, () => lease.held),
            readiness.add(batcherStage, "lease", async () =>
              lease.held
                ? ok("held: this process seals the chain's batches")
                : { ok: true, standby: true, detail: "standby: another process holds the batcher lease of this chain; this one takes over when it lapses" },
            ),
          );
        }
      }
      if (settler === null) return;
      if (release !== null) removals.push(payoutMetricsOf(telemetry).watch(chain, release.schedule));
      const balance = shared(async () => BigInt(await rpc.request<string>("eth_getBalance", [settler.activeSigner, "latest"])), 1000);
      const settlerStage = `settler:${chain}`;
      removals.push(
        settlerMetrics.watch(chain, { store, balance }),
        settlerMetrics.watchRpc("settler", chain, rpc),
        telemetry.registerLease("settler", chain, () => settler.lease.held),
        readiness.add(settlerStage, "redis", ping),
        readiness.add(settlerStage, "rpc", async () => ok(`block ${Number(BigInt(await rpc.request<string>("eth_blockNumber", [])))}`)),
        readiness.add(settlerStage, "chain", readiness.raised(guardComponent)),
        readiness.add(settlerStage, "lease", async () =>
          settler.lease.held
            ? ok("held: this process settles the chain")
            : { ok: true, standby: true, detail: "standby: another process holds the settler lease of this chain; this one takes over when it lapses" },
        ),
        readiness.add(settlerStage, "balance", async () => {
          const wei = await balance();
          const floor = `settler.min_signer_balance ${nativeOf(minSignerBalance)}`;
          return wei > minSignerBalance
            ? ok(`${nativeOf(wei)} above ${floor}`)
            : failed(`the signer ${settler.activeSigner} holds ${nativeOf(wei)}, not above ${floor}: fund it with the chain's native coin`);
        }),
      );
    },
    detach() {
      for (const remove of removals.splice(0)) remove();
    },
  };
}
