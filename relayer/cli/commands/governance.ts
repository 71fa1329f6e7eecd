/**
 * `agentgpt governance ...`: token holders change the suite's budgets, price caps, dispute window, providers and
 * roles by vote. Every command prints the proposal id and state and says what is missing; nobody hand-encodes
 * calldata. Logic lives in relayer/governance; this file parses options and prints.
 *
 *   agentgpt governance delegate
 *   agentgpt governance propose-budget --model gpt-4-turbo --daily-limit "500 AGPT"
 *   agentgpt governance vote <id> for
 *   agentgpt governance queue <id>
 *   agentgpt governance execute <id>
 *   agentgpt governance status [id]
 */
import { Argument, type Command } from "commander";

import { advanceLocalChain, openChain, type ChainConnection, type LoadedSigner, type Suite } from "../../chain/index.js";
import {
  GovernanceClient,
  GovernanceError,
  SUPPORT,
  disputeWindowAction,
  formatDuration,
  modelBudgetAction,
  modelPriceAction,
  parseProposalId,
  registerProviderAction,
  settlementRoleAction,
  timelockDelayAction,
  type ActionContext,
  type GovernanceAction,
  type Support,
} from "../../governance/index.js";
import { AmountError, formatTokenAmount, parsePricePer1k, parseTokenAmount } from "../../config/amount.js";
import { openSession, print, runCommand, withChainOptions, type ChainOptions } from "../chain-session.js";
import { UserError } from "../errors.js";

interface Session {
  chain: ChainConnection;
  suite: Suite;
  signer?: LoadedSigner;
  client: GovernanceClient;
}

/** Connects to the chain and the deployed suite; loads the signer when `sign` (else only if one is configured). */
async function open(options: ChainOptions, sign: boolean): Promise<Session> {
  const { chain, suite, signer } = await openSession(options, sign);
  const client = new GovernanceClient(suite, signer?.address ?? "0x0000000000000000000000000000000000000000", chain.network);
  if (signer !== undefined) {
    process.stdout.write(`${chain.network.name} (chain ${chain.chainId}) via ${chain.rpcLabel}; signer ${signer.address} (${signer.source})\n`);
  }
  return { chain, suite, signer, client };
}

function parseWholeSeconds(option: string, text: string): bigint {
  if (!/^\d+$/.test(text.trim())) throw new UserError(`${option} "${text}": expected a whole number of seconds`);
  return BigInt(text.trim());
}

const run = <A extends unknown[]>(body: (...args: A) => Promise<void>) => runCommand([GovernanceError], body);

async function propose(options: ChainOptions & { note?: string }, build: (ctx: ActionContext, suite: Suite) => GovernanceAction[]) {
  const { client, suite } = await open(options, true);
  const actions = build(client.actionContext, suite);
  const { txHash, view, draft } = await client.propose(actions, options.note);
  print([`Proposed in ${txHash}`, ...draft.description.split("\n").map((line) => `  | ${line}`)]);
  print(client.describe(view));
  print([
    `Next: holders who delegated vote with \`agentgpt governance vote ${view.id} for\` (or against, abstain).`,
  ]);
}

