/**
 * `startBackfill(config)`: the backfill as a stage of `relayer start`. Every `backfill.interval` it reads LiteLLM's
 * spend records of the calls that started in [now - lookback, now - delay] and queues those the logger never
 * delivered. Runs never overlap; a failed run (database or Redis down) is logged and counted, and a later good run
 * reads from where the last good one stopped (coverage.ts), however long the outage, back to the dedupe records'
 * reach. Any number of relayers may run it at once: every submission is idempotent, and they share the coverage.
 * Without a `backfill:` section it starts nothing.
 */
import type { Logger } from "pino";

import { dedupeSafeLookbackMs, type RelayerConfig } from "../config/index.js";
import { openReceiptQueue } from "../ingest/runtime.js";
import { configuredSpendLogParser } from "../ingest/spend-log.js";
import { describe } from "../queue/index.js";
import { metricsOnce, type ProcessTelemetry } from "../telemetry/process-telemetry.js";
import { runBackfill, type BackfillResult } from "./backfill.js";
import { BackfillCoverage, scheduledRange } from "./coverage.js";
import { BackfillError } from "./errors.js";
import { BackfillMetrics } from "./metrics.js";
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
  /** where its metrics go (relayer start's process telemetry) */
  readonly telemetry?: ProcessTelemetry | undefined;
  /** the clock (tests) */
  readonly now?: () => number;
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
  const parse = configuredSpendLogParser(config);
  const coverage = new BackfillCoverage(opened.redis, opened.queue.store.keys.backfillCovered);
  const metrics = options.telemetry === undefined ? undefined : metricsOnce(options.telemetry.registry, "backfill", () => new BackfillMetrics(options.telemetry!.registry));
  const clock = options.now ?? Date.now;

  let running: Promise<BackfillResult | null> = Promise.resolve(null);
  let stopped = false;
  let busy = false;
  const runOnce = (): Promise<BackfillResult | null> => {
    if (busy) return running;
    busy = true;
    const now = clock();
    running = (async () => {
      const range = scheduledRange(now, backfill, await coverage.coveredUntil(), now - dedupeSafeLookbackMs(config.ingest.dedupeTtlMs));
      if (range.lost !== null) {
        logger?.error(
          { from: new Date(range.lost.fromMs).toISOString(), to: new Date(range.lost.toMs).toISOString() },
          "the backfill last read LiteLLM's spend records before the dedupe records reach (ingest.dedupe_ttl): calls LiteLLM's logger dropped in this range cannot be recovered without risking a second charge",
        );
      } else if (range.catchingUp) {
        logger?.warn({ from: new Date(range.fromMs).toISOString() }, "backfill catching up from where the last good run stopped");
      }
      const result = await runBackfill(source, opened.queue, range, {
        dedupeTtlMs: config.ingest.dedupeTtlMs,
        now: () => now,
        builder: opened.builder,
        parse,
        pageSize: backfill.pageSize,
        logger,
        // a long catch-up keeps its progress page by page, and stops between pages when the relayer stops
        onProgress: async (readBeforeMs) => {
          if (readBeforeMs > range.fromMs) await coverage.advance(readBeforeMs);
        },
        stopping: () => stopped,
      });
      if (stopped) return result; // stopped half-way: the coverage holds what was read
      const covered = await coverage.advance(range.toMs);
      metrics?.succeeded(result, covered, now);
      return result;
    })()
      .catch((error: unknown) => {
        metrics?.failed();
        logger?.warn({ err: describe(error) }, "backfill run failed; a later good run reads from where the last good one stopped");
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
        stopped = true;
        clearInterval(timer);
        await running;
        await opened.close();
        await source.close();
      })()),
  };
}
