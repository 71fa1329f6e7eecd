/**
 * `agentgpt relayer ...`: run and operate the relayer.
 *   start --config FILE        serve LiteLLM's spend logs (and, as they land, the later stages); SIGTERM stops gracefully,
 *                              SIGHUP reloads the settler's signing keys (key rotation, see `agentgpt keys rotate`);
 *                              --stages a,b,... runs only those stages (default: all), so a fleet of processes can
 *                              split them: the single-per-chain ones (batcher, settler, reconciler) hold leases
 *   check --config FILE        validate the configuration and print what it means (--stages: those stages' needs)
 *   unbillable --config FILE   counts (and with --reason, the records) of calls kept as unbillable
 *   reprice --config FILE      price kept unbillable calls again after fixing payers or routes
 *   conflicts --config FILE    logs of a call that disagree with the one billed (kept, never billed)
 */
import type { Command } from "commander";
import { pino, type Logger } from "pino";

import { ConfigError, formatOverride, formatTokenAmount, loadRelayerConfig, type RelayerConfig } from "../../config/index.js";
import { ingestTokens, ListenError, openReceiptQueue, Readiness, repriceUnbillable, startIngest, TokenError } from "../../ingest/index.js";
import { QueueUnavailableError, RedisSettingsError, REPRICEABLE_REASONS, UNBILLABLE_REASONS, type UnbillableReason } from "../../queue/index.js";
import { ChainError } from "../../chain/errors.js";
import { dashboardTokens, startDashboard } from "../../dashboard/index.js";
import { DisputeError } from "../../disputes/index.js";
import { checkReconciler, ReconcilerKeyError, startReconciler } from "../../reconciler/index.js";
import { ArchiveError } from "../../batcher/archive.js";
import { checkConfiguredArchive } from "../../batcher/open-archive.js";
import { checkSettlementKeys, startSettlement, type KeyReload } from "../../settler/runtime.js";
import { SigningKeyError } from "../../settler/signing-key.js";
import { BackfillError, databaseUrl, startBackfill } from "../../backfill/index.js";
import { ProcessTelemetry, serveOperations } from "../../telemetry/index.js";
import { UserError } from "../errors.js";
import { terminalSafe } from "../terminal-text.js";

type Env = Readonly<Record<string, string | undefined>>;

/** A part of the relayer that `relayer start` runs; stopped in reverse order on SIGTERM/SIGINT. */
export interface Stage {
  readonly name: string;
  /**
   * What `start` requires of this stage before it connects to anything (tokens, keys, variables), run by
   * `relayer check` so that a configuration check passes only when start would: lines to print, or the error.
   */
  check(config: RelayerConfig, env: Env, selected: ReadonlySet<StageName>): Promise<string[]>;
  start(
    config: RelayerConfig,
    context: {
      logger: Logger;
      options: StartOptions;
      /** what /readyz reports beyond Redis */
      readiness: Readiness;
      /** every stage this process runs */
      selected: ReadonlySet<StageName>;
      /** the process registry (/metrics) and per-stage readiness (/readyz): each stage adds its own (relayer/telemetry) */
      telemetry: ProcessTelemetry;
    },
  ): Promise<{ stop(): Promise<void>; /** SIGHUP: take the signing keys of the re-read config */ reloadKeys?(config: RelayerConfig): Promise<KeyReload[]> }>;
}

interface StartOptions {
  readonly config: string;
  readonly stages?: string;
  readonly host?: string;
  readonly port?: string;
  readonly logLevel: string;
}

/** The stages `relayer start --stages` can pick, in flow order (the release stage runs with the settler). */
export const STAGE_NAMES = ["ingest", "batcher", "settler", "reconciler", "backfill", "dashboard"] as const;
export type StageName = (typeof STAGE_NAMES)[number];

/**
 * `--stages ingest,batcher,...` as a set (undefined: every stage). A name not in STAGE_NAMES, or an empty list, is a
 * UserError naming the flag and the valid names.
 */
