/**
 * Usage buckets: the call-time intervals the router judges disputes over. Every batch holds receipts whose calls
 * started in one bucket `[callsFrom, callsFrom + usageBucket)` and commits `callsFrom` on-chain (`settleBatchAt`),
 * so a batch settled late is judged by its calls' time. The bucket length (`router.usageBucket()`, seconds) is
 * read from the chain once, when a chain's batcher starts: governance may change it only before the first batch.
 */
import { Interface } from "ethers";

import type { RpcPool } from "../settler/rpc-pool.js";

const BUCKET_ABI = new Interface(["function usageBucket() view returns (uint32)"]);

/** The router cannot tell its usage bucket: not a router, an older router, or the RPC is wrong. */
export class UsageBucketError extends Error {
  readonly code = "USAGE_BUCKET_UNKNOWN";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "UsageBucketError";
  }
}

/** `floor(startTime / 1000 / usageBucket) * usageBucket`: the bucket (unix seconds) in which a call started. */
export function callsFromOf(startTimeMs: number, usageBucket: number): number {
  if (!Number.isInteger(usageBucket) || usageBucket <= 0) throw new RangeError(`usage bucket must be a positive integer of seconds, got ${usageBucket}`);
  if (!Number.isFinite(startTimeMs) || startTimeMs < 0) throw new RangeError(`call start time must be a non-negative epoch ms, got ${startTimeMs}`);
  const seconds = Math.floor(startTimeMs / 1000);
  return seconds - (seconds % usageBucket);
}

/** Reads `usageBucket()` (seconds) from the router; a clear error when the router does not answer it. */
export async function readUsageBucket(rpc: Pick<RpcPool, "request">, router: string): Promise<number> {
  let result: string;
  try {
    result = await rpc.request<string>("eth_call", [{ to: router, data: BUCKET_ABI.encodeFunctionData("usageBucket", []) }, "latest"]);
  } catch (error) {
    throw new UsageBucketError(`router ${router}: usageBucket() failed (${(error as Error).message}); is this an AutoPayLLM router with interval disputes?`, { cause: error });
  }
  let seconds: number;
  try {
    seconds = Number(BUCKET_ABI.decodeFunctionResult("usageBucket", result)[0]);
  } catch (error) {
    throw new UsageBucketError(`router ${router}: usageBucket() returned ${result === "0x" ? "nothing (no contract, or a router older than interval disputes)" : result}`, { cause: error });
  }
  if (!Number.isInteger(seconds) || seconds <= 0) throw new UsageBucketError(`router ${router}: usageBucket() is ${seconds}`);
  return seconds;
}
