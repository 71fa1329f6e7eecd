/** LiteLLM spend logs (StandardLoggingPayload) built from the real fixture, for end-to-end tests. */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "fixtures", "litellm", "01_openai_gpt4_turbo_success.json");
const template = JSON.parse(readFileSync(FIXTURE, "utf8")) as Record<string, any>;

export const PRICE_PER_1K: Record<string, bigint> = {
  "gpt-4-turbo": (12n * 10n ** 18n) / 100n,
  "mixtral-8x22b": (85n * 10n ** 18n) / 10_000n,
};

export interface SpendLog {
  entry: Record<string, unknown>;
  payerIndex: number;
  model: "gpt-4-turbo" | "mixtral-8x22b";
  tokens: number;
  /** exact token units this call costs */
  amountMilli: bigint;
}

let sequence = 0;

/**
 * A successful call by key alias `payer-<payerIndex>` with `tokens` total tokens. `startTime` (unix seconds, as
 * LiteLLM sends it) moves the call in time (endTime follows, 7.5 s later); default: the fixture's.
 */
export function spendLog(payerIndex: number, model: SpendLog["model"], tokens: number, runId: string, options: { startTime?: number } = {}): SpendLog {
  sequence += 1;
  const entry = structuredClone(template);
  if (options.startTime !== undefined) {
    entry.startTime = options.startTime;
    entry.endTime = options.startTime + 7.5;
    entry.completionStartTime = options.startTime + 7.5;
  }
  const id = `${runId}-${sequence}`;
  entry.litellm_call_id = id;
  entry.id = `chatcmpl-${id}`;
  entry.trace_id = id;
  const prompt = Math.floor(tokens * 0.7);
  entry.prompt_tokens = prompt;
  entry.completion_tokens = tokens - prompt;
  entry.total_tokens = tokens;
  entry.messages = [{ role: "user", content: "hi" }];
  entry.response = {};
  entry.model_map_information = null;
  if (model === "mixtral-8x22b") {
    entry.custom_llm_provider = "groq";
    entry.model = "groq/mixtral-8x7b-32768";
    entry.model_group = "mixtral";
    entry.api_base = "https://api.groq.com/openai/v1";
  }
  entry.metadata = { ...entry.metadata, user_api_key_alias: `payer-${payerIndex}`, usage_object: null };
  return { entry, payerIndex, model, tokens, amountMilli: BigInt(tokens) * PRICE_PER_1K[model]! };
}

/** Expected charge per payer index: each payer's calls are priced exactly (these prices divide evenly). */
export function chargesByPayer(logs: readonly SpendLog[]): Map<number, bigint> {
  const out = new Map<number, bigint>();
  for (const log of logs) out.set(log.payerIndex, (out.get(log.payerIndex) ?? 0n) + log.amountMilli / 1000n);
  return out;
}
