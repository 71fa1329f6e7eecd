/**
 * A row of LiteLLM's `LiteLLM_SpendLogs` table, as the backfill reads it, and the LiteLLM log entry it stands for.
 *
 * LiteLLM writes one row per call (litellm/proxy/spend_tracking/spend_tracking_utils.py, get_logging_payload) from
 * the same call data as the StandardLoggingPayload its generic API logger posts:
 * - request_id is the response's id, else litellm_call_id: the StandardLoggingPayload's `id`, ingest's key;
 *   a cache hit gets `<id>_cache_hit<time>` (such rows are skipped: a cache hit is never billed);
 * - startTime / endTime are the same datetimes, kept to the millisecond (timestamp(3), UTC);
 * - spend is response_cost; prompt/completion/total_tokens the same usage;
 * - api_key is the key's hash (metadata.user_api_key_hash), "user" the key's user id, team_id, end_user;
 * - metadata is SpendLogsMetadata: user_api_key_alias, spend_logs_metadata, status, ...;
 * - session_id is the payload's trace_id when it had one.
 * The row becomes the entry the logger would have posted and goes through ingest's own parser, so a backfilled
 * call is validated, priced and mapped to its payer exactly as a logged one.
 */
import { z } from "zod";

const text = z.string().nullish();

/** What the query returns (see pg-source.ts); times as epoch ms (bigint text from PostgreSQL). */
export const SpendRecordRow = z.object({
  request_id: z.string(),
  call_type: text,
  api_key: text,
  spend: z.number().nullish(),
  total_tokens: z.number().nullish(),
  prompt_tokens: z.number().nullish(),
  completion_tokens: z.number().nullish(),
  start_ms: z.union([z.string(), z.number()]).transform(Number),
  end_ms: z.union([z.string(), z.number()]).transform(Number),
  request_duration_ms: z.number().nullish(),
  model: text,
  model_group: text,
  custom_llm_provider: text,
  user: text,
  metadata: z.unknown(),
  cache_hit: text,
  team_id: text,
  end_user: text,
  session_id: text,
  status: text,
});
export type SpendRecordRow = z.output<typeof SpendRecordRow>;

/** Whether LiteLLM recorded the call as served from its cache (cache_hit is the text "True"). */
export function isCacheHit(row: Pick<SpendRecordRow, "cache_hit">): boolean {
  return (row.cache_hit ?? "").trim().toLowerCase() === "true";
}

function record(value: unknown): Record<string, unknown> {
  if (typeof value === "string") {
    try {
      return record(JSON.parse(value));
    } catch {
      return {};
    }
  }
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** The StandardLoggingPayload fields billing reads, rebuilt from a spend record. */
export function entryOfRecord(row: SpendRecordRow): Record<string, unknown> {
  const metadata = record(row.metadata);
  const status = row.status ?? (metadata["status"] === "failure" ? "failure" : "success");
  return {
    id: row.request_id,
    litellm_call_id: null, // not in the spend record
    trace_id: row.session_id ?? null,
    call_type: row.call_type ?? null,
    status,
    custom_llm_provider: row.custom_llm_provider ?? null,
    model: row.model ?? "",
    model_group: row.model_group ?? null,
    prompt_tokens: row.prompt_tokens ?? 0,
    completion_tokens: row.completion_tokens ?? 0,
    total_tokens: row.total_tokens ?? 0,
    response_cost: row.spend ?? null,
    startTime: iso(row.start_ms),
    endTime: iso(row.end_ms),
    response_time: row.request_duration_ms === null || row.request_duration_ms === undefined ? null : row.request_duration_ms / 1000,
    cache_hit: isCacheHit(row),
    end_user: row.end_user ?? null,
    metadata: {
      user_api_key_hash: row.api_key ?? null,
      user_api_key_alias: typeof metadata["user_api_key_alias"] === "string" ? metadata["user_api_key_alias"] : null,
      user_api_key_user_id: row.user ?? null,
      user_api_key_team_id: row.team_id ?? null,
      user_api_key_end_user_id: null,
      spend_logs_metadata: typeof metadata["spend_logs_metadata"] === "object" ? metadata["spend_logs_metadata"] : null,
      requester_metadata: typeof metadata["requester_metadata"] === "object" ? metadata["requester_metadata"] : null,
    },
  };
}
