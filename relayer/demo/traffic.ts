/**
 * The demo's LiteLLM traffic: spend logs built from the real LiteLLM payload examples the ingest tests use
 * (fixtures/litellm: a successful OpenAI gpt-4-turbo call, a Groq mixtral call from a generic API
 * logger batch, a 429 rate-limit failure; LiteLLM's StandardLoggingPayload as its generic API logger POSTs it).
 * Each call is a copy of the matching example with its own ids, times, API key, model and token counts: a few
 * teams' keys calling OpenAI gpt-4-turbo, Anthropic claude-3-opus (the OpenAI example with Anthropic's fields) and
 * Groq mixtral, about 3% rate-limited (kept as unbillable by the relayer). Prompts and responses are redacted as
 * LiteLLM does with `turn_off_message_logging` (which `agentgpt litellm config` sets). Deterministic for a seed.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { REPO_ROOT } from "./build.js";
import { prng } from "./prng.js";

/** LiteLLM's own payload examples, as the ingest tests replay them. */
export const LITELLM_EXAMPLES_DIR = join(REPO_ROOT, "fixtures", "litellm");

type Json = Record<string, unknown>;

export interface DemoModel {
  /** on-chain / route model name */
  readonly model: string;
  /** on-chain provider name */
  readonly provider: string;
  /** LiteLLM's custom_llm_provider */
  readonly litellmProvider: string;
  /** as LiteLLM names the provider in exceptions ("OpenAIException") */
  readonly exceptionName: string;
  /** LiteLLM's model ("provider/model") */
  readonly litellmModel: string;
  /** the model group the client asked for */
  readonly modelGroup: string;
  readonly apiBase: string;
  /** USD per 1M input and output tokens, for response_cost (informational: the routes price per 1k tokens) */
  readonly usdPer1M: readonly [number, number];
  /** latency range, ms */
  readonly latencyMs: readonly [number, number];
  /** prompt and completion token ranges */
  readonly prompt: readonly [number, number];
  readonly completion: readonly [number, number];
  /** share of the traffic */
  readonly weight: number;
}

export const DEMO_MODELS: readonly DemoModel[] = [
  {
    model: "gpt-4-turbo",
    provider: "openai",
    litellmProvider: "openai",
    exceptionName: "OpenAI",
    litellmModel: "openai/gpt-4-turbo",
    modelGroup: "gpt-4-turbo",
    apiBase: "https://api.openai.com/v1",
    usdPer1M: [10, 30],
    latencyMs: [280, 900],
    prompt: [300, 3000],
    completion: [60, 900],
    weight: 45,
  },
  {
    model: "mixtral-8x22b",
    provider: "groq",
    litellmProvider: "groq",
    exceptionName: "Groq",
    litellmModel: "groq/mixtral-8x7b-32768",
    modelGroup: "mixtral",
    apiBase: "https://api.groq.com/openai/v1",
    usdPer1M: [0.24, 0.24],
    latencyMs: [12, 45],
    prompt: [200, 2500],
    completion: [40, 700],
    weight: 35,
  },
  {
    model: "claude-3-opus",
    provider: "anthropic",
    litellmProvider: "anthropic",
    exceptionName: "Anthropic",
    litellmModel: "anthropic/claude-3-opus-20240229",
    modelGroup: "claude-3-opus",
    apiBase: "https://api.anthropic.com",
    usdPer1M: [15, 75],
    latencyMs: [450, 1400],
    prompt: [500, 4000],
    completion: [100, 1200],
    weight: 20,
  },
];

export interface DemoCall {
  readonly entry: Json;
  readonly keyAlias: string;
  readonly model: DemoModel;
  /** 0 for a failed call */
  readonly tokens: number;
  readonly ok: boolean;
}

function uuid(random: () => number): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(random() * 16).toString(16)).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/**
 * When the sample's calls end (unix seconds): `now`, or, when the `spanSeconds` before `now` cross the start of a usage
 * bucket of `usageBucket` seconds, that start: a batch holds the calls of one bucket, and a sample split over two would
 * settle in two batches (the demo then counts one more than it says).
 */
export function sampleEnd(now: number, usageBucket: number, spanSeconds = 60): number {
  const bucketStart = Math.floor(now / usageBucket) * usageBucket;
  return now - spanSeconds < bucketStart ? bucketStart : now;
}

/**
 * `count` calls by `keyAliases`, spread over the last `spanSeconds` before `now` (unix seconds), about
 * `failureRate` of them rate-limited.
 */
export function demoTraffic(options: { count: number; keyAliases: readonly string[]; now: number; seed?: number; spanSeconds?: number; failureRate?: number }): DemoCall[] {
  const random = prng(options.seed ?? 20_250_208);
  const total = DEMO_MODELS.reduce((sum, m) => sum + m.weight, 0);
  const pick = () => {
    let r = random() * total;
    for (const model of DEMO_MODELS) if ((r -= model.weight) < 0) return model;
    return DEMO_MODELS[0]!;
  };
  const between = ([low, high]: readonly [number, number]) => Math.floor(low + random() * (high - low + 1));
  const span = options.spanSeconds ?? 60;
  const calls: DemoCall[] = [];
  for (let i = 0; i < options.count; i++) {
    const model = pick();
    // the first keys call more than the last ones
    const keyAlias = options.keyAliases[Math.min(options.keyAliases.length - 1, Math.floor(random() ** 1.4 * options.keyAliases.length))]!;
    const ok = random() >= (options.failureRate ?? 0.03);
    const prompt = ok ? between(model.prompt) : 0;
    const completion = ok ? between(model.completion) : 0;
    const latency = between(model.latencyMs) / 1000;
    const end = options.now - span + (span * i) / options.count + latency;
    calls.push({ entry: spendLog(model, keyAlias, prompt, completion, end - latency, end, ok, random), keyAlias, model, tokens: prompt + completion, ok });
  }
  return calls;
}