export function register(program: Command): void {
  const governance = program
    .command("governance")
    .description("propose, vote on, queue and execute changes to budgets, prices, the dispute window and roles");

  withChainOptions(governance.command("delegate"))
    .description("delegate your AGPT votes (to yourself by default); needed before voting or proposing")
    .option("--to <address>", "delegate to this account instead")
    .action(
      run(async (options: ChainOptions & { to?: string }) => {
        const { client, suite } = await open(options, true);
        const { txHash, votes, block } = await client.delegate(options.to ?? client.account);
        print([
          `Delegated in ${txHash} (block ${block}).`,
          `${options.to ?? client.account} now has ${formatTokenAmount(votes, suite.votesUnit)} in votes ` +
            "(they count for proposals whose snapshot is after this block).",
          ...(await client.votingPower()),
        ]);
      }),
    );

  withChainOptions(governance.command("propose-budget"))
    .description("propose a model's daily budget (all payers together; 0 removes it)")
    .requiredOption("--model <name>", "model name as LiteLLM reports it, e.g. gpt-4-turbo")
    .requiredOption("--daily-limit <amount>", 'budget per UTC day in the payment token, e.g. "500 AGPT"')
    .option("--note <text>", "why: appended to the proposal's description")
    .action(
      run(async (options: ChainOptions & { model: string; dailyLimit: string; note?: string }) => {
        await propose(options, (ctx, suite) => [
          modelBudgetAction(ctx, options.model, parseOption("--daily-limit", () => parseTokenAmount(options.dailyLimit, suite.paymentUnit))),
        ]);
      }),
    );

  withChainOptions(governance.command("propose-price"))
    .description("propose a model's price cap (registers the model; a model is billable only with a cap)")
    .requiredOption("--model <name>", "model name as LiteLLM reports it, e.g. gpt-4-turbo")
    .requiredOption("--max-price <price>", 'price cap, e.g. "0.12 AGPT/1k tokens" (0 stops billing the model)')
    .option("--note <text>", "why: appended to the proposal's description")
    .action(
      run(async (options: ChainOptions & { model: string; maxPrice: string; note?: string }) => {
        await propose(options, (ctx, suite) => [
          modelPriceAction(ctx, options.model, parseOption("--max-price", () => parseMaxPrice(options.maxPrice, suite))),
        ]);
      }),
    );

  withChainOptions(governance.command("propose-dispute-window"))
    .description("propose the dispute window of future batches (must stay below the timelock delay)")
    .requiredOption("--seconds <n>", "window in seconds (60 to 2592000)")
    .option("--note <text>", "why: appended to the proposal's description")
    .action(
      run(async (options: ChainOptions & { seconds: string; note?: string }) => {
        await propose(options, (ctx) => [disputeWindowAction(ctx, parseWholeSeconds("--seconds", options.seconds))]);
      }),
    );

  withChainOptions(governance.command("propose-timelock-delay"))
    .description("propose the timelock delay (must stay above the dispute window)")
    .requiredOption("--seconds <n>", "delay in seconds")
    .option("--note <text>", "why: appended to the proposal's description")
    .action(
      run(async (options: ChainOptions & { seconds: string; note?: string }) => {
        await propose(options, (ctx) => [timelockDelayAction(ctx, parseWholeSeconds("--seconds", options.seconds))]);
      }),
    );

  withChainOptions(governance.command("propose-provider"))
    .description("propose registering a provider (LiteLLM's provider name) and the account its credits go to")
    .requiredOption("--name <name>", "provider name, e.g. openai")
    .requiredOption("--payee <address>", "account that withdraws the provider's credits")
    .option("--note <text>", "why: appended to the proposal's description")
    .action(
      run(async (options: ChainOptions & { name: string; payee: string; note?: string }) => {
        await propose(options, (ctx) => [registerProviderAction(ctx, options.name, options.payee)]);
      }),
    );

  withChainOptions(governance.command("propose-role"))
    .description("propose granting (or revoking) RELAYER, ARBITER or PAUSER on AutoPayLLM")
    .requiredOption("--role <role>", "RELAYER (settles batches), ARBITER (resolves disputes) or PAUSER")
    .requiredOption("--account <address>", "the account")
    .option("--revoke", "revoke instead of grant")
    .option("--note <text>", "why: appended to the proposal's description")
    .action(
      run(async (options: ChainOptions & { role: string; account: string; revoke?: boolean; note?: string }) => {
        await propose(options, (ctx) => [
          settlementRoleAction(ctx, options.revoke === true ? "revoke" : "grant", options.role, options.account),
        ]);
      }),
    );

  withChainOptions(governance.command("vote"))
    .description("vote on an active proposal with your delegated votes")
    .argument("<id>", "proposal id (as printed by propose)")
    .addArgument(new Argument("<support>", "for, against or abstain").choices(Object.keys(SUPPORT)))
    .option("--reason <text>", "reason recorded with the vote")
    .action(
      run(async (idText: string, support: Support, options: ChainOptions & { reason?: string }) => {
        const id = parseProposalId(idText);
        const { client } = await open(options, true);
        const { txHash, view } = await client.vote(id, support, options.reason);
        print([`Voted ${support} in ${txHash}.`, ...client.describe(view)]);
      }),
    );

  withChainOptions(governance.command("queue"))
    .description("put a passed proposal in the timelock (anyone may)")
    .argument("<id>", "proposal id")
    .action(
      run(async (idText: string, options: ChainOptions) => {
        const id = parseProposalId(idText);
        const { client } = await open(options, true);
        const { txHash, view } = await client.queue(id);
        print([`Queued in ${txHash}.`, ...client.describe(view)]);
      }),
    );

  withChainOptions(governance.command("execute"))
    .description("execute a queued proposal once its timelock delay is over (anyone may)")
    .argument("<id>", "proposal id")
    .action(
      run(async (idText: string, options: ChainOptions) => {
        const id = parseProposalId(idText);
        const { client } = await open(options, true);
        const { txHash, view } = await client.execute(id);
        print([`Executed in ${txHash}.`, ...client.describe(view)]);
      }),
    );

  withChainOptions(governance.command("status"))
    .description("where a proposal stands and what it waits for; without an id: your votes and recent proposals")
    .argument("[id]", "proposal id")
    .option("--voter <address>", "explain this account's votes (default: the signer, if any)")
    .action(
      run(async (idText: string | undefined, options: ChainOptions & { voter?: string }) => {
        const { client, signer } = await open(options, false);
        const voter = options.voter ?? signer?.address;
        if (idText !== undefined) {
          print((await client.status(parseProposalId(idText), voter)).lines);
          return;
        }
        if (signer !== undefined) print(await client.votingPower());
        const recent = await client.recent(10);
        if (recent.length === 0) {
          print(["No proposals yet. Make one with `agentgpt governance propose-budget ...`."]);
          return;
        }
        print(["Recent proposals (newest first):"]);
        for (const view of recent) print([`  ${view.id}  ${view.state.padEnd(9)}  ${view.actions.join("; ")}`]);
      }),
    );

  withChainOptions(governance.command("advance"))
    .description("local nodes only: mine blocks and move time, to get through voting and the timelock quickly")
    .option("--blocks <n>", "blocks to mine", "0")
    .option("--seconds <n>", "seconds to move the clock forward", "0")
    .action(
      run(async (options: ChainOptions & { blocks: string; seconds: string }) => {
        const chain = await openChain({ network: options.network, rpc: options.rpc });
        const blocks = Number(parseWholeSeconds("--blocks", options.blocks));
        const seconds = Number(parseWholeSeconds("--seconds", options.seconds));
        const { block, timestamp } = await advanceLocalChain(chain.provider, { blocks, seconds });
        print([
          `Advanced ${chain.network.name}: now block ${block}, time ${new Date(timestamp * 1000).toISOString()} ` +
            `(+${blocks} blocks, +${formatDuration(seconds)}).`,
        ]);
      }),
    );
}

/** A price cap, or "0" to stop billing the model (the shared parser refuses zero prices: routes must charge). */
function parseMaxPrice(text: string, suite: Suite): bigint {
  return text.trim() === "0" ? 0n : parsePricePer1k(text, suite.paymentUnit);
}

function parseOption<T>(option: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof AmountError) throw new UserError(`${option}: ${error.message}`, 2, { cause: error });
    throw error;
  }
}
