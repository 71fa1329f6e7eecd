/**
 * `agentgpt litellm ...`: the LiteLLM side.
 *   config [--config FILE]   print (or --out write) the LiteLLM proxy config.yaml that sends usage to the relayer
 *   backfill --config FILE --since T [--until T]
 *                            read LiteLLM's spend records (its PostgreSQL database) and queue the calls its logger
 *                            never delivered
 * Other `litellm` subcommands (backup, verify, restore) attach to the same group: find it with
 * `program.commands.find((c) => c.name() === "litellm")` before creating it, as below.
 */
import { writeFileSync } from "node:fs";

import type { Command } from "commander";

import { BackfillError, databaseUrl, PgSpendSource, runBackfill, type BackfillResult } from "../../backfill/index.js";
import { DEFAULT_BACKFILL, loadRelayerConfig, parseDurationMs, type RelayerConfig } from "../../config/index.js";
import {
  collectTokens,
  configuredSpendLogParser,
  DEFAULT_CALLBACK_NAME,
  defaultEndpoint,
  liteLLMProxyConfig,
  type LogFormat,
  openReceiptQueue,
  TokenError,
} from "../../ingest/index.js";
import { UserError } from "../errors.js";
import { userFacing } from "./relayer.js";

interface ConfigOptions {
  readonly config?: string;
  readonly endpoint?: string;
  readonly logFormat: string;
  readonly batchSize: string;
  readonly flushInterval: string;
  readonly callbackName: string;
  readonly inlineToken?: boolean;
  readonly models: boolean;
  readonly out?: string;
}

const LOG_FORMATS: readonly LogFormat[] = ["json_array", "ndjson", "single"];

function wholeNumber(flag: string, text: string, min: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) throw new UserError(`${flag} ${text}: give a whole number of at least ${min}`);
  return value;
}

