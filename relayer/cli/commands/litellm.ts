/**
 * `agentgpt litellm ...`: the LiteLLM side.
 *   config [--config FILE]   print (or --out write) the LiteLLM proxy config.yaml that sends usage to the relayer
 * Other `litellm` subcommands (backup, verify, restore) attach to the same group: find it with
 * `program.commands.find((c) => c.name() === "litellm")` before creating it, as below.
 */
import { writeFileSync } from "node:fs";

import type { Command } from "commander";

import { loadRelayerConfig, type RelayerConfig } from "../../config/index.js";
import { collectTokens, DEFAULT_CALLBACK_NAME, defaultEndpoint, liteLLMProxyConfig, type LogFormat, TokenError } from "../../ingest/index.js";
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

  const text = liteLLMProxyConfig(config, {
    endpoint,
    logFormat: options.logFormat as LogFormat,
    batchSize: wholeNumber("--batch-size", options.batchSize, 1),
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
}