export function parseStages(text: string | undefined): ReadonlySet<StageName> {
  if (text === undefined) return new Set(STAGE_NAMES);
  const names = text.split(",").map((name) => name.trim()).filter((name) => name !== "");
  if (names.length === 0) throw new UserError(`--stages "${text}": name at least one stage: ${STAGE_NAMES.join(", ")}`);
  const unknown = names.filter((name) => !(STAGE_NAMES as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new UserError(`--stages: unknown stage ${unknown.map((name) => `"${name}"`).join(", ")}; valid stages: ${STAGE_NAMES.join(", ")} (comma-separated)`);
  }
  return new Set(names as StageName[]);
}

/** What the batcher of each chain needs (no key: it signs nothing): for `relayer check`. */
function batcherLines(config: RelayerConfig): string[] {
  return config.chains.map((chain) => {
    if (chain.rpcUrls.length === 0) return `batcher ${chain.name}: no rpc_urls: its receipts stay queued`;
    if ((chain.signer ?? config.settler.signer) === undefined) return `batcher ${chain.name}: no settler signer configured: its receipts stay queued`;
    return `batcher ${chain.name}: batches of up to ${config.batcher.maxReceipts} receipts, lease ${config.settler.leaseTtlMs} ms`;
  });
}

/** Stages in flow order. */
const stages: Array<Stage & { readonly name: StageName }> = [
  {
    name: "ingest",
    check: async (config, env) => [`ingest: ${ingestTokens(config, env).length} bearer token(s) for LiteLLM`],
    start: (config, { logger, options, readiness, telemetry }) =>
      startIngest(config, {
        logger: logger.child({ stage: "ingest" }),
        readiness,
        telemetry,
        ...(options.host === undefined ? {} : { host: options.host }),
        ...(options.port === undefined ? {} : { port: parsePort(options.port) }),
      }),
  },
  {
    // the batcher per chain with rpc_urls and a signer configured, under the chain's batcher lease; with the settler
    // in this process it runs in the settler's runtime (below) and hands batches over in process
    name: "batcher",
    check: async (config, _env, selected) => [...batcherLines(config), ...(selected.has("settler") ? [] : await checkConfiguredArchive(config))],
    start: async (config, { logger, readiness, selected, telemetry }) =>
      selected.has("settler")
        ? { stop: async () => undefined }
        : startSettlement(config, { logger: logger.child({ stage: "settlement" }), readiness, telemetry, stages: { batcher: true, settler: false } }),
  },
  {
    // the settler (and the release stage, which sends through it) per chain, under the chain's settler lease
    name: "settler",
    check: async (config, env) => [...(await checkSettlementKeys(config, env)), ...(await checkConfiguredArchive(config))],
    start: (config, { logger, readiness, selected, telemetry }) =>
      startSettlement(config, { logger: logger.child({ stage: "settlement" }), readiness, telemetry, stages: { batcher: selected.has("batcher"), settler: true } }),
  },
  {
    // compares settled rows with providers' usage reports; disputes overcharges of the payers it holds keys of
    name: "reconciler",
    check: (config, env) => checkReconciler(config, env),
    start: (config, { logger, telemetry }) => startReconciler(config, { logger: logger.child({ stage: "reconciler" }), telemetry }),
  },
  {
    // reads LiteLLM's spend records and queues the calls its logger never delivered, with a backfill: section
    name: "backfill",
    check: async (config, env) =>
      config.backfill === undefined ? [] : [`backfill: LiteLLM's database from $${config.backfill.databaseUrlEnv} (${databaseUrl(config.backfill.databaseUrlEnv, env).split(":")[0]})`],
    start: (config, { logger, telemetry }) => startBackfill(config, { logger: logger.child({ stage: "backfill" }), telemetry }),
  },
  {
    // the read-only web dashboard (relayer/dashboard) on its own listener, when the config has a dashboard: section
    name: "dashboard",
    check: async (config, env) => {
      if (config.dashboard === undefined) return [];
      const tokens = dashboardTokens(config, env);
      return [`dashboard: http://${config.dashboard.host}:${config.dashboard.port}/, ${tokens.length === 0 ? "loopback clients, no token" : `${tokens.length} token(s)`}`];
    },
    start: (config, { logger }) => startDashboard(config, { logger: logger.child({ stage: "dashboard" }) }),
  },
];

function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new UserError(`--port ${text}: give a port number from 0 to 65535`);
  return port;
}

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: "agentgpt-relayer" },
    redact: { paths: ["req.headers.authorization", "*.authorization", "*.token", "*.tokens"], censor: "[redacted]" },
  });
}

