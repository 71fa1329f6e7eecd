/**
 * `startBackfill(config)`: the backfill as a stage of `relayer start`. Every `backfill.interval` it reads LiteLLM's
 * spend records of the calls that started in [now - lookback, now - delay] and queues those the logger never
 * delivered. Runs never overlap; a failed run (database or Redis down) is logged and the next one covers its
 * range again. Any number of relayers may run it at once: every submission is idempotent.
 * Without a `backfill:` section it starts nothing.
 */
import type { Logger } from "pino";

import type { RelayerConfig } from "../config/index.js";
import { openReceiptQueue } from "../ingest/runtime.js";
import { spendLogParser } from "../ingest/spend-log.js";
import { describe } from "../queue/index.js";
import { runBackfill, type BackfillResult } from "./backfill.js";
import { BackfillError } from "./errors.js";
import { PgSpendSource } from "./pg-source.js";

export interface BackfillHandle {
  /** runs one backfill now (what the timer does); resolves with its result */
  runOnce(): Promise<BackfillResult | null>;
  stop(): Promise<void>;
}

export interface StartBackfillOptions {
  readonly logger?: Logger | undefined;
  /** for backfill.database_url_env; process.env by default */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** run on a timer (default true); false: only runOnce */
  readonly timer?: boolean;
}

/** LiteLLM's database URL from the environment, or a BackfillError naming the variable. */
export function databaseUrl(variable: string, env: Readonly<Record<string, string | undefined>>): string {
  const url = env[variable];
  if (url === undefined || url.trim() === "") {
    throw new BackfillError("no_database_url", `set ${variable} to LiteLLM's database URL (postgresql://user:password@host:5432/litellm), best a read-only role`);
  }
  if (!/^postgres(ql)?:\/\//.test(url.trim())) throw new BackfillError("no_database_url", `${variable} must be a postgresql:// URL (LiteLLM's DATABASE_URL)`);
  return url.trim();
}

export async function startBackfill(config: RelayerConfig, options: StartBackfillOptions = {}): Promise<BackfillHandle> {
  const backfill = config.backfill;
  if (backfill === undefined) return { runOnce: async () => null, stop: async () => {} };
  const logger = options.logger;
  const source = new PgSpendSource({ url: databaseUrl(backfill.databaseUrlEnv, options.env ?? process.env), statementTimeoutMs: backfill.statementTimeoutMs });
  try {
    await source.open();
  } catch (error) {
    await source.close();
    throw error;
  }
  const opened = await openReceiptQueue(config, logger, { refuseEviction: true });
  const parse = spendLogParser({ maxTokensPerCall: config.ingest.maxTokensPerCall });

  let running: Promise<BackfillResult | null> = Promise.resolve(null);
  let busy = false;
  const runOnce = (): Promise<BackfillResult | null> => {
    if (busy) return running;
    busy = true;
    const now = Date.now();
    running = runBackfill(source, opened.queue, { fromMs: now - backfill.lookbackMs, toMs: now - backfill.delayMs }, {
      dedupeTtlMs: config.ingest.dedupeTtlMs,
      now: () => now,
      builder: opened.builder,
      parse,
      pageSize: backfill.pageSize,
      logger,
    })
      .catch((error: unknown) => {
        logger?.warn({ err: describe(error) }, "backfill run failed; the next run reads the same range again");
        return null;
      })
      .finally(() => {
        busy = false;
      });
    return running;
  };
  let timer: NodeJS.Timeout | undefined;
  if (options.timer !== false) {
    void runOnce();
    timer = setInterval(() => void runOnce(), backfill.intervalMs);
    timer.unref();
  }
  logger?.info({ intervalMs: backfill.intervalMs, lookbackMs: backfill.lookbackMs, delayMs: backfill.delayMs }, "backfill from LiteLLM's spend records started");
  let stopping: Promise<void> | undefined;
  return {
    runOnce,
    stop: () =>
      (stopping ??= (async () => {
        clearInterval(timer);
        await running;
        await opened.close();
        await source.close();
      })()),
  };
}
