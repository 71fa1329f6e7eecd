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
