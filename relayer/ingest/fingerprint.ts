/**
 * The fingerprint of a call: 16 hex digits of SHA-256 over the fields that tell two calls apart. A re-send of the
 * same log has the same fingerprint; a different call that carries the same call id (a client can choose
 * `x-litellm-call-id`) has another one, and the queue records it under `<call id>#<fingerprint>`.
 */
import { hash } from "node:crypto";

import type { SpendLog } from "./spend-log.js";

export function fingerprintOf(log: SpendLog): string {
  const fields = [
    log.key,
    log.litellmId,
    log.litellmCallId,
    log.status,
    log.startTime,
    log.endTime,
    log.promptTokens,
    log.completionTokens,
    log.totalTokens,
    log.model,
    log.litellmProvider,
    log.responseCostUsd,
    log.cacheHit,
  ];
  return hash("sha256", JSON.stringify(fields), "hex").slice(0, 16);
}
