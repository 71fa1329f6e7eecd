/**
 * One LiteLLM log entry (`StandardLoggingPayload`, as the generic API logger posts it), validated with zod and
 * reduced to the fields billing needs: `SpendLog`. Unknown fields are ignored; prompts and responses are never
 * kept. Accepts the variants LiteLLM versions send: epoch-seconds floats or strings ("1718035200.41",
 * "2024-06-10 16:00:00.412311", ISO 8601) for times, token counts as ints or digit strings, a missing `status`
 * (inferred from `error_str`), `end_user: ""` for none.
 */
import { z } from "zod";

import { decimalOfNumber, formatDecimal, isPayerAddress, parseDecimal, toPayerAddress, WALLET_SOURCES, type WalletSource } from "../config/index.js";

export interface SpendLog {
  /** idempotency key: litellm_call_id when present, else id */
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
}

const MAX_ID_LENGTH = 256;
/** Plausible epoch seconds: 2000-01-01 .. 2100-01-01. */
const MIN_EPOCH_S = 946_684_800;
const MAX_EPOCH_S = 4_102_444_800;

const text = () => z.string().max(1024).nullish();
const id = () => z.string().min(1).max(MAX_ID_LENGTH, `at most ${MAX_ID_LENGTH} characters`);

const tokenCount = (limits: SpendLogLimits) =>
  z
    .union([z.number(), z.string()])
    .nullish()
    .transform((value, ctx): number => {
      if (value === null || value === undefined) return 0;
      const count = typeof value === "string" && /^\d{1,16}$/.test(value.trim()) ? Number(value.trim()) : value;
      if (typeof count !== "number" || !Number.isSafeInteger(count) || count < 0) {
        ctx.addIssue({ code: "custom", message: `must be a non-negative integer, got ${JSON.stringify(value)}` });
        return z.NEVER;
      }
      if (count > limits.maxTokensPerCall) {
        ctx.addIssue({ code: "custom", message: `${count} exceeds the per-call limit of ${limits.maxTokensPerCall} (ingest.max_tokens_per_call)` });
        return z.NEVER;
      }
      return count;
    });

const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/;

/** Epoch ms from a LiteLLM time: epoch seconds (number or text) or a date-time (no zone means UTC). */
export function parseLogTime(value: number | string): number | undefined {
  let seconds: number | undefined;
  if (typeof value === "number") seconds = value;
  else if (/^\d+(\.\d+)?$/.test(value.trim())) seconds = Number(value.trim());
  if (seconds !== undefined) {
    return Number.isFinite(seconds) && seconds >= MIN_EPOCH_S && seconds <= MAX_EPOCH_S ? Math.round(seconds * 1000) : undefined;
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

const time = () =>
  z.union([z.number(), z.string().max(64)]).transform((value, ctx): number => {
    const ms = parseLogTime(value);
    if (ms === undefined) {
      ctx.addIssue({ code: "custom", message: `not a time: ${JSON.stringify(value)} (epoch seconds or ISO 8601 expected)` });
      return z.NEVER;
    }
    return ms;
  });

const responseCost = () =>
  z
    .union([z.number(), z.string().max(64)])
    .nullish()
    .transform((value, ctx): string | null => {
      if (value === null || value === undefined) return null;
      const decimal = typeof value === "number" ? decimalOfNumber(value) : parseDecimal(value);
      if (decimal === undefined || decimal.digits < 0n) {
        ctx.addIssue({ code: "custom", message: `must be a non-negative number of USD, got ${JSON.stringify(value)}` });
        return z.NEVER;
      }
      return formatDecimal(decimal);
    });

const flag = () =>
  z
    .union([z.boolean(), z.enum(["True", "False", "true", "false"])])
    .nullish()
    .transform((value) => value === true || value === "True" || value === "true");

const metadataObject = () => z.record(z.string(), z.unknown()).nullish();

const metadata = () =>
  z
    .looseObject({
      user_api_key_hash: text(),
      user_api_key_alias: text(),
      user_api_key_user_id: text(),
      user_api_key_team_id: text(),
      user_api_key_end_user_id: text(),
      spend_logs_metadata: metadataObject(),
      requester_metadata: metadataObject(),
    })
    .nullish();

const entrySchema = (limits: SpendLogLimits) =>
  z.looseObject({
    id: id().nullish(),
    litellm_call_id: id().nullish(),
    trace_id: text(),
    call_type: text(),
    status: z.enum(["success", "failure"]).nullish(),
    error_str: z.string().nullish(),
    custom_llm_provider: text(),
    model: z.string().max(512).nullish(),
    model_group: text(),
    prompt_tokens: tokenCount(limits),
    completion_tokens: tokenCount(limits),
    total_tokens: tokenCount(limits),
    response_cost: responseCost(),
    startTime: time(),
    endTime: time().nullish(),
    response_time: z.number().min(0).max(86_400).nullish(),
    cache_hit: flag(),
    end_user: text(),
    metadata: metadata(),
  });

function blank(value: string | null | undefined): string | null {
  return value === undefined || value === null || value.trim() === "" ? null : value;
}

function walletsOf(source: Record<string, unknown> | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (source === null || source === undefined) return out;
  for (const [field, value] of Object.entries(source)) {
    if (typeof value === "string" && isPayerAddress(value)) out[field] = toPayerAddress(value);
  }
  return out;
}

export type SpendLogParse = { readonly ok: true; readonly log: SpendLog } | { readonly ok: false; readonly reason: string };

/**
 * A validator of LiteLLM entries under `limits` (build it once: it compiles the schema). The reason of a refusal
 * names the fields at fault.
 */
export function spendLogParser(limits: SpendLogLimits): (entry: unknown) => SpendLogParse {
  const schema = entrySchema(limits);
  return (entry) => parseEntry(schema, entry);
}

function parseEntry(schema: ReturnType<typeof entrySchema>, entry: unknown): SpendLogParse {
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
  const parsed = schema.safeParse(raw);
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
  const litellmCallId = blank(value.litellm_call_id);
  const litellmId = blank(value.id);
  const key = litellmCallId ?? litellmId;
  if (key === null) return { ok: false, reason: "id: an entry needs litellm_call_id or id (its idempotency key)" };
  const startTime = value.startTime;
  const endTime = value.endTime ?? startTime;
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
      promptTokens: value.prompt_tokens,
      completionTokens: value.completion_tokens,
      totalTokens: value.total_tokens,
      responseCostUsd: value.response_cost,
      startTime,
      endTime,
      latencyMs: Math.max(0, Math.round(value.response_time === null || value.response_time === undefined ? endTime - startTime : value.response_time * 1000)),
      cacheHit: value.cache_hit,
      keyHash: blank(metadataValue.user_api_key_hash),
      keyAlias: blank(metadataValue.user_api_key_alias),
      userId: blank(metadataValue.user_api_key_user_id),
      teamId: blank(metadataValue.user_api_key_team_id),
      endUser: blank(value.end_user) ?? blank(metadataValue.user_api_key_end_user_id),
      traceId: blank(value.trace_id),
      wallets: {
        spend_logs_metadata: walletsOf(metadataValue.spend_logs_metadata),
        requester_metadata: walletsOf(metadataValue.requester_metadata),
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
