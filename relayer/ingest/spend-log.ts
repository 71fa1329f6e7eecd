/**
 * One LiteLLM log entry (`StandardLoggingPayload`, as the generic API logger posts it), validated with zod and
 * reduced to the fields billing needs: `SpendLog`. Unknown fields are ignored; prompts and responses are never
 * kept. Accepts the variants LiteLLM versions send: epoch-seconds floats or strings ("1718035200.41",
 * "2024-06-10 16:00:00.412311", ISO 8601) for times, token counts as ints or digit strings, a missing `status`
 * (inferred from `error_str`), `end_user: ""` for none.
 */
import { z } from "zod";

import { decimalOfNumber, formatDecimal, isPayerAddress, parseDecimal, type RelayerConfig, toPayerAddress, WALLET_SOURCES, type WalletSource } from "../config/index.js";
import type { FieldPick } from "./json-scan.js";
import { walletFieldsOf } from "./payer-map.js";

export interface SpendLog {
  /**
   * idempotency key: LiteLLM's `id` (its StandardLoggingPayload id: the response id, else the call id; the same
   * value is the request_id of LiteLLM's spend record), else litellm_call_id
   */
  readonly key: string;
  readonly litellmCallId: string | null;
  readonly litellmId: string;
  readonly status: "success" | "failure";
  readonly callType: string | null;
  /** custom_llm_provider */
  readonly litellmProvider: string | null;
  readonly model: string;
  readonly modelGroup: string | null;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly totalTokens: number;
  /** response_cost as exact decimal text (USD), null when absent */
  readonly responseCostUsd: string | null;
  /** epoch milliseconds */
  readonly startTime: number;
  readonly endTime: number;
  /** the call's whole duration (endTime - startTime), streaming included; never the time to first token */
  readonly latencyMs: number;
  readonly cacheHit: boolean;
  readonly keyHash: string | null;
  readonly keyAlias: string | null;
  readonly userId: string | null;
  readonly teamId: string | null;
  /** end_user, else metadata.user_api_key_end_user_id */
  readonly endUser: string | null;
  readonly traceId: string | null;
  /** address-valued fields of spend_logs_metadata / requester_metadata (EIP-55), for payer rules' wallet_from */
  readonly wallets: Readonly<Record<WalletSource, Readonly<Record<string, string>>>>;
}

export interface SpendLogLimits {
  /** a token count above this is refused (config ingest.max_tokens_per_call) */
  readonly maxTokensPerCall: number;
  /** the metadata fields the payer rules read a wallet from (wallet_from), always kept: see MAX_WALLET_FIELDS */
  readonly walletFields?: Readonly<Record<WalletSource, readonly string[]>>;
}

/**
 * Address-valued metadata fields kept per source, besides those the payer rules read. A caller sets
 * requester_metadata, and an unbillable call's log is kept in Redis for dedupe_ttl: ten thousand address fields in
 * every call would fill it. The fields the payer rules read are kept first, so that no number of other fields can push
 * the wallet out of the log (and a call out of billing).
 */
export const MAX_WALLET_FIELDS = 16;

const MAX_ID_LENGTH = 256;
/** Plausible epoch seconds: 2000-01-01 .. 2100-01-01. */
const MIN_EPOCH_S = 946_684_800;
const MAX_EPOCH_S = 4_102_444_800;

const text = () => z.string().max(1024).nullish();
const id = () => z.string().min(1).max(MAX_ID_LENGTH, `at most ${MAX_ID_LENGTH} characters`).nullish();
const numberOrText = (max: number) => z.union([z.number(), z.string().max(max)]);

const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/;