/** Maps the errors a person can fix to UserError with the fix; anything else is a bug and passes through. */
export function userFacing(error: unknown, configFile: string): unknown {
  if (error instanceof ConfigError) return new UserError(error.message, 2, { cause: error });
  if (error instanceof TokenError) return new UserError(error.message, 2, { cause: error });
  if (error instanceof SigningKeyError || error instanceof ChainError || error instanceof ReconcilerKeyError || error instanceof DisputeError) {
    return new UserError(error.message, 2, { cause: error });
  }
  if (error instanceof ArchiveError) return new UserError(error.message, 2, { cause: error });
  if (error instanceof BackfillError) return new UserError(error.message, 2, { cause: error });
  if (error instanceof ListenError) return new UserError(error.message, 2, { cause: error });
  if (error instanceof RedisSettingsError) return new UserError(error.message, 2, { cause: error });
  if (error instanceof QueueUnavailableError) {
    return new UserError(`${error.message}: start Redis, or fix redis.url in ${configFile} (or REDIS_URL if it uses \${REDIS_URL})`, 3, { cause: error });
  }
  return error;
}

function load(file: string): RelayerConfig {
  try {
    return loadRelayerConfig(file);
  } catch (error) {
    throw userFacing(error, file);
  }
}

function parseReasons(values: readonly string[] | undefined): UnbillableReason[] | undefined {
  if (values === undefined) return undefined;
  return values.map((value) => {
    if (!(UNBILLABLE_REASONS as readonly string[]).includes(value)) {
      throw new UserError(`--reason ${value}: one of ${UNBILLABLE_REASONS.join(", ")}`);
    }
    return value as UnbillableReason;
  });
}

function parseLimit(text: string): number {
  const limit = Number(text);
  if (!Number.isInteger(limit) || limit < 1) throw new UserError(`--limit ${text}: give a whole number above 0`);
  return limit;
}

async function start(options: StartOptions): Promise<void> {
  const config = load(options.config);
  const logger = createLogger(options.logLevel);
  for (const override of config.overrides ?? []) {
    logger.warn({ at: override.at, overrides: override.overrides }, `configuration: ${formatOverride(override)}`);
  }
  const selected = parseStages(options.stages);
  const running: Array<{ name: string; stop(): Promise<void>; reloadKeys?: ((config: RelayerConfig) => Promise<KeyReload[]>) | undefined }> = [];
  const telemetry = new ProcessTelemetry({ defaultMetrics: config.metrics.defaultMetrics });
  const readiness = telemetry.readiness;
  try {
    for (const stage of stages) {
      if (!selected.has(stage.name)) continue;
      const handle = await stage.start(config, { logger, options, readiness, selected, telemetry });
      running.push({ name: stage.name, stop: () => handle.stop(), reloadKeys: handle.reloadKeys?.bind(handle) });
    }
    // /metrics and /readyz: ingest's server serves them; without ingest here (or with metrics.listen) a listener of its own
    const listener = await serveOperations(config, telemetry, { ingestRuns: running.some((stage) => stage.name === "ingest"), logger: logger.child({ stage: "metrics" }) });
    if (listener !== null) running.push({ name: "metrics", stop: () => listener.stop() });
  } catch (error) {
    for (const stage of running.reverse()) await stage.stop();
    throw userFacing(error, options.config);
  }
  logger.info({ stages: running.map((stage) => stage.name), config: config.files }, "relayer started");

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, "stopping");
      void (async () => {
        for (const stage of [...running].reverse()) {
          try {
            await stage.stop();
          } catch (error) {
            logger.error({ stage: stage.name, err: { message: (error as Error).message } }, "stage did not stop cleanly");
          }
        }
        logger.info("relayer stopped");
        resolve();
      })();
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
    // SIGHUP: re-read the config and hand the settlers their signing keys (the only setting reloaded; key rotation)
    process.on("SIGHUP", () => {
      if (stopping) return;
      void reloadOnSighup(options.config, running, logger);
    });
  });
}

