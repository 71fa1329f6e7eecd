/**
 * `agentgpt demo`: the whole flow on a local chain and Redis in under a minute (relayer/demo/run-demo.ts):
 * deploy, fund payers, replay LiteLLM traffic through the relayer, settle, an honest interval disputed (the bond is
 * lost), the same calls billed twice and the reconciler's dispute refunding exactly the second bill, release,
 * withdraw, and print the monitor's table. Cleans up on success,
 * failure and Ctrl-C.
 *
 *   agentgpt demo [--rpc http://127.0.0.1:8545] [--calls 600] [--json]
 */
import type { Command } from "commander";

import { ChainError, redactUrls } from "../../chain/index.js";
import { requireDevInstall } from "../../demo/build.js";
import { DemoError } from "../../demo/errors.js";
import { runDemo } from "../../demo/run-demo.js";
import { UserError } from "../errors.js";

const MIN_CALLS = 50;
const MAX_CALLS = 20_000;

interface DemoFlags {
  rpc?: string;
  calls: string;
  json?: boolean;
}

/** `--calls`: a whole number in range, or a message naming the option and the fix. */
export function parseCalls(text: string): number {
  const calls = /^\d+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  if (!Number.isSafeInteger(calls) || calls < MIN_CALLS || calls > MAX_CALLS) {
    throw new UserError(`--calls ${JSON.stringify(text)}: give a whole number of LiteLLM calls from ${MIN_CALLS} to ${MAX_CALLS} (default 600)`);
  }
  return calls;
}

/** `--rpc`: an http(s) URL, or a message naming the option and the fix. */
export function parseRpc(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UserError(`--rpc ${JSON.stringify(text)}: not a URL; give a development node's JSON-RPC URL (e.g. http://127.0.0.1:8545), or omit --rpc to start one`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UserError(`--rpc ${redactUrls(text)}: ${url.protocol} is not supported; give an http:// or https:// JSON-RPC URL (e.g. http://127.0.0.1:8545)`);
  }
  return text;
}

async function demo(flags: DemoFlags): Promise<void> {
  const calls = parseCalls(flags.calls);
  const rpc = flags.rpc === undefined ? undefined : parseRpc(flags.rpc);
  try {
    requireDevInstall("agentgpt demo");
    await runDemo({ rpc, calls, json: flags.json });
  } catch (error) {
    if (error instanceof DemoError) throw new UserError(redactUrls(error.message), error.exitCode, { cause: error });
    if (error instanceof ChainError) throw new UserError(redactUrls(error.message), 2, { cause: error });
    throw error;
  }
}

const HELP = `
What it does (under a minute once the contracts are built; progress line per step):
   1. Redis: REDIS_URL, else 127.0.0.1:6379, else a private redis-server when one is installed;
      the demo's keys go under their own prefix
   2. a \`hardhat node --hostname 127.0.0.1\` on a free port (or --rpc)
   3. deploy AGPT, AutoPayLLM, timelock + governor, UsageOracle on the mock Chainlink Functions router;
      the timelock then holds every admin power
   4. five payers' deposits (one too small: its rows are rejected on-chain)
   5. the relayer in this process: ingest (HTTP), batcher, settler, reconciler
   6. LiteLLM spend logs built from LiteLLM's own payload examples, POSTed over HTTP (one body twice)
   7. the calls settle into escrow, a batch per usage bucket of their start times
   8. support-bot disputes an honest interval (every settled row of its payer, provider, model and bucket): the
      UsageOracle asks the providers' usage API through a local stand-in for the Chainlink DON, finds nothing
      overbilled, and the bond goes to the provider
   9. the first batch is released (its bill stays paid); research-agents' openai/gpt-4-turbo calls are logged again
      under new ids and settled in a second batch of the same bucket; the reconciler compares the whole interval
      with the usage API and disputes it; the oracle refunds exactly the second bill and the bond comes back
  10. the chain's clock moves past the dispute window; the rest is released, providers withdraw
  11. the monitor's cost table; then every unit is checked (payers, providers, solvency)
Everything it started (node, relayer, servers, Redis keys, temporary files) is removed at the end, on a failure
and on Ctrl-C; an --rpc node is left running.

Exit codes: 0 done; 1 a step failed (or an unknown option); 2 a bad option value, or no development node at --rpc;
3 no Redis; 130 interrupted (Ctrl-C).

Examples:
  agentgpt demo
  agentgpt demo --calls 5000 --json
  REDIS_URL=redis://127.0.0.1:6380 agentgpt demo
  agentgpt demo --rpc http://127.0.0.1:8545     # an already running hardhat node or anvil (chain 31337 or 1337)
`;

export function register(program: Command): void {
  program
    .command("demo")
    .description("the whole flow on a local chain in under a minute: deploy, LiteLLM traffic, settle, an honest dispute and a double bill the oracle refunds, release, withdraw, monitor")
    .option("--rpc <url>", "use this local development node (chain 31337 or 1337) instead of starting one; it is left running")
    .option("--calls <n>", `LiteLLM calls to replay, ${MIN_CALLS} to ${MAX_CALLS}`, "600")
    .option("--json", "also print a JSON summary (every figure in token units) as the last line")
    .addHelpText("after", HELP)
    .action((flags: DemoFlags) => demo(flags));
}