/** Epoch ms from a LiteLLM time: epoch seconds (number or text) or a date-time (no zone means UTC). */
export function parseLogTime(value: number | string): number | undefined {
  let seconds: number | undefined;
  if (typeof value === "number") seconds = value;
  else if (/^\d+(\.\d+)?$/.test(value.trim())) seconds = Number(value.trim());
  if (seconds !== undefined) {
    // Whole microseconds first (what LiteLLM's Python datetime holds), then milliseconds rounded half up, as
    // PostgreSQL stores LiteLLM's spend records (timestamp(3)).
    return Number.isFinite(seconds) && seconds >= MIN_EPOCH_S && seconds <= MAX_EPOCH_S ? Math.floor((Math.round(seconds * 1e6) + 500) / 1000) : undefined;
  }
  const match = DATE_TIME.exec((value as string).trim());
  if (match === null) return undefined;
  const [, y, mo, d, h, mi, s, fraction = "", zone] = match;
  let ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)) + Math.round(Number(`0.${fraction || "0"}`) * 1000);
  if (zone !== undefined && zone !== "Z") {
    const sign = zone.startsWith("-") ? -1 : 1;
    const digits = zone.slice(1).replace(":", "");
    ms -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000;
  }
  return Number.isNaN(ms) || ms < MIN_EPOCH_S * 1000 || ms > MAX_EPOCH_S * 1000 ? undefined : ms;
}

/** The fields of `metadata` billing reads. */
const metadataShape = z.object({
  user_api_key_hash: text(),
  user_api_key_alias: text(),
  user_api_key_user_id: text(),
  user_api_key_team_id: text(),
  user_api_key_end_user_id: text(),
  spend_logs_metadata: z.record(z.string(), z.unknown()).nullish(),
  requester_metadata: z.record(z.string(), z.unknown()).nullish(),
});

/** The fields of an entry billing reads. */
const entryShape = z.object({
  id: id(),
  litellm_call_id: id(),
  trace_id: text(),
  call_type: text(),
  status: z.enum(["success", "failure"]).nullish(),
  error_str: z.string().nullish(),
  custom_llm_provider: text(),
  model: z.string().max(512).nullish(),
  model_group: text(),
  prompt_tokens: numberOrText(32).nullish(),
  completion_tokens: numberOrText(32).nullish(),
  total_tokens: numberOrText(32).nullish(),
  response_cost: numberOrText(64).nullish(),
  startTime: numberOrText(64),
  endTime: numberOrText(64).nullish(),
  response_time: z.number().min(0).max(86_400).nullish(),
  cache_hit: z.union([z.boolean(), z.string().max(8)]).nullish(),
  end_user: text(),
  metadata: metadataShape.nullish(),
});

/**
 * The shape check (types and sizes only; compiled by zod into a fast path). Values are normalized and checked
 * against limits afterwards, in `parseEntry`. Unknown fields are dropped (prompts, responses, cost maps).
 */
const entrySchema = z.compile(entryShape);

/**
 * The fields of an entry to read at all (the body reader builds these and skips the rest): those of the shape
 * check, and `usage`, which tells LiteLLM's v1 payload apart.
 */
export const SPEND_LOG_FIELDS: FieldPick = {
  ...Object.fromEntries(Object.keys(entryShape.shape).map((name) => [name, true] as const)),
  usage: true,
  metadata: Object.fromEntries(Object.keys(metadataShape.shape).map((name) => [name, true] as const)),
};

/**
 * Fields of LiteLLM's StandardLoggingPayload billing never reads, and the largest part of each log (the cost map
 * alone is about 1.6 KB of a 6 KB log): `agentgpt litellm config` asks LiteLLM to leave them out
 * (`litellm_settings.standard_logging_payload_excluded_fields`). None of them is in SPEND_LOG_FIELDS.
 */
export const LITELLM_FIELDS_NOT_READ: readonly string[] = [
  "messages",
  "response",
  "model_map_information",
  "hidden_params",
  "model_parameters",
  "cost_breakdown",
  "error_information",
  "response_cost_failure_debug_info",
  "guardrail_information",
  "standard_built_in_tools_params",
];

type Problems = string[];

function tokenCount(value: number | string | null | undefined, field: string, limits: SpendLogLimits, problems: Problems): number {
  if (value === null || value === undefined) return 0;
  const count = typeof value === "string" && /^\d{1,16}$/.test(value.trim()) ? Number(value.trim()) : value;
  if (typeof count !== "number" || !Number.isSafeInteger(count) || count < 0) {
    problems.push(`${field}: must be a non-negative integer, got ${JSON.stringify(value)}`);
    return 0;
  }
  if (count > limits.maxTokensPerCall) {
    problems.push(`${field}: ${count} exceeds the per-call limit of ${limits.maxTokensPerCall} (ingest.max_tokens_per_call)`);
    return 0;
  }
  return count;
}