/**
 * One SIGHUP: the configuration re-read and each stage's keys reloaded. Logs one summary: success only when every
 * chain took its keys; otherwise an error naming each chain that kept its current keys, and why.
 */
export async function reloadOnSighup(
  configFile: string,
  running: ReadonlyArray<{ name: string; reloadKeys?: ((config: RelayerConfig) => Promise<KeyReload[]>) | undefined }>,
  logger: Logger,
): Promise<boolean> {
  let next: RelayerConfig;
  try {
    next = loadRelayerConfig(configFile);
  } catch (error) {
    logger.error({ err: { message: (error as Error).message } }, "SIGHUP: the configuration does not load: nothing changed, the current keys stay in use");
    return false;
  }
  const failed: Array<{ stage: string; chain?: string; reason: string }> = [];
  const reloaded: string[] = [];
  for (const stage of running) {
    if (stage.reloadKeys === undefined) continue;
    try {
      for (const result of await stage.reloadKeys(next)) {
        if (result.ok) reloaded.push(result.chain);
        else failed.push({ stage: stage.name, chain: result.chain, reason: result.reason });
      }
    } catch (error) {
      failed.push({ stage: stage.name, reason: error instanceof Error ? error.message : String(error) });
    }
  }
  if (failed.length > 0) {
    logger.error(
      { failed, reloaded },
      `SIGHUP: key reload FAILED on ${failed.map((f) => f.chain ?? f.stage).join(", ")}: the current keys stay in use there; fix the cause and send SIGHUP again`,
    );
    return false;
  }
  if (reloaded.length === 0) {
    logger.warn("SIGHUP: no settler runs in this process (no chain with rpc_urls and a signer): nothing was reloaded");
    return false;
  }
  logger.info({ chains: reloaded }, "SIGHUP: signing keys reloaded (other settings take a restart)");
  return true;
}

