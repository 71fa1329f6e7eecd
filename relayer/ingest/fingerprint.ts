/**
 * The fingerprint of what a log bills: 16 hex digits of SHA-256 over its status, cache flag, token counts and
 * response_cost. Two logs of one call (same id and start time, see queue/scripts.ts) with the same fingerprint are
 * one log sent twice; with different fingerprints they disagree, and only one of them counts.
 *
 * Left out on purpose, because LiteLLM's re-emitted logs of one call differ in them: the end time (a few
 * milliseconds), the last digits of the float response_cost (0.00426 vs 0.004260000000000001: the cost counts to
 * 9 significant digits), latency, and the model's spelling (its spend records may prefix the provider).
 */
import { hash } from "node:crypto";

import type { Receipt } from "../queue/index.js";
import type { SpendLog } from "./spend-log.js";

/** response_cost to 9 significant digits, as the shortest decimal text ("0.00426"); null stays null. */
export function costForIdentity(costUsd: string | null): string | null {
  if (costUsd === null) return null;
  const value = Number(costUsd);
  return Number.isFinite(value) ? String(Number(value.toPrecision(9))) : costUsd;
}

export function fingerprintOf(log: Pick<SpendLog, "status" | "cacheHit" | "promptTokens" | "completionTokens" | "totalTokens" | "responseCostUsd">): string {
  const fields = [log.status, log.cacheHit, log.promptTokens, log.completionTokens, log.totalTokens, costForIdentity(log.responseCostUsd)];
  return hash("sha256", JSON.stringify(fields), "hex").slice(0, 16);
}

/**
 * The fingerprint ingest gave the log of a receipt, rebuilt from the receipt alone (a batch file keeps receipts, not
 * logs). Status, cache flag, prompt and completion tokens and response_cost are in the receipt as ingest read them; a
 * receipt exists only for a "success". LiteLLM's total_tokens is not kept: the receipt's `tokens` is
 * max(total_tokens, prompt + completion), which is total_tokens whenever LiteLLM's total is at least the sum (it is
 * the sum in every LiteLLM version we know). When LiteLLM sent a smaller total, the rebuilt fingerprint differs from
 * the original and a re-send of that log counts as a conflict: kept apart, never billed again.
 */
export function fingerprintOfReceipt(receipt: Pick<Receipt, "cacheHit" | "promptTokens" | "completionTokens" | "tokens" | "responseCostUsd">): string {
  return fingerprintOf({
    status: "success",
    cacheHit: receipt.cacheHit,
    promptTokens: receipt.promptTokens,
    completionTokens: receipt.completionTokens,
    totalTokens: receipt.tokens,
    responseCostUsd: receipt.responseCostUsd,
  });
}
