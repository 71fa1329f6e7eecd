/**
 * `agentgpt reconcile --epoch …`: what was settled on-chain in an epoch against the receipts archive, and every
 * interval it bills (payer, provider, model, usage bucket: all its settled rows, whatever batch) against the
 * providers' own usage reports for that bucket; differences above the tolerance are listed with the intervals worth
 * a dispute and the refund a dispute would get. Read-only. Logic lives in relayer/reconciler.
 *
 *   agentgpt reconcile --epoch 2025-06-01 --config config/relayer.yaml [--chain arbitrum] [--json]
 *   agentgpt reconcile --epoch 2025-06-01T14 --rpc http://127.0.0.1:8545 --archive .archive --usage-url http://usage:9000
 */
import type { Command } from "commander";

import { AmountError, parseTokenAmount } from "../../config/amount.js";
import { HttpJsonAdapter } from "../../reconciler/http-json-adapter.js";
import { EpochError, EPOCH_FORMS, parseEpoch } from "../../reconciler/epoch.js";
import { formatReport, reportJson } from "../../reconciler/format-report.js";
import { ReconcilerKeyError } from "../../reconciler/keys.js";
import { Reconciler } from "../../reconciler/reconciler.js";
import { usageAdapters } from "../../reconciler/stage.js";
import type { UsageAdapter } from "../../reconciler/usage-adapter.js";
import { UserError } from "../errors.js";
import { openSession, print, run, withChainOptions, type ChainOptions } from "./dispute.js";

interface ReconcileOptions extends ChainOptions {
  epoch: string;
  json?: boolean;
  usageUrl?: string;
  usageKeyEnv?: string;
  toleranceBps?: string;
  minRefund?: string;
}

async function reconcile(options: ReconcileOptions): Promise<void> {
  if (options.usageUrl !== undefined && !/^https?:\/\/\S+$/.test(options.usageUrl)) {
    throw new UserError(`--usage-url "${options.usageUrl}": an http:// or https:// URL of a usage API (GET /v1/usage)`);
  }
  if (options.usageKeyEnv !== undefined && (process.env[options.usageKeyEnv] ?? "") === "") {
    throw new UserError(`--usage-key-env ${options.usageKeyEnv}: that environment variable is not set`);
  }
  const tolerance = options.toleranceBps === undefined ? undefined : parseBps(options.toleranceBps);
  epochOrExit(options.epoch, Math.floor(Date.now() / 1000)); // bad input fails before connecting
  const session = await openSession(options);
  try {
    const { chain, client, config } = session;
    const settings = config?.reconciler;
    const now = await client.now();
    const epoch = epochOrExit(options.epoch, now); // "today" and "yesterday" by the chain's clock
    let minRefund = settings?.minRefund ?? 1n;
    if (options.minRefund !== undefined) {
      try {
        minRefund = parseTokenAmount(options.minRefund, chain.token.unit);
      } catch (error) {
        if (error instanceof AmountError) throw new UserError(`--min-refund: ${error.message}`, 2, { cause: error });
        throw error;
      }
    }
    let adapterFor: (provider: string) => UsageAdapter | undefined;
    if (options.usageUrl !== undefined) {
      adapterFor = everyProvider(options.usageUrl, options.usageKeyEnv);
    } else {
      let adapters: Map<string, UsageAdapter>;
      try {
        adapters = settings === undefined ? new Map() : usageAdapters(settings);
      } catch (error) {
        if (error instanceof ReconcilerKeyError) throw new UserError(error.message, 2, { cause: error });
        throw error;
      }
      adapterFor = (provider) => adapters.get(provider);
    }
    const reconciler = new Reconciler({
      chain,
      chainName: session.chainName ?? `chain-${chain.chainId}`,
      clock: client.clock,
      sources: { archive: session.archive, archiveChain: options.archive === undefined ? session.chainName : undefined, ipfs: session.ipfs },
      adapterFor,
      toleranceBps: tolerance ?? settings?.toleranceBps ?? 100,
      minRefund,
      logChunkBlocks: settings?.logChunkBlocks,
      concurrency: settings?.concurrency,
    });
    const report = await reconciler.reconcile(epoch);
    if (options.json === true) process.stdout.write(`${JSON.stringify(reportJson(report), null, 2)}\n`);
    else print(formatReport(report));
  } finally {
    await session.close();
  }
}

/** `--usage-url`: one HTTP JSON usage API for every provider (it is asked with the provider's name). */
function everyProvider(url: string, keyEnv: string | undefined): (provider: string) => UsageAdapter {
  const apiKey = keyEnv === undefined ? undefined : process.env[keyEnv];
  const adapters = new Map<string, UsageAdapter>();
  return (provider) => {
    let adapter = adapters.get(provider);
    if (adapter === undefined) {
      adapter = new HttpJsonAdapter({ provider, url, apiKey });
      adapters.set(provider, adapter);
    }
    return adapter;
  };
}

function epochOrExit(text: string, now: number) {
  try {
    return parseEpoch(text, now);
  } catch (error) {
    if (error instanceof EpochError) throw new UserError(error.message, 2, { cause: error });
    throw error;
  }
}

function parseBps(text: string): number {
  if (!/^\d{1,5}$/.test(text.trim()) || Number(text) > 10_000) {
    throw new UserError(`--tolerance-bps "${text}": basis points from 0 to 10000 (100 = 1%)`);
  }
  return Number(text);
}

export function register(program: Command): void {
  withChainOptions(program.command("reconcile"))
    .description("compare what was settled in an epoch with the receipts archive and the providers' usage reports")
    .requiredOption("--epoch <epoch>", EPOCH_FORMS)
    .option("--json", "print the report as JSON (amounts as exact integers in token units)")
    .option("--usage-url <url>", "ask this HTTP JSON usage API for every provider (instead of reconciler.providers)")
    .option("--usage-key-env <name>", "environment variable holding the bearer key for --usage-url")
    .option("--tolerance-bps <n>", "differences up to this many basis points of the billed tokens are not reported (default 100)")
    .option("--min-refund <amount>", 'smallest dispute refund worth a dispute, e.g. "0.01 AGPT"')
    .action(run((options: ReconcileOptions) => reconcile(options)));
}