async function check(options: { config: string; stages?: string }): Promise<void> {
  const selected = parseStages(options.stages);
  const config = load(options.config);
  // what start requires of each selected stage, checked the same way (nothing is printed when one fails)
  const requirements: string[] = [];
  for (const stage of stages) {
    if (!selected.has(stage.name)) continue;
    try {
      requirements.push(...(await stage.check(config, process.env, selected)));
    } catch (error) {
      throw userFacing(error, options.config);
    }
  }
  const token = config.token;
  const out: string[] = [];
  out.push(`configuration OK: ${config.files.join(", ")}`);
  for (const override of config.overrides ?? []) out.push(`warning: ${formatOverride(override)}`);
  out.push(`token: ${token.symbol} (${token.decimals} decimals)`);
  out.push(`ingest: http://${config.server.host}:${config.server.port}/litellm/spend, body limit ${config.server.bodyLimit} bytes, ${config.server.maxEntries} logs per POST`);
  const where = config.redis.cluster === null ? "" : `Redis Cluster (${config.redis.cluster.length} seed nodes, ingest keys over ${config.redis.shards} hash tags), `;
  out.push(`redis: ${where}prefix ${config.redis.prefix}, dedupe ${Math.round(config.ingest.dedupeTtlMs / 86_400_000)} days`);
  out.push(`chains: ${config.chains.map((chain) => chain.name).join(", ") || "(none listed)"}; default ${config.defaultChain}`);
  for (const channel of config.paymentChannels) out.push(`  ${channel.provider} settles on ${channel.chain}`);
  out.push("routes:");
  for (const route of config.routes) {
    const price =
      route.pricing === "per_1k_tokens"
        ? `${formatTokenAmount(route.pricePer1k ?? 0n, token)} per 1k tokens`
        : `response_cost in USD${route.pricePer1k === undefined ? "" : `, at most ${formatTokenAmount(route.pricePer1k, token)} per 1k tokens`}`;
    out.push(`  ${route.name}: model ${route.model}, ${price}, providers ${route.providers.map((provider) => provider.name).join(", ")}`);
    if (route.aliases.length > 0) out.push(`    also selected by: ${route.aliases.join(", ")}`);
  }
  out.push(`payers: ${config.payers.length} rule(s)`);
  out.push("start requirements (tokens, keys, variables):", ...requirements.map((line) => `  ${line}`));
  process.stdout.write(`${out.join("\n")}\n`);
}

/** Opens the receipt queue of `config` (errors named against `file`), runs `body` with it, and closes it. */
async function withReceiptQueue(
  config: RelayerConfig,
  file: string,
  body: (opened: Awaited<ReturnType<typeof openReceiptQueue>>) => Promise<void>,
): Promise<void> {
  let opened;
  try {
    opened = await openReceiptQueue(config);
  } catch (error) {
    throw userFacing(error, file);
  }
  try {
    await body(opened);
  } finally {
    await opened.close();
  }
}

async function unbillable(options: { config: string; reason?: string; limit: string; json?: boolean }): Promise<void> {
  const config = load(options.config);
  const reason = parseReasons(options.reason === undefined ? undefined : [options.reason])?.[0];
  const limit = parseLimit(options.limit);
  await withReceiptQueue(config, options.config, async (opened) => {
    const counts = await opened.queue.store.unbillableCounts();
    const records = reason === undefined ? [] : await opened.queue.store.listUnbillable(reason, { limit });
    if (options.json === true) {
      process.stdout.write(`${JSON.stringify({ counts, records }, null, 2)}\n`);
      return;
    }
    const lines = UNBILLABLE_REASONS.map((name) => `${name.padEnd(18)} ${counts[name]}`);
    for (const record of records) {
      // every field but the time comes from a LiteLLM log (any API caller sets end_user, even the call id)
      lines.push(
        terminalSafe(`${new Date(record.receivedAt).toISOString()}  ${record.id}  ${record.summary.litellmProvider ?? "-"}/${record.summary.litellmModel ?? "-"}  ${record.summary.tokens} tokens  ${record.detail}`),
      );
    }
    process.stdout.write(`${lines.join("\n")}\n`);
  });
}

async function conflicts(options: { config: string; limit: string; json?: boolean }): Promise<void> {
  const config = load(options.config);
  const limit = parseLimit(options.limit);
  await withReceiptQueue(config, options.config, async (opened) => {
    const count = await opened.queue.store.conflictCount();
    const records = await opened.queue.store.listConflicts({ limit });
    if (options.json === true) {
      process.stdout.write(`${JSON.stringify({ count, records }, null, 2)}\n`);
      return;
    }
    const lines = [`${count} log(s) disagree with the log that counts for their call (kept here, never billed)`];
    for (const record of records) {
      const other = record.other.record;
      const usage = record.other.kind === "receipt" ? `${String(other["tokens"])} tokens, cost ${String(other["responseCostUsd"] ?? "-")} USD` : `unbillable: ${String(other["reason"])}`;
      lines.push(terminalSafe(`${new Date(record.at).toISOString()}  ${record.id}  kept a ${record.kept.kind}; other log: ${usage}`));
    }
    process.stdout.write(`${lines.join("\n")}\n`);
  });
}