function logTime(value: number | string, field: string, problems: Problems): number {
  const ms = parseLogTime(value);
  if (ms === undefined) {
    problems.push(`${field}: not a time: ${JSON.stringify(value)} (epoch seconds or ISO 8601 expected)`);
    return 0;
  }
  return ms;
}

function costText(value: number | string | null | undefined, problems: Problems): string | null {
  if (value === null || value === undefined) return null;
  const decimal = typeof value === "number" ? decimalOfNumber(value) : parseDecimal(value);
  if (decimal === undefined || decimal.digits < 0n) {
    problems.push(`response_cost: must be a non-negative number of USD, got ${JSON.stringify(value)}`);
    return null;
  }
  return formatDecimal(decimal);
}

function flag(value: boolean | string | null | undefined, field: string, problems: Problems): boolean {
  if (value === null || value === undefined || value === false) return false;
  if (value === true) return true;
  const lower = value.toLowerCase();
  if (lower === "true") return true;
  if (lower === "false" || lower === "") return false;
  problems.push(`${field}: must be true or false, got ${JSON.stringify(value)}`);
  return false;
}

function blank(value: string | null | undefined): string | null {
  return value === undefined || value === null || value.trim() === "" ? null : value;
}

function walletsOf(source: Record<string, unknown> | null | undefined, read: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  if (source === null || source === undefined) return out;
  for (const field of read) {
    const value = Object.hasOwn(source, field) ? source[field] : undefined;
    if (typeof value === "string" && isPayerAddress(value)) out[field] = toPayerAddress(value);
  }
  let others = 0;
  for (const [field, value] of Object.entries(source)) {
    if (others === MAX_WALLET_FIELDS) break;
    if (Object.hasOwn(out, field) || typeof value !== "string" || !isPayerAddress(value)) continue;
    out[field] = toPayerAddress(value);
    others += 1;
  }
  return out;
}

export type SpendLogParse = { readonly ok: true; readonly log: SpendLog } | { readonly ok: false; readonly reason: string };

/** A validator of LiteLLM entries under `limits`. The reason of a refusal names the fields at fault. */
export function spendLogParser(limits: SpendLogLimits): (entry: unknown) => SpendLogParse {
  return (entry) => parseEntry(entry, limits);
}

/**
 * The validator as the relayer's configuration sets it, for every path a log comes in by (ingest's POSTs, the
 * backfill): ingest.max_tokens_per_call, and the wallet fields its payer rules read (kept whatever else a caller sends).
 */
export function configuredSpendLogParser(config: Pick<RelayerConfig, "ingest" | "payers">): (entry: unknown) => SpendLogParse {
  return spendLogParser({ maxTokensPerCall: config.ingest.maxTokensPerCall, walletFields: walletFieldsOf(config.payers) });
}

