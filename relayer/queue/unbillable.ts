/**
 * Calls that cannot be billed are kept, never dropped: each with a reason, a human detail, a summary for
 * listings, and the normalized LiteLLM log so it can be priced again once the configuration is fixed.
 */
import { z } from "zod";

export const UNBILLABLE_REASONS = [
  /** no payer rule matches the call */
  "no_payer",
  /** a wallet_from rule found a wallet that is not in its allow list (and no later rule matched) */
  "payer_not_allowed",
  /** LiteLLM logged the call as a failure */
  "failed_call",
  /** no tokens used */
  "zero_usage",
  /** served from LiteLLM's cache: no provider did the work */
  "cache_hit",
  /** no route covers this model and provider */
  "unknown_route",
  /** a response_cost route, but LiteLLM reported no cost */
  "unpriced",
  /**
   * LiteLLM priced the call per request (images, audio, ...): a cost but no tokens. AutoPayLLM bills tokens x price
   * (a row of zero tokens can charge nothing), so such a call cannot be charged on-chain: kept, never billed.
   */
  "per_request",
] as const;
export const UnbillableReason = z.enum(UNBILLABLE_REASONS);
export type UnbillableReason = z.output<typeof UnbillableReason>;

/** Whether a reason can change when the configuration changes (the others are facts about the call). */
export const REPRICEABLE_REASONS: readonly UnbillableReason[] = ["no_payer", "payer_not_allowed", "unknown_route", "unpriced"];

export const UnbillableRecord = z.object({
  v: z.literal(1),
  /** same id scheme as Receipt.id */
  id: z.string().min(1),
  /** the submission's idempotency key and fingerprint, to submit it again when re-pricing */
  key: z.string().min(1),
  fingerprint: z.string().regex(/^[0-9a-f]{16}$/),
  reason: UnbillableReason,
  detail: z.string(),
  receivedAt: z.number(),
  summary: z.object({
    litellmProvider: z.string().nullable(),
    litellmModel: z.string().nullable(),
    modelGroup: z.string().nullable(),
    keyAlias: z.string().nullable(),
    tokens: z.int().min(0),
    responseCostUsd: z.string().nullable(),
  }),
  /** the normalized LiteLLM log (ingest's SpendLog); opaque to the queue */
  log: z.unknown(),
});
export type UnbillableRecord = z.output<typeof UnbillableRecord>;
export type UnbillableBody = Omit<UnbillableRecord, "id">;
