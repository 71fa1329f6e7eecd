/**
 * `Receipt`: one billable LiteLLM call, priced, with its payer and the chain it settles on. This is what ingest
 * queues and what the batcher aggregates into `Charge` rows. `Receipt` is both the zod schema (a value) and the
 * type; amounts are decimal strings because they are bigints (JSON has no bigint).
 *
 * Money rules the batcher relies on:
 * - `amountMilli` is the exact price in thousandths of a token unit: `tokens * pricePer1k` for
 *   `per_1k_tokens` routes, `ceil(responseCostUsd * unitsPerUsd * 1000)` for `response_cost` routes (capped at
 *   `tokens * pricePer1k` when the route has a ceiling, and then `capped` is true).
 * - A row of receipts of one (payer, provider, model) is charged `ceil(sum(amountMilli) / 1000)` units, which
 *   never exceeds the contract's cap `ceil(tokens * maxPricePer1kTokens / 1000)` when the route's price is at most
 *   the governed cap.
 * - `amount = ceil(amountMilli / 1000)` is only a display figure for one receipt.
 * - `id` is unique and stable: LiteLLM's `id` (the request_id of its spend record; else `litellm_call_id`); when
 *   another call reuses an id (another start time), that call's receipt gets `<id>#<start ms>` so both are billed
 *   once. Two logs of one call that disagree are never both billed (see queue/scripts.ts).
 */
import { z } from "zod";

export const RECEIPT_VERSION = 1;

const count = z.int().min(0);
const units = z.string().regex(/^(0|[1-9]\d*)$/, "a non-negative integer as decimal text");
const text = z.string().nullable();

export const Receipt = z.object({
  v: z.literal(RECEIPT_VERSION),
  /** idempotency key: LiteLLM's id, else litellm_call_id; `<key>#<start ms>` for another call reusing the key */
  id: z.string().min(1),
  /** chain name from the config ("arbitrum", "polygon") */
  chain: z.string().min(1),
  /** EIP-55 address of the payer */
  payer: z.string().regex(/^0x[0-9a-fA-F]{40}$/),
  /** on-chain provider name ("openai"); resolve to its id with AutoPayLLM.providerId */
  provider: z.string().min(1),
  /** on-chain model name ("gpt-4-turbo"); resolve to its id with AutoPayLLM.modelId */
  model: z.string().min(1),
  /** the config route that priced it */
  route: z.string().min(1),
  promptTokens: count,
  completionTokens: count,
  /** tokens billed: max(total_tokens, prompt_tokens + completion_tokens), at least 1 */
  tokens: z.int().min(1),
  /** exact price in 1/1000 token units */
  amountMilli: units,
  /** ceil(amountMilli / 1000) token units; display only, never sum it */
  amount: units,
  pricing: z.enum(["per_1k_tokens", "response_cost"]),
  /** token units per 1k tokens: the price (per_1k_tokens) or the ceiling (response_cost), if any */
  pricePer1k: units.nullable(),
  /** LiteLLM's response_cost as the decimal text it sent (USD) */
  responseCostUsd: text,
  /** response_cost priced above the route's ceiling and was cut down to it */
  capped: z.boolean(),
  /** epoch milliseconds */
  startTime: z.number(),
  endTime: z.number(),
  latencyMs: count,
  cacheHit: z.boolean(),
  litellmCallId: text,
  /** LiteLLM's `id` field */
  litellmId: z.string(),
  /** LiteLLM's `model` ("openai/gpt-4-turbo") */
  litellmModel: z.string(),
  modelGroup: text,
  /** LiteLLM's custom_llm_provider */
  litellmProvider: text,
  callType: text,
  keyAlias: text,
  keyHash: text,
  userId: text,
  teamId: text,
  endUserId: text,
  traceId: text,
  /** epoch milliseconds when ingest first accepted it */
  receivedAt: z.number(),
});
export type Receipt = z.output<typeof Receipt>;

/** A receipt before the queue gives it its id (the id depends on what the queue has already seen). */
export type ReceiptBody = Omit<Receipt, "id">;

export function amountMilliOf(receipt: Pick<Receipt, "amountMilli">): bigint {
  return BigInt(receipt.amountMilli);
}
