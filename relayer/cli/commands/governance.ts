/**
 * `agentgpt governance ...`: token holders change the suite's budgets, price caps, dispute window, providers and
 * roles by vote. Every command prints the proposal id and state and says what is missing; nobody hand-encodes
 * calldata. Logic lives in relayer/governance; this file parses options and prints.
 *
 *   agentgpt governance delegate
 *   agentgpt governance propose model-budget --model gpt-4-turbo --daily-limit "500 AGPT" [--dry-run]
 *   agentgpt governance propose <setting> --help   (every setting: relayer/governance/settings.ts)
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
  SETTINGS,
  SUPPORT,
  buildSetting,
  describeActions,
  formatDuration,
  parseProposalId,
  type Setting,
  type SettingValues,
  type Support,
} from "../../governance/index.js";
import { formatTokenAmount } from "../../config/amount.js";
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

type ProposeOptions = ChainOptions & SettingValues & { note?: string; dryRun?: boolean };

function addSetting(command: Command, setting: Setting, alias?: string): void {
  withChainOptions(command).description(alias === undefined ? setting.description : `${setting.description} (${alias})`);
  for (const option of setting.options) {
    const required = option.required === true ? " (required)" : "";
    if (option.default === undefined) command.option(option.flags, option.description + required);
    else command.option(option.flags, option.description, option.default);
  }
  command
    .option("--note <text>", "why: appended to the proposal's description")
    .option("--dry-run", "check the change and print the exact calls (target, function, arguments, calldata); send nothing")
    .action(run(async (options: ProposeOptions) => proposeSetting(setting, options)));
}

/** Builds the setting's calls, checks them (and simulates each from the timelock), then proposes or prints them. */
async function proposeSetting(setting: Setting, options: ProposeOptions): Promise<void> {
  const dryRun = options.dryRun === true;
  const { client, suite, chain } = await open(options, !dryRun);
  const env = { suite, ctx: client.actionContext, network: chain.network };
  const actions = await buildSetting(setting, options, env);
  if (dryRun) {
    const draft = await client.draft(actions, options.note);
    print([
      `Dry run: nothing was sent. Executed, the proposal makes these calls from the timelock ${suite.deployment.addresses.timelock}:`,
      ...describeActions(client.actionContext, actions).map((line) => `  ${line}`),
      "Checked: each call succeeds if the timelock made it now (simulated with eth_call from the timelock).",
      `Proposal id ${draft.id}${client.account === ZERO ? " (with the proposer unknown: pass a signer for the real id)" : ""}; description:`,
      ...draft.description.split("\n").map((line) => `  | ${line}`),
      `Propose it: the same command without --dry-run.`,
    ]);
    return;
  }
  const { txHash, view, draft } = await client.propose(actions, options.note);
  print([`Proposed in ${txHash}`, ...draft.description.split("\n").map((line) => `  | ${line}`)]);
  print(client.describe(view));
  print([
    `Next: holders who delegated vote with \`agentgpt governance vote ${view.id} for\` (or against, abstain).`,
  ]);
}

const ZERO = "0x0000000000000000000000000000000000000000";

export function register(program: Command): void {
  const governance = program
    .command("governance")
    .description("propose, vote on, queue and execute changes to every setting of the suite (providers, prices, budgets, disputes, oracle, roles)");

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

  // One command per governed setting, from the table in relayer/governance/settings.ts; the commands the table
  // replaced keep their names (propose-budget, propose-price, ...) as aliases with the same options.
  const proposeGroup = governance
    .command("propose")
    .description("propose a change to one setting (each checked before it is proposed; --dry-run shows the calls)");
  for (const setting of SETTINGS) {
    addSetting(proposeGroup.command(setting.name), setting);
    if (setting.legacy !== undefined) addSetting(governance.command(setting.legacy), setting, `same as \`propose ${setting.name}\``);
  }

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
          print(["No proposals yet. Make one with `agentgpt governance propose <setting> ...` (see `propose --help`)."]);
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
