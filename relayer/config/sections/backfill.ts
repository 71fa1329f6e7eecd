/**
 * `backfill:` recovering calls LiteLLM's logger never delivered, from LiteLLM's own spend records (the
 * `LiteLLM_SpendLogs` table of its PostgreSQL database). LiteLLM's generic API logger sends each batch once and
 * drops it on any error, so a POST the relayer refused (503) or never received is lost unless it is read back here.
 * Without this section `relayer start` runs no backfill; `agentgpt litellm backfill` still works given a database.
 *
 * ```yaml
 * backfill:
 *   database_url_env: LITELLM_DATABASE_URL  # variable holding LiteLLM's DATABASE_URL, best a read-only role (default shown)
 *   interval: 5m            # how often the stage runs (default 5m, at least 10s)
 *   lookback: 2h            # each run reads the calls that started in [now - lookback, now - delay] (default 2h; at most ingest.dedupe_ttl less a margin)
 *   delay: 2m               # LiteLLM writes its spend records in batches (about every 60 s): leave them time (default 2m)
 *   page_size: 1000         # rows read per query (default 1000)
 *   statement_timeout: 30s  # per query (default 30s)
 * ```
 */
import { z } from "zod";

import { durationMs } from "./fields.js";

export interface BackfillConfig {
  readonly databaseUrlEnv: string;
  readonly intervalMs: number;
  readonly lookbackMs: number;
  readonly delayMs: number;
  readonly pageSize: number;
  readonly statementTimeoutMs: number;
}

const backfillFields = () =>
  z
    .strictObject({
      database_url_env: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name (the URL itself is a secret: keep it out of the file)")
        .default("LITELLM_DATABASE_URL"),
      interval: durationMs()
        .default(300_000)
        .refine((ms) => ms >= 10_000, "at least 10s"),
      lookback: durationMs()
        .default(7_200_000)
        .refine((ms) => ms >= 60_000, "at least 1m"),
      delay: durationMs().default(120_000),
      page_size: z.int().min(1).max(100_000).default(1000),
      statement_timeout: durationMs()
        .default(30_000)
        .refine((ms) => ms >= 100, "at least 100ms"),
    })
    .refine((b) => b.delay < b.lookback, { message: "delay must be shorter than lookback (each run reads [now - lookback, now - delay])", path: ["delay"] });

function toConfig(b: z.output<ReturnType<typeof backfillFields>>): BackfillConfig {
  return {
    databaseUrlEnv: b.database_url_env,
    intervalMs: b.interval,
    lookbackMs: b.lookback,
    delayMs: b.delay,
    pageSize: b.page_size,
    statementTimeoutMs: b.statement_timeout,
  };
}

/** `backfill:` alone (null) or `backfill: {}` runs it with every default. */
export const backfillSection = () =>
  backfillFields()
    .nullable()
    .optional()
    .transform((b): BackfillConfig | undefined => (b === undefined ? undefined : toConfig(b ?? backfillFields().parse({}))));

/** The defaults, for `agentgpt litellm backfill` without a backfill: section. */
export const DEFAULT_BACKFILL: BackfillConfig = toConfig(backfillFields().parse({}));
