/**
 * The reconciler of one chain seen from operations: its metrics (./metrics.ts, and its RPC breakers in
 * relayer/settler/metrics.ts) and its /readyz checks on the process telemetry:
 *   reconciler:<chain>   redis   its Redis answers PING
 *                        rpc     an RPC endpoint of the chain answers eth_blockNumber
 *                        chain   the chain is the one it started on (same id and genesis) and the router has code
 */
import type { Redis } from "ioredis";

import { ChainGuard } from "../settler/chain-guard.js";
import { settlerMetricsOf } from "../settler/observe.js";
import type { RpcPool } from "../settler/rpc-pool.js";
import { metricsOnce, type ProcessTelemetry } from "../telemetry/process-telemetry.js";
import { failed, ok } from "../telemetry/readiness.js";
import type { DisputeLedger } from "./dispute-ledger.js";
import { ReconcilerMetrics, type ReconcilerEvents } from "./metrics.js";

export function reconcilerMetricsOf(telemetry: ProcessTelemetry): ReconcilerMetrics {
  return metricsOnce(telemetry.registry, "reconciler", () => new ReconcilerMetrics(telemetry.registry));
}

/** Registers the reconciler of `chain`; returns its events and the removal of everything registered. */
export async function observeReconciler(
  telemetry: ProcessTelemetry,
  parts: { chain: string; chainId: number; router: string; redis: Pick<Redis, "ping">; rpc: RpcPool; ledger: Pick<DisputeLedger, "list"> },
): Promise<{ events: ReconcilerEvents; detach(): void }> {
  const { chain, rpc, redis } = parts;
  const metrics = reconcilerMetricsOf(telemetry);
  const guard = new ChainGuard(rpc, { chain, chainId: parts.chainId, router: parts.router });
  await guard.init();
  const stage = `reconciler:${chain}`;
  const readiness = telemetry.readiness;
  const removals = [
    metrics.watch(chain, parts.ledger),
    settlerMetricsOf(telemetry).watchRpc("reconciler", chain, rpc),
    readiness.add(stage, "redis", async () => {
      await redis.ping();
      return ok();
    }),
    readiness.add(stage, "rpc", async () => ok(`block ${Number(BigInt(await rpc.request<string>("eth_blockNumber", [])))}`)),
    readiness.add(stage, "chain", async () => {
      const problem = await guard.problem();
      return problem === null ? ok() : failed(problem);
    }),
  ];
  return {
    events: metrics.events(chain),
    detach: () => {
      for (const remove of removals.splice(0)) remove();
    },
  };
}
