/**
 * `agentgpt monitor litellm`: the seed's cost table from the chain's events and the relayer's state.
 *
 *   agentgpt monitor litellm --config relayer.yaml --granularity provider|model|user|route
 *                            [--since 24h] [--user 0x…] [--chain NAME] [--watch [--interval 5s]] [--json]
 *
 * Logic lives in relayer/monitor; this file parses options, runs the collector and prints. Exit codes: 0, 2 for
 * bad input or configuration, 3 when Redis or a chain could not be read (the report still prints, with the
 * chain's error).
 */
import type { Command } from "commander";

import { ConfigError, loadRelayerConfig, parseDurationMs, type RelayerConfig } from "../../config/index.js";
import {
  buildReport,
  MonitorCollector,
  MonitorError,
  parseGranularity,
  parseSince,
  parseUser,
  renderReport,
  reportToJson,
  type Granularity,
} from "../../monitor/index.js";
import { UserError } from "../errors.js";
import { userFacing } from "./relayer.js";

interface LitellmOptions {
  config?: string;
  granularity: string;
  since: string;
  user?: string;
  chain?: string[];
  watch?: boolean;
  interval: string;
  json?: boolean;
}

interface Parsed {
  readonly config: RelayerConfig;
  readonly file: string;
  readonly granularity: Granularity;
  readonly windowMs: number;
  readonly user: string | undefined;
  readonly intervalMs: number;
}

function parse(options: LitellmOptions): Parsed {
  let granularity: Granularity;
  let windowMs: number;
  let user: string | undefined;
  try {
    granularity = parseGranularity(options.granularity);
    windowMs = parseSince(options.since);
    user = options.user === undefined ? undefined : parseUser(options.user);
  } catch (error) {
    if (error instanceof MonitorError) throw new UserError(error.message, 2, { cause: error });
    throw error;
  }
  let intervalMs: number;
  try {
    intervalMs = parseDurationMs(options.interval);
  } catch {
    intervalMs = Number.NaN;
  }
  if (!Number.isFinite(intervalMs) || intervalMs < 1000) throw new UserError(`--interval ${options.interval}: a duration of at least 1s, e.g. 5s or 1m`);
  const file = options.config ?? process.env["AGENTGPT_CONFIG"];
  if (file === undefined || file === "") {
    throw new UserError("--config: give the relayer's configuration file (the one `agentgpt relayer start` runs with), or set AGENTGPT_CONFIG");
  }
  let config: RelayerConfig;
  try {
    config = loadRelayerConfig(file);
  } catch (error) {
    if (error instanceof ConfigError) throw new UserError(error.message, 2, { cause: error });
    throw error;
  }
  return { config, file, granularity, windowMs, user, intervalMs };
}

async function litellm(options: LitellmOptions): Promise<void> {
  const parsed = parse(options);
  let collector: MonitorCollector;
  try {
    collector = await MonitorCollector.open(parsed.config, { windowMs: parsed.windowMs, chains: options.chain });
  } catch (error) {
    if (error instanceof MonitorError) throw new UserError(error.message, 2, { cause: error });
    throw userFacing(error, parsed.file);
  }
  try {
    if (options.watch !== true) {
      const failed = await printOnce(collector, parsed, options.json === true, false);
      if (failed) process.exitCode = 3;
      return;
    }
    let stopped = false;
    const stop = () => (stopped = true);
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    while (!stopped) {
      await printOnce(collector, parsed, options.json === true, true);
      const until = Date.now() + parsed.intervalMs;
      while (!stopped && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, Math.min(200, until - Date.now())));
    }
  } catch (error) {
    throw userFacing(error, parsed.file);
  } finally {
    await collector.close();
  }
}

/** Prints one report; true when a chain could not be read. */
async function printOnce(collector: MonitorCollector, parsed: Parsed, json: boolean, watching: boolean): Promise<boolean> {
  const snapshot = await collector.snapshot();
  const payerBudgets = parsed.user === undefined ? undefined : await collector.payerBudgets(parsed.user);
  const report = buildReport(snapshot, { granularity: parsed.granularity, user: parsed.user, payerBudgets });
  if (json) {
    process.stdout.write(`${reportToJson(report, watching ? undefined : 2)}\n`);
  } else {
    const text = renderReport(report);
    process.stdout.write(watching && process.stdout.isTTY ? `\x1b[H\x1b[2J${text}\n` : `${text}\n${watching ? "\n" : ""}`);
  }
  return report.chains.some((chain) => chain.error !== null) || (payerBudgets ?? []).some((entry) => entry.error !== null);
}

export function register(program: Command): void {
  const monitor =
    program.commands.find((command) => command.name() === "monitor") ??
    program.command("monitor").description("watch usage and spend: settled on-chain, pending in the relayer, disputed and rejected");

  monitor
    .command("litellm")
    .description("the cost table (the seed's Real-Time Cost Dashboard) from chain events and the relayer's state")
    .option("--config <file>", "relayer configuration (YAML) for Redis, chains and archive (default: $AGENTGPT_CONFIG)")
    .option("--granularity <group>", "provider, model, user or route", "provider")
    .option("--since <duration>", "window of settled batches, by block time: 30m, 24h, 7d (1m to 31d)", "24h")
    .option("--user <address>", "only this payer's usage; Budget Remaining is then its room today (cap, deposit, allowance)")
    .option("--chain <name...>", "only these chains (default: every chain of the config)")
    .option("--watch", "print again every --interval until Ctrl-C (JSON: one report per line)")
    .option("--interval <duration>", "with --watch: time between reports", "5s")
    .option("--json", "print the report as JSON (amounts in token units as decimal strings; pending in thousandths)")
    .action((options: LitellmOptions) => litellm(options));
}