function parseEntry(entry: unknown, limits: SpendLogLimits): SpendLogParse {
  if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
    return { ok: false, reason: `an entry must be a JSON object (a StandardLoggingPayload), got ${Array.isArray(entry) ? "an array" : typeof entry}` };
  }
  const raw = entry as Record<string, unknown>;
  if (typeof raw["usage"] === "string" && raw["prompt_tokens"] === undefined && raw["total_tokens"] === undefined) {
    return {
      ok: false,
      reason: "this is LiteLLM's v1 logging payload (litellm.generic_api_use_v1): turn that setting off so LiteLLM sends StandardLoggingPayload",
    };
  }
  const parsed = entrySchema.safeParse(raw);
  if (!parsed.success) {
    return {
      ok: false,
      reason: parsed.error.issues
        .slice(0, 5)
        .map((issue) => `${issue.path.map(String).join(".") || "entry"}: ${issue.message}`)
        .join("; "),
    };
  }
  const value = parsed.data;
  const problems: Problems = [];
  const litellmCallId = blank(value.litellm_call_id);
  const litellmId = blank(value.id);
  const key = litellmId ?? litellmCallId;
  if (key === null) problems.push("id: an entry needs id or litellm_call_id (its idempotency key)");
  const promptTokens = tokenCount(value.prompt_tokens, "prompt_tokens", limits, problems);
  const completionTokens = tokenCount(value.completion_tokens, "completion_tokens", limits, problems);
  const totalTokens = tokenCount(value.total_tokens, "total_tokens", limits, problems);
  const startTime = logTime(value.startTime, "startTime", problems);
  const hasEnd = value.endTime !== null && value.endTime !== undefined;
  const endTime = hasEnd ? logTime(value.endTime!, "endTime", problems) : startTime;
  const responseCostUsd = costText(value.response_cost, problems);
  const cacheHit = flag(value.cache_hit, "cache_hit", problems);
  if (problems.length > 0 || key === null) return { ok: false, reason: problems.join("; ") };

  const metadataValue = value.metadata ?? {};
  const errorText = blank(value.error_str);
  return {
    ok: true,
    log: {
      key,
      litellmCallId,
      litellmId: litellmId ?? key,
      status: value.status ?? (errorText === null ? "success" : "failure"),
      callType: blank(value.call_type),
      litellmProvider: blank(value.custom_llm_provider),
      model: value.model ?? "",
      modelGroup: blank(value.model_group),
      promptTokens,
      completionTokens,
      totalTokens,
      responseCostUsd,
      startTime,
      endTime,
      // the whole call, start to end, streaming or not: LiteLLM's response_time is the time to first token for a
      // stream (whole duration otherwise), so it is used only when the log has no endTime
      latencyMs: Math.max(0, Math.round(hasEnd || value.response_time === null || value.response_time === undefined ? endTime - startTime : value.response_time * 1000)),
      cacheHit,
      keyHash: blank(metadataValue.user_api_key_hash),
      keyAlias: blank(metadataValue.user_api_key_alias),
      userId: blank(metadataValue.user_api_key_user_id),
      teamId: blank(metadataValue.user_api_key_team_id),
      endUser: blank(value.end_user) ?? blank(metadataValue.user_api_key_end_user_id),
      traceId: blank(value.trace_id),
      wallets: {
        spend_logs_metadata: walletsOf(metadataValue.spend_logs_metadata, limits.walletFields?.spend_logs_metadata ?? []),
        requester_metadata: walletsOf(metadataValue.requester_metadata, limits.walletFields?.requester_metadata ?? []),
      },
    },
  };
}

/** Tokens a call is billed for: total_tokens, or prompt + completion when that is larger. */
export function billedTokens(log: Pick<SpendLog, "promptTokens" | "completionTokens" | "totalTokens">): number {
  return Math.max(log.totalTokens, log.promptTokens + log.completionTokens);
}

/** The stored form of a SpendLog is the object itself (JSON-safe); this validates one read back for re-pricing. */
export const StoredSpendLog = z.object({
  key: z.string().min(1),
  litellmCallId: z.string().nullable(),
  litellmId: z.string(),
  status: z.enum(["success", "failure"]),
  callType: z.string().nullable(),
  litellmProvider: z.string().nullable(),
  model: z.string(),
  modelGroup: z.string().nullable(),
  promptTokens: z.int().min(0),
  completionTokens: z.int().min(0),
  totalTokens: z.int().min(0),
  responseCostUsd: z.string().nullable(),
  startTime: z.number(),
  endTime: z.number(),
  latencyMs: z.number(),
  cacheHit: z.boolean(),
  keyHash: z.string().nullable(),
  keyAlias: z.string().nullable(),
  userId: z.string().nullable(),
  teamId: z.string().nullable(),
  endUser: z.string().nullable(),
  traceId: z.string().nullable(),
  wallets: z.object(Object.fromEntries(WALLET_SOURCES.map((source) => [source, z.record(z.string(), z.string())])) as Record<
    WalletSource,
    z.ZodRecord<z.ZodString, z.ZodString>
  >),
}) satisfies z.ZodType<SpendLog>;
