/**
 * LiteLLM's database as LiteLLM's proxy leaves it: the `LiteLLM_SpendLogs` table of its schema.prisma
 * (litellm-spend-logs.sql) and one row per call written the way LiteLLM writes it
 * (litellm/proxy/spend_tracking/spend_tracking_utils.py, get_logging_payload) from the same call data its generic
 * API logger posts as a StandardLoggingPayload. Used by the backfill tests and by `npm run chaos`.
 */
import { readFileSync } from "node:fs";

import pg from "pg";

const DDL = readFileSync(new URL("./litellm-spend-logs.sql", import.meta.url), "utf8");

type Entry = Record<string, any>;

export class LiteLLMDatabase {
  private constructor(private readonly client: pg.Client) {}

  /** Connects to `url` and creates LiteLLM's spend log table there. */
  static async create(url: string): Promise<LiteLLMDatabase> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(DDL);
    return new LiteLLMDatabase(client);
  }

  /**
   * The row LiteLLM writes for the call `entry` (a StandardLoggingPayload) describes: request_id is the response id
   * (the payload's id), the times are the call's datetimes in UTC kept to the millisecond (PostgreSQL rounds the
   * microseconds Prisma sends), spend is response_cost, metadata is SpendLogsMetadata.
   */
  async writeSpendLog(entries: Entry | readonly Entry[]): Promise<void> {
    const list = Array.isArray(entries) ? entries : [entries];
    for (const entry of list) {
      const metadata = entry["metadata"] ?? {};
      const cacheHit = entry["cache_hit"] === true;
      const requestId = cacheHit ? `${entry["id"]}_cache_hit${Date.now() / 1000}` : String(entry["id"]);
      const status = entry["status"] === "failure" ? "failure" : "success";
      const spendLogsMetadata = {
        user_api_key: metadata["user_api_key_hash"] ?? null,
        user_api_key_alias: metadata["user_api_key_alias"] ?? null,
        user_api_key_team_id: metadata["user_api_key_team_id"] ?? null,
        user_api_key_org_id: metadata["user_api_key_org_id"] ?? null,
        user_api_key_user_id: metadata["user_api_key_user_id"] ?? null,
        user_api_key_team_alias: metadata["user_api_key_team_alias"] ?? null,
        spend_logs_metadata: metadata["spend_logs_metadata"] ?? null,
        requester_ip_address: metadata["requester_ip_address"] ?? null,
        applied_guardrails: [],
        status,
        usage_object: metadata["usage_object"] ?? null,
        additional_usage_values: {},
      };
      await this.client.query(
        `INSERT INTO "LiteLLM_SpendLogs" (request_id, call_type, api_key, spend, total_tokens, prompt_tokens, completion_tokens,
           "startTime", "endTime", "completionStartTime", request_duration_ms, model, model_id, model_group, custom_llm_provider, api_base,
           "user", metadata, cache_hit, cache_key, request_tags, team_id, organization_id, end_user, requester_ip_address, session_id, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7,
           to_timestamp($8::double precision) AT TIME ZONE 'UTC', to_timestamp($9::double precision) AT TIME ZONE 'UTC',
           to_timestamp($9::double precision) AT TIME ZONE 'UTC', $10, $11, $12, $13, $14, $15,
           $16, $17, $18, 'Cache OFF', $19, $20, $21, $22, $23, $24, $25)`,
        [
          requestId,
          entry["call_type"] ?? "acompletion",
          metadata["user_api_key_hash"] ?? "",
          entry["response_cost"] ?? 0,
          entry["total_tokens"] ?? 0,
          entry["prompt_tokens"] ?? 0,
          entry["completion_tokens"] ?? 0,
          Number(entry["startTime"]),
          Number(entry["endTime"] ?? entry["startTime"]),
          Math.round((Number(entry["endTime"] ?? entry["startTime"]) - Number(entry["startTime"])) * 1000),
          entry["model"] ?? "",
          entry["model_id"] ?? "",
          entry["model_group"] ?? "",
          entry["custom_llm_provider"] ?? "",
          entry["api_base"] ?? "",
          metadata["user_api_key_user_id"] ?? "",
          JSON.stringify(spendLogsMetadata),
          cacheHit ? "True" : "False",
          JSON.stringify(entry["request_tags"] ?? []),
          metadata["user_api_key_team_id"] ?? "",
          metadata["user_api_key_org_id"] ?? "",
          entry["end_user"] || metadata["user_api_key_end_user_id"] || "",
          metadata["requester_ip_address"] ?? null,
          entry["trace_id"] ?? null,
          status,
        ],
      );
    }
  }

  /** request_id and start time (epoch ms) of every row. */
  async rows(): Promise<Array<{ requestId: string; startMs: number; tokens: number }>> {
    const result = await this.client.query<{ request_id: string; start_ms: string; total_tokens: number }>(
      `SELECT request_id, floor(extract(epoch FROM "startTime") * 1000)::bigint AS start_ms, total_tokens FROM "LiteLLM_SpendLogs" ORDER BY "startTime", request_id`,
    );
    return result.rows.map((row) => ({ requestId: row.request_id, startMs: Number(row.start_ms), tokens: row.total_tokens }));
  }

  async query(sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
    return this.client.query(sql, params);
  }

  async close(): Promise<void> {
    await this.client.end();
  }
}