interface Examples {
  /** a successful call per on-chain provider name */
  readonly success: ReadonlyMap<string, Json>;
  readonly failure: Json;
}

let examples: Examples | undefined;

/** The example payloads, read once. */
function loadExamples(): Examples {
  if (examples !== undefined) return examples;
  const read = (file: string): unknown => JSON.parse(readFileSync(join(LITELLM_EXAMPLES_DIR, file), "utf8"));
  const openai = read("01_openai_gpt4_turbo_success.json") as Json;
  const batch = read("12_generic_api_batch_json_array.json") as Json[];
  const groq = batch.find((entry) => entry["custom_llm_provider"] === "groq" && entry["status"] === "success");
  if (groq === undefined) throw new Error(`${LITELLM_EXAMPLES_DIR}/12_generic_api_batch_json_array.json: no successful groq entry`);
  // no Anthropic example: the OpenAI one, its provider-specific fields replaced
  const anthropic = structuredClone(openai);
  anthropic["model_map_information"] = { model_map_key: "claude-3-opus-20240229", model_map_value: null };
  (anthropic["hidden_params"] as Json)["additional_headers"] = {};
  examples = {
    success: new Map([
      ["openai", openai],
      ["groq", groq],
      ["anthropic", anthropic],
    ]),
    failure: read("05_failure_rate_limit.json") as Json,
  };
  return examples;
}

const REDACTED = "redacted-by-litellm";

function spendLog(model: DemoModel, keyAlias: string, prompt: number, completion: number, start: number, end: number, ok: boolean, random: () => number): Json {
  const example = loadExamples();
  const entry = structuredClone(ok ? example.success.get(model.provider)! : example.failure);
  const callId = uuid(random);
  const total = prompt + completion;
  const inputCost = (prompt * model.usdPer1M[0]) / 1e6;
  const outputCost = (completion * model.usdPer1M[1]) / 1e6;
  const cost = Number((inputCost + outputCost).toFixed(6));
  const usage = {
    completion_tokens: completion,
    prompt_tokens: prompt,
    total_tokens: total,
    completion_tokens_details: { accepted_prediction_tokens: 0, audio_tokens: 0, reasoning_tokens: 0, rejected_prediction_tokens: 0, text_tokens: null },
    prompt_tokens_details: { audio_tokens: 0, cached_tokens: 0, text_tokens: null, image_tokens: null },
  };
  const modelId = createHash("sha256").update(model.litellmModel).digest("hex");
  const responseId = `chatcmpl-${callId.replace(/-/g, "").slice(0, 29)}`;
  Object.assign(entry, {
    id: ok ? responseId : callId,
    litellm_call_id: callId,
    trace_id: uuid(random),
    custom_llm_provider: model.litellmProvider,
    startTime: start,
    endTime: end,
    completionStartTime: end,
    response_time: end - start,
    model: model.litellmModel,
    response_cost: ok ? cost : 0.0,
    cost_breakdown: ok ? { input_cost: inputCost, output_cost: outputCost, total_cost: cost, tool_usage_cost: 0.0 } : null,
    total_tokens: total,
    prompt_tokens: prompt,
    completion_tokens: completion,
    api_base: model.apiBase,
    model_group: model.modelGroup,
    model_id: modelId,
    messages: [{ role: "user", content: REDACTED }],
  });
  Object.assign(entry["metadata"] as Json, {
    user_api_key_hash: createHash("sha256").update(`sk-demo-${keyAlias}`).digest("hex"),
    user_api_key_alias: keyAlias,
    user_api_key_spend: null,
    user_api_key_max_budget: null,
    user_api_key_budget_reset_at: null,
    usage_object: ok ? usage : { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
  });
  if (ok) {
    const response = entry["response"] as Json;
    Object.assign(response, { id: responseId, created: Math.floor(end), model: model.litellmModel.slice(model.litellmModel.indexOf("/") + 1), usage });
    for (const choice of response["choices"] as Json[]) (choice["message"] as Json)["content"] = REDACTED;
    Object.assign(entry["hidden_params"] as Json, { model_id: modelId, api_base: model.apiBase, response_cost: cost, litellm_model_name: model.modelGroup, usage_object: usage });
  } else {
    const error =
      `litellm.RateLimitError: RateLimitError: ${model.exceptionName}Exception - Rate limit reached for ${model.modelGroup} on tokens per min (TPM). ` +
      `Please try again in 82ms. Received Model Group=${model.modelGroup}\nAvailable Model Group Fallbacks=None`;
    entry["error_str"] = error;
    Object.assign(entry["error_information"] as Json, { llm_provider: model.litellmProvider, error_message: error });
  }
  return entry;
}