function printConfig(options: ConfigOptions): void {
  let config: RelayerConfig | undefined;
  if (options.config !== undefined) {
    try {
      config = loadRelayerConfig(options.config);
    } catch (error) {
      throw userFacing(error, options.config);
    }
  }
  if (!(LOG_FORMATS as readonly string[]).includes(options.logFormat)) {
    throw new UserError(`--log-format ${options.logFormat}: one of ${LOG_FORMATS.join(", ")} (LiteLLM's log_format)`);
  }
  const endpoint = options.endpoint ?? defaultEndpoint(config);
  if (!/^https?:\/\/\S+$/.test(endpoint)) throw new UserError(`--endpoint ${endpoint}: give the relayer's URL, e.g. http://relayer:8787/litellm/spend`);
  if (!/^[A-Za-z0-9_-]+$/.test(options.callbackName)) throw new UserError(`--callback-name ${options.callbackName}: letters, digits, "_" and "-" only`);

  let inlineToken: string | undefined;
  if (options.inlineToken === true) {
    if (config === undefined) throw new UserError("--inline-token needs --config FILE (the token comes from server.tokens or its environment variable)");
    let tokens: string[];
    try {
      tokens = collectTokens(config.server);
    } catch (error) {
      throw error instanceof TokenError ? new UserError(error.message) : error;
    }
    inlineToken = tokens[0];
    if (inlineToken === undefined) throw new UserError(`--inline-token: no token configured; set ${config.server.tokensEnv} or server.tokens`);
    process.stderr.write("agentgpt: the output contains the relayer's bearer token; keep it private\n");
  }

  const batchSize = wholeNumber("--batch-size", options.batchSize, 1);
  if (config !== undefined && options.logFormat !== "single" && batchSize > config.server.maxEntries) {
    // every POST would be refused (413) and LiteLLM's logger does not send a refused batch again
    throw new UserError(
      `--batch-size ${batchSize}: the relayer of ${options.config} refuses a POST of more than ${config.server.maxEntries} logs (server.max_entries): give at most ${config.server.maxEntries}, or raise server.max_entries`,
    );
  }
  const text = liteLLMProxyConfig(config, {
    endpoint,
    logFormat: options.logFormat as LogFormat,
    batchSize,
    flushInterval: wholeNumber("--flush-interval", options.flushInterval, 1),
    callbackName: options.callbackName,
    inlineToken,
    includeModels: options.models,
  });
  if (options.out === undefined) {
    process.stdout.write(text);
    return;
  }
  try {
    writeFileSync(options.out, text, { mode: inlineToken === undefined ? 0o644 : 0o600 });
  } catch (error) {
    throw new UserError(`--out ${options.out}: cannot write the file (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  process.stderr.write(`agentgpt: wrote ${options.out}\n`);
}

interface BackfillOptions {
  readonly config: string;
  readonly since: string;
  readonly until?: string;
  readonly databaseUrlEnv?: string;
  readonly pageSize?: string;
  readonly dryRun?: boolean;
  readonly json?: boolean;
}

const DATE_TIME = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

/** An ISO 8601 date or date-time (UTC when it names no zone), or a duration before now ("24h", "30m", "7d"). */
export function parseTimeArgument(flag: string, text: string, now: number): number {
  const trimmed = text.trim();
  if (DATE_TIME.test(trimmed)) {
    const zoned = /(Z|[+-]\d{2}:?\d{2})$/.test(trimmed) || !trimmed.includes(":") ? trimmed : `${trimmed}Z`;
    const ms = Date.parse(zoned.includes("T") || !zoned.includes(" ") ? zoned : zoned.replace(" ", "T"));
    if (!Number.isNaN(ms)) return ms;
  }
  try {
    const ago = parseDurationMs(trimmed);
    if (typeof ago === "number" && ago > 0) return now - ago;
  } catch {
    // fall through to the message below
  }
  throw new UserError(`${flag} ${text}: give a UTC date-time (2026-12-03T14:00:00Z, 2026-12-03) or a time before now (24h, 30m, 7d)`);
}

function printBackfill(result: BackfillResult, dryRun: boolean): void {
  const lines = [
    `LiteLLM spend records of calls that started in [${new Date(result.fromMs).toISOString()}, ${new Date(result.toMs).toISOString()}): ${result.read}`,
    dryRun ? "dry run: nothing queued" : `recovered (queued now, never received from LiteLLM's logger): ${result.recovered}`,
    `already received: ${result.alreadyReceived}`,
    `never received, not billable (kept with their reason): ${result.unbillable}`,
    `disagreeing with the log received (kept as conflicts, not billed): ${result.conflicts}`,
    `cache hits skipped: ${result.skippedCacheHits}`,
    `refused: ${result.invalid.length}`,
    ...result.invalid.slice(0, 20).map((entry) => `  ${entry.requestId}: ${entry.reason}`),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

async function backfill(options: BackfillOptions): Promise<void> {
  let config: RelayerConfig;
  try {
    config = loadRelayerConfig(options.config);
  } catch (error) {
    throw userFacing(error, options.config);
  }
  const now = Date.now();
  const fromMs = parseTimeArgument("--since", options.since, now);
  const toMs = options.until === undefined ? now : parseTimeArgument("--until", options.until, now);
  if (!(fromMs < toMs)) throw new UserError(`--since ${options.since} is not before --until ${options.until ?? "now"}: give an earlier --since`);
  const settings = config.backfill ?? DEFAULT_BACKFILL;
  const variable = options.databaseUrlEnv ?? settings.databaseUrlEnv;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(variable)) throw new UserError(`--database-url-env ${variable}: the name of an environment variable`);
  const pageSize = options.pageSize === undefined ? settings.pageSize : wholeNumber("--page-size", options.pageSize, 1);
  let source: PgSpendSource | undefined;
  let opened: Awaited<ReturnType<typeof openReceiptQueue>> | undefined;
  try {
    source = new PgSpendSource({ url: databaseUrl(variable, process.env), statementTimeoutMs: settings.statementTimeoutMs });
    await source.open();
    opened = await openReceiptQueue(config, undefined, { refuseEviction: true });
    const result = await runBackfill(
      source,
      opened.queue,
      { fromMs, toMs },
      { dedupeTtlMs: config.ingest.dedupeTtlMs, now: () => now, builder: opened.builder, parse: configuredSpendLogParser(config), pageSize, dryRun: options.dryRun === true },
    );
    if (options.json === true) process.stdout.write(`${JSON.stringify(result)}\n`);
    else printBackfill(result, options.dryRun === true);
  } catch (error) {
    if (error instanceof BackfillError) throw new UserError(error.message, 2, { cause: error });
    throw userFacing(error, options.config);
  } finally {
    await opened?.close();
    await source?.close();
  }
}

export function register(program: Command): void {
  const litellm =
    program.commands.find((command) => command.name() === "litellm") ??
    program.command("litellm").description("the LiteLLM proxy side: its config, backups of the billing data");

  litellm
    .command("config")
    .description("print the LiteLLM proxy config.yaml that points LiteLLM's generic API logger at this relayer")
    .option("--config <file>", "relayer configuration: endpoint from server.host/port, model_list from routes")
    .option("--endpoint <url>", "where LiteLLM posts (default: from --config, else http://127.0.0.1:8787/litellm/spend)")
    .option("--log-format <format>", `LiteLLM log_format: ${LOG_FORMATS.join(", ")}`, "json_array")
    .option("--batch-size <n>", "logs per POST", "512")
    .option("--flush-interval <seconds>", "seconds between POSTs at most", "5")
    .option("--callback-name <name>", "name of the callback_settings entry", DEFAULT_CALLBACK_NAME)
    .option("--inline-token", "write the bearer token into the file (default: LiteLLM reads it from GENERIC_LOGGER_HEADERS)")
    .option("--no-models", "leave model_list out (only the logging settings, to merge into your config)")
    .option("--out <file>", "write to this file instead of stdout")
    .action((options: ConfigOptions) => printConfig(options));

  litellm
    .command("backfill")
    .description(
      "read LiteLLM's spend records (LiteLLM_SpendLogs in its PostgreSQL database) for calls that started in a time range, " +
        "and queue those its logger never delivered (LiteLLM does not re-send a POST that failed); safe to run again",
    )
    .requiredOption("--config <file>", "relayer configuration (YAML): prices, payers, Redis")
    .requiredOption("--since <time>", "UTC date-time (2026-12-03T14:00:00Z) or a time before now (24h)")
    .option("--until <time>", "end of the range, exclusive (default: now)")
    .option("--database-url-env <name>", "variable holding LiteLLM's DATABASE_URL (default: backfill.database_url_env, else LITELLM_DATABASE_URL)")
    .option("--page-size <n>", "rows per query (default: backfill.page_size, else 1000)")
    .option("--dry-run", "read and parse the records, queue nothing")
    .option("--json", "print the result as JSON")
    .action((options: BackfillOptions) => backfill(options));
}