async function reprice(options: { config: string; reason?: string[]; limit: string }): Promise<void> {
  const config = load(options.config);
  const reasons = parseReasons(options.reason) ?? [...REPRICEABLE_REASONS];
  const limit = parseLimit(options.limit);
  await withReceiptQueue(config, options.config, async (opened) => {
    const result = await repriceUnbillable(opened.queue, opened.builder, { reasons, limit });
    const still = Object.entries(result.unbillable).map(([name, count]) => `${name} ${count}`);
    process.stdout.write(
      `examined ${result.examined}, queued ${result.requeued}, still unbillable ${still.length === 0 ? "0" : still.join(", ")}` +
        `${result.unreadable > 0 ? `, unreadable ${result.unreadable}` : ""}\n`,
    );
  });
}

const STAGES_HELP =
  `comma-separated stages to run in this process (default: all): ${STAGE_NAMES.join(", ")}. ` +
  "The release stage (payout) runs with the settler. Several processes may run any stages against one Redis: " +
  "batcher, settler and reconciler hold a lease per chain, and a standby takes over within settler.lease_ttl * 4/3 " +
  "(20 s by default) when the holder dies";

export function register(program: Command): void {
  const relayer =
    program.commands.find((command) => command.name() === "relayer") ??
    program.command("relayer").description("run the relayer: LiteLLM spend logs in, settled batches out");

  relayer
    .command("start")
    .description("start the relayer (ingest server for LiteLLM's generic API logger); SIGTERM or SIGINT stops it gracefully")
    .requiredOption("--config <file>", "relayer configuration (YAML), e.g. config/relayer.example.yaml")
    .option("--host <host>", "listen address (overrides server.host)")
    .option("--port <port>", "listen port (overrides server.port; 0 picks a free one)")
    .option("--log-level <level>", "trace, debug, info, warn or error", process.env["LOG_LEVEL"] ?? "info")
    .option("--stages <list>", STAGES_HELP)
    .action((options: StartOptions) => start(options));

  relayer
    .command("check")
    .description(
      "validate the configuration and what start requires (tokens, keys, variables), and print the routes, prices, chains and payers it defines; exit 2 when start would refuse",
    )
    .requiredOption("--config <file>", "relayer configuration (YAML)")
    .option("--stages <list>", "check only what these stages need (as relayer start --stages)")
    .action((options: { config: string; stages?: string }) => check(options));

  relayer
    .command("unbillable")
    .description("count the calls kept as unbillable by reason; with --reason, list them")
    .requiredOption("--config <file>", "relayer configuration (YAML)")
    .option("--reason <reason>", `one of ${UNBILLABLE_REASONS.join(", ")}`)
    .option("--limit <n>", "most records to list", "50")
    .option("--json", "print JSON")
    .action((options: { config: string; reason?: string; limit: string; json?: boolean }) => unbillable(options));

  relayer
    .command("conflicts")
    .description("list logs of a call that disagree with the log that counts for it (usage, status or cost): kept, never billed")
    .requiredOption("--config <file>", "relayer configuration (YAML)")
    .option("--limit <n>", "most records to list", "50")
    .option("--json", "print JSON")
    .action((options: { config: string; limit: string; json?: boolean }) => conflicts(options));

  relayer
    .command("reprice")
    .description("price kept unbillable calls again with the current configuration (after adding a payer rule or route)")
    .requiredOption("--config <file>", "relayer configuration (YAML)")
    .option("--reason <reason...>", `reasons to retry (default: ${REPRICEABLE_REASONS.join(", ")})`)
    .option("--limit <n>", "most records to retry", "10000")
    .action((options: { config: string; reason?: string[]; limit: string }) => reprice(options));
}
