/**
 * LiteLLM's spend records read from its PostgreSQL database, read-only: every session runs with
 * `default_transaction_read_only=on` and a statement timeout, and only `LiteLLM_SpendLogs` is read. Give it a role
 * that can only SELECT that table (README "Backfill").
 *
 * Rows come in pages ordered by ("startTime", request_id), LiteLLM's own index, with a keyset cursor, so a page
 * costs the same at any depth and a row written meanwhile is never skipped. Columns that an older LiteLLM lacks
 * (request_duration_ms, session_id, status) are read as NULL.
 */
import pg from "pg";
import type { z } from "zod";

import { BackfillError, errorCode } from "./errors.js";
import { SpendRecordRow } from "./spend-record.js";

export const SPEND_LOGS_TABLE = "LiteLLM_SpendLogs";

/** Columns read; those marked optional may be missing in older LiteLLM versions. */
const COLUMNS: ReadonlyArray<{ readonly name: string; readonly optional?: true }> = [
  { name: "request_id" },
  { name: "call_type" },
  { name: "api_key" },
  { name: "spend" },
  { name: "total_tokens" },
  { name: "prompt_tokens" },
  { name: "completion_tokens" },
  { name: "request_duration_ms", optional: true },
  { name: "model" },
  { name: "model_group" },
  { name: "custom_llm_provider" },
  { name: "user" },
  { name: "metadata" },
  { name: "cache_hit" },
  { name: "team_id" },
  { name: "end_user" },
  { name: "session_id", optional: true },
  { name: "status", optional: true },
];

export interface SpendSourceOptions {
  /** LiteLLM's DATABASE_URL (postgresql://...); never logged */
  readonly url: string;
  /** per query, ms (default 30 s) */
  readonly statementTimeoutMs?: number;
  /** PostgreSQL schema of LiteLLM's tables (default "public") */
  readonly schema?: string;
}

export interface SpendPage {
  readonly rows: SpendRecordRow[];
  /**
   * rows that cannot be read as a spend record (spend NaN or Infinity, which a double precision column holds and
   * no JSON number can), with the reason: listed, never billed, and never a stop to the rows after them
   */
  readonly refused: ReadonlyArray<{ readonly requestId: string; readonly reason: string }>;
  /** where the next page starts; null after the last page */
  readonly next: SpendCursor | null;
  /** start time (epoch ms) of the page's last row, readable or not; null for an empty page */
  readonly lastStartMs: number | null;
}

/** The last row read: its start time as PostgreSQL text and its request_id. */
export interface SpendCursor {
  readonly startText: string;
  readonly requestId: string;
}

/** A timestamp as PostgreSQL `timestamp` text in UTC, as LiteLLM stores it. */
function pgTime(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

/** Why a row is not a spend record: the first column at fault, its value and what was expected. */
function unreadable(error: z.ZodError, row: Record<string, unknown>): string {
  const issue = error.issues[0];
  const column = issue === undefined ? "" : issue.path.map(String).join(".");
  const value = column === "" ? undefined : row[column];
  return `${column || "row"}: ${typeof value === "number" ? String(value) : JSON.stringify(value) ?? "missing"} cannot be read as a spend record (${issue?.message ?? "not a spend record"})`;
}

function quote(identifier: string): string {
  return `"${identifier.replace(/"/g, '""')}"`;
}

export class PgSpendSource {
  private readonly pool: pg.Pool;
  private select: string | undefined;
  private readonly schema: string;

  constructor(options: SpendSourceOptions) {
    const timeout = options.statementTimeoutMs ?? 30_000;
    this.schema = options.schema ?? "public";
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: 2,
      application_name: "agentgpt-backfill",
      connectionTimeoutMillis: 10_000,
      options: `-c default_transaction_read_only=on -c statement_timeout=${Math.round(timeout)}`,
    });
    // An idle client's error (the server restarted) must not crash the process; the next query reconnects.
    this.pool.on("error", () => {});
  }

  /** Checks the table and its columns once; throws BackfillError with what to fix. */
  async open(): Promise<void> {
    if (this.select !== undefined) return;
    let present: Set<string>;
    try {
      const result = await this.pool.query<{ column_name: string }>(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
        [this.schema, SPEND_LOGS_TABLE],
      );
      present = new Set(result.rows.map((row) => row.column_name));
    } catch (error) {
      throw new BackfillError(
        "database_unreachable",
        `cannot read LiteLLM's database (${errorCode(error) ?? "no answer"}): check the URL in the backfill's database_url_env variable, and that its role may connect`,
        { cause: error },
      );
    }
    if (present.size === 0) {
      throw new BackfillError(
        "not_litellm_database",
        `no table "${SPEND_LOGS_TABLE}" in schema ${this.schema}: point the backfill at LiteLLM's own database (its DATABASE_URL), and grant SELECT on it`,
      );
    }
    const missing = COLUMNS.filter((column) => column.optional !== true && !present.has(column.name)).map((column) => column.name);
    if (missing.length > 0) {
      throw new BackfillError("not_litellm_database", `"${SPEND_LOGS_TABLE}" lacks ${missing.join(", ")}: not a LiteLLM spend log table this relayer knows`);
    }
    const columns = COLUMNS.map((column) => (present.has(column.name) ? quote(column.name) : `NULL AS ${quote(column.name)}`));
    this.select =
      `SELECT ${columns.join(", ")}, ` +
      `floor(extract(epoch FROM "startTime") * 1000)::bigint AS start_ms, floor(extract(epoch FROM "endTime") * 1000)::bigint AS end_ms, ` +
      `to_char("startTime", 'YYYY-MM-DD HH24:MI:SS.MS') AS start_text ` +
      `FROM ${quote(this.schema)}.${quote(SPEND_LOGS_TABLE)} ` +
      `WHERE "startTime" >= $1::timestamp AND "startTime" < $2::timestamp AND ("startTime", request_id) > ($3::timestamp, $4) ` +
      `ORDER BY "startTime", request_id LIMIT $5`;
  }

  /** One page of the calls that started in [fromMs, toMs), after `cursor`. */
  async page(fromMs: number, toMs: number, limit: number, cursor: SpendCursor | null): Promise<SpendPage> {
    await this.open();
    let result: pg.QueryResult<Record<string, unknown>>;
    try {
      result = await this.pool.query(this.select!, [pgTime(fromMs), pgTime(toMs), cursor?.startText ?? "-infinity", cursor?.requestId ?? "", limit]);
    } catch (error) {
      throw new BackfillError("query_failed", `reading ${SPEND_LOGS_TABLE} failed (${errorCode(error) ?? "no answer"})`, { cause: error });
    }
    const rows: SpendRecordRow[] = [];
    const refused: Array<{ requestId: string; reason: string }> = [];
    for (const row of result.rows) {
      const parsed = SpendRecordRow.safeParse(row);
      if (parsed.success) rows.push(parsed.data);
      else refused.push({ requestId: String(row["request_id"]), reason: unreadable(parsed.error, row) });
    }
    // the cursor is the last row read, readable or not, so an unreadable row is passed, never read again and again
    const last = result.rows[result.rows.length - 1];
    return {
      rows,
      refused,
      lastStartMs: last === undefined ? null : Number(last["start_ms"]),
      next: result.rows.length < limit || last === undefined ? null : { startText: String(last["start_text"]), requestId: String(last["request_id"]) },
    };
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
