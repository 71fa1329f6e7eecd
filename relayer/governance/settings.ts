/**
 * Every setting governance can change, as one table: each entry names its options, parses them into the timelock's
 * calls (target contract, function, arguments) and checks them against the chain before anything is proposed
 * (unknown provider, a role already held, a dispute whose deadline the proposal path would miss, ...). The CLI makes
 * one `agentgpt governance propose <setting>` command per entry; `GovernanceClient.draft` then simulates every call
 * from the timelock (eth_call), so a value the contract would refuse is refused before the vote, not days later.
 */
import { readFile } from "node:fs/promises";

import {
  encodeBytes32String,
  getAddress,
  isAddress,
  isHexString,
  keccak256,
  toUtf8Bytes,
  ZeroAddress,
  type Interface,
} from "ethers";

import { AutoPayLLM__factory } from "../../typechain-types/factories/AutoPayLLM__factory.js";
import { UsageOracle__factory } from "../../typechain-types/factories/oracle/UsageOracle__factory.js";
import { RelayerKeyRotator__factory } from "../../typechain-types/factories/governance/RelayerKeyRotator.sol/RelayerKeyRotator__factory.js";
import { SETTLEMENT_ROLES, type NetworkInfo, type Suite } from "../chain/index.js";
import { AmountError, formatTokenAmount, parsePricePer1k, parseTokenAmount, type TokenUnit } from "../config/amount.js";
import {
  disputeWindowAction,
  formatDuration,
  modelBudgetAction,
  modelPriceAction,
  registerProviderAction,
  settlementRoleAction,
  timelockDelayAction,
  type ActionContext,
  type GovernanceAction,
} from "./actions.js";
import { GovernanceError } from "./errors.js";

const settlementInterface: Interface = AutoPayLLM__factory.createInterface();
const oracleInterface: Interface = UsageOracle__factory.createInterface();
const rotatorInterface: Interface = RelayerKeyRotator__factory.createInterface();

/** `UsageOracle.SECRETS_ROLE`: may point requests at new DON-hosted secrets (no other power). */
export const SECRETS_ROLE = keccak256(toUtf8Bytes("SECRETS_ROLE"));

/** One option of a setting: `--model <name>` (a value) or `--revoke` (a flag). */
export interface SettingOption {
  /** Commander's flags, e.g. `--model <name>`. */
  flags: string;
  description: string;
  required?: boolean;
  default?: string;
}

/** What a setting may read while it builds and checks its calls. */
export interface SettingEnv {
  suite: Suite;
  ctx: ActionContext;
  network: NetworkInfo;
}

export type SettingValues = Record<string, string | boolean | undefined>;

export interface Setting {
  /** `agentgpt governance propose <name>`. */
  name: string;
  /** The command this setting had before the table (`propose-price`), kept as an alias. */
  legacy?: string;
  /** One line for `--help`. */
  description: string;
  options: SettingOption[];
  /** The calls, checked against the chain (the simulation from the timelock comes after, in the client). */
  build(values: SettingValues, env: SettingEnv): Promise<GovernanceAction[]>;
}

function invalid(message: string): GovernanceError {
  return new GovernanceError("INVALID_ACTION", message);
}

// ------------------------------------------------------------------ parsers

function text(values: SettingValues, key: string, flag: string): string {
  const value = values[key];
  if (typeof value !== "string" || value.trim() === "") throw invalid(`${flag}: required`);
  return value.trim();
}

function wholeNumber(values: SettingValues, key: string, flag: string, min: bigint, max: bigint, unit: string): bigint {
  const raw = text(values, key, flag);
  if (!/^\d+$/.test(raw)) throw invalid(`${flag} "${raw}": expected a whole number of ${unit}`);
  const value = BigInt(raw);
  if (value < min || value > max) throw invalid(`${flag} ${value}: must be ${min} to ${max} ${unit}`);
  return value;
}

function account(values: SettingValues, key: string, flag: string): string {
  const raw = text(values, key, flag);
  if (!isAddress(raw) || getAddress(raw) === ZeroAddress) {
    throw invalid(`${flag} "${raw}": expected a non-zero address (0x followed by 40 hex digits)`);
  }
  return getAddress(raw);
}

/** An amount in the payment token ("500 AGPT"), or token units written as a bigint ("500000000000000000000n"). */
function tokenAmount(values: SettingValues, key: string, flag: string, unit: TokenUnit): bigint {
  const raw = text(values, key, flag);
  if (/^\d+n$/.test(raw)) return BigInt(raw.slice(0, -1));
  try {
    return parseTokenAmount(raw, unit);
  } catch (error) {
    if (error instanceof AmountError) throw invalid(`${flag}: ${error.message} (or token units, e.g. "5000000n")`);
    throw error;
  }
}

/** A price per 1k tokens ("0.12 AGPT/1k tokens"), "0" (stop billing), or token units per 1k ("120000000000000000n"). */
function price(values: SettingValues, key: string, flag: string, unit: TokenUnit): bigint {
  const raw = text(values, key, flag);
  if (raw === "0") return 0n;
  if (/^\d+n$/.test(raw)) return BigInt(raw.slice(0, -1));
  try {
    return parsePricePer1k(raw, unit);
  } catch (error) {
    if (error instanceof AmountError) throw invalid(`${flag}: ${error.message}`);
    throw error;
  }
}

async function providerId(env: SettingEnv, values: SettingValues, key: string, flag: string): Promise<{ id: bigint; name: string }> {
  const raw = text(values, key, flag);
  const { autoPayLLM } = env.suite;
  const count = await autoPayLLM.providerCount();
  if (/^\d+$/.test(raw)) {
    const id = BigInt(raw);
    if (id === 0n || id > count) {
      throw invalid(`${flag} ${raw}: no provider has this id (ids 1 to ${count}); pass the provider's name or id`);
    }
    return { id, name: (await autoPayLLM.providerInfo(id))[0] };
  }
  const id = await autoPayLLM.providerId(raw);
  if (id === 0n) {
    throw invalid(
      `${flag} "${raw}": unknown provider (${count} registered); register it first with ` +
        "`agentgpt governance propose provider-register --name <name> --payee <address>`",
    );
  }
  return { id, name: raw };
}

function oracleAddress(env: SettingEnv, flag = "this setting"): string {
  const address = env.ctx.addresses.usageOracle;
  if (address === undefined) {
    throw invalid(
      `${flag}: this deployment has no UsageOracle (its parameters named no UsageOracle.functionsRouter); ` +
        "deploy one first, then configure it by governance",
    );
  }
  return address;
}

function settlementCall(env: SettingEnv, fn: string, args: unknown[], summary: string): GovernanceAction {
  return { target: env.ctx.addresses.autoPayLLM, value: 0n, calldata: settlementInterface.encodeFunctionData(fn, args), summary };
}

function oracleCall(env: SettingEnv, fn: string, args: unknown[], summary: string): GovernanceAction {
  return { target: oracleAddress(env), value: 0n, calldata: oracleInterface.encodeFunctionData(fn, args), summary };
}

const seconds = (n: bigint) => `${n} s (${formatDuration(Number(n))})`;
const MAX_UINT64 = (1n << 64n) - 1n;

/** The seconds from a proposal made now to its earliest execution: voting delay and period, then the timelock. */
export async function proposalPathSeconds(env: SettingEnv): Promise<bigint> {
  const [votingDelay, votingPeriod, delay] = await Promise.all([
    env.suite.governor.votingDelay(),
    env.suite.governor.votingPeriod(),
    env.suite.timelock.getMinDelay(),
  ]);
  return (votingDelay + votingPeriod + 1n) * BigInt(Math.ceil(env.network.secondsPerClockTick)) + delay;
}

// -------------------------------------------------------------------- table

export const SETTINGS: readonly Setting[] = [
  {
    name: "provider-register",
    legacy: "propose-provider",
    description: "register a provider (LiteLLM's provider name) and the account its credits go to",
    options: [
      { flags: "--name <name>", description: "provider name, e.g. openai", required: true },
      { flags: "--payee <address>", description: "account that withdraws the provider's credits", required: true },
    ],
    async build(values, env) {
      const name = text(values, "name", "--name");
      const existing = await env.suite.autoPayLLM.providerId(name);
      if (existing !== 0n) {
        throw invalid(
          `--name "${name}": already registered as provider ${existing}; to pay it elsewhere, ` +
            `\`agentgpt governance propose provider-payee --provider ${name} --payee <address>\``,
        );
      }
      return [registerProviderAction(env.ctx, name, account(values, "payee", "--payee"))];
    },
  },
  {
    name: "provider-payee",
    description: "change the account a provider's credits are paid to (its credits so far included)",
    options: [
      { flags: "--provider <name|id>", description: "the registered provider, e.g. openai", required: true },
      { flags: "--payee <address>", description: "the new payee", required: true },
    ],
    async build(values, env) {
      const { id, name } = await providerId(env, values, "provider", "--provider");
      const payee = account(values, "payee", "--payee");
      const [, current] = await env.suite.autoPayLLM.providerInfo(id);
      if (current.toLowerCase() === payee.toLowerCase()) throw invalid(`--payee: provider "${name}" is already paid to ${payee}`);
      return [settlementCall(env, "setProviderPayee", [id, payee], `Pay provider "${name}" (id ${id}) to ${payee} instead of ${current}`)];
    },
  },
  {
    name: "model-price",
    legacy: "propose-price",
    description: "set a model's price cap (registers the model; a model is billable only with a cap)",
    options: [
      { flags: "--model <name>", description: "model name as LiteLLM reports it, e.g. gpt-4-turbo", required: true },
      { flags: "--max-price <price>", description: 'price cap, e.g. "0.12 AGPT/1k tokens" (0 stops billing the model)', required: true },
    ],
    async build(values, env) {
      return [modelPriceAction(env.ctx, text(values, "model", "--model"), price(values, "maxPrice", "--max-price", env.suite.paymentUnit))];
    },
  },
  {
    name: "model-budget",
    legacy: "propose-budget",
    description: "set a model's daily budget (all payers together; 0 removes it)",
    options: [
      { flags: "--model <name>", description: "model name as LiteLLM reports it, e.g. gpt-4-turbo", required: true },
      { flags: "--daily-limit <amount>", description: 'budget per UTC day in the payment token, e.g. "500 AGPT"', required: true },
    ],
    async build(values, env) {
      const model = text(values, "model", "--model");
      const limit = tokenAmount(values, "dailyLimit", "--daily-limit", env.suite.paymentUnit);
      const id = await env.suite.autoPayLLM.modelId(model);
      if (id === 0n && limit > 0n) {
        throw invalid(
          `--model "${model}": unknown model; price it first (\`agentgpt governance propose model-price --model ` +
            `${model} --max-price "..."\`): a budget alone does not make it billable`,
        );
      }
      return [modelBudgetAction(env.ctx, model, limit)];
    },
  },
  {
    name: "dispute-window",
    legacy: "propose-dispute-window",
    description: "set the dispute window of future batches (must stay below the timelock delay)",
    options: [{ flags: "--seconds <n>", description: "window in seconds (60 to 2592000)", required: true }],
    async build(values, env) {
      return [disputeWindowAction(env.ctx, wholeNumber(values, "seconds", "--seconds", 0n, MAX_UINT64, "seconds"))];
    },
  },
  {
    name: "dispute-bond",
    description: "set a dispute's bond: a fixed amount and/or a share of the disputed rows",
    options: [
      { flags: "--amount <amount>", description: 'fixed part, e.g. "5 AGPT" (covers the oracle\'s requests)' },
      { flags: "--bps <n>", description: "plus this share of the disputed amount, in basis points (0 to 5000)" },
    ],
    async build(values, env) {
      const actions: GovernanceAction[] = [];
      if (values.amount === undefined && values.bps === undefined) throw invalid("--amount or --bps: give at least one");
      if (values.amount !== undefined) {
        const amount = tokenAmount(values, "amount", "--amount", env.suite.paymentUnit);
        if (amount === 0n && env.ctx.addresses.usageOracle !== undefined) {
          throw invalid(
            "--amount 0: an oracle answers disputes here and each costs Chainlink Functions requests the bond pays " +
              "for when the dispute is wrong; give a positive bond",
          );
        }
        actions.push(settlementCall(env, "setDisputeBond", [amount], `Set the fixed dispute bond to ${formatTokenAmount(amount, env.suite.paymentUnit)}`));
      }
      if (values.bps !== undefined) {
        const bps = wholeNumber(values, "bps", "--bps", 0n, 5000n, "basis points");
        actions.push(settlementCall(env, "setDisputeBondBps", [bps], `Set the dispute bond's share to ${bps} bps of the disputed amount`));
      }
      return actions;
    },
  },
  {
    name: "dispute-timeouts",
    description: "set how long the arbiter (the oracle), then governance, may resolve a dispute opened from then on",
    options: [
      { flags: "--arbiter <seconds>", description: "the arbiter's time (3600 to 7776000)", required: true },
      { flags: "--governance <seconds>", description: "governance's time after that (3600 to 7776000)", required: true },
    ],
    async build(values, env) {
      const arbiter = wholeNumber(values, "arbiter", "--arbiter", 3600n, 90n * 86_400n, "seconds");
      const governance = wholeNumber(values, "governance", "--governance", 3600n, 90n * 86_400n, "seconds");
      const path = await proposalPathSeconds(env);
      if (governance <= path) {
        throw invalid(
          `--governance ${governance}: governance could not judge a dispute in time: a proposal takes about ${seconds(path)} ` +
            `(voting delay + period at ${env.network.secondsPerClockTick} s a block, then the timelock); give more than that, with a margin`,
        );
      }
      return [settlementCall(env, "setDisputeTimeouts", [arbiter, governance], `Give the arbiter ${seconds(arbiter)}, then governance ${seconds(governance)}, to resolve each new dispute`)];
    },
  },
  {
    name: "usage-bucket",
    description: "set the call-time interval batches commit and disputes compare (only before the first batch)",
    options: [{ flags: "--seconds <n>", description: "60 to 86400, a divisor of a day (60, 900, 3600, ...)", required: true }],
    async build(values, env) {
      const value = wholeNumber(values, "seconds", "--seconds", 60n, 86_400n, "seconds");
      if (86_400n % value !== 0n) throw invalid(`--seconds ${value}: must divide a day (86400 s), e.g. 60, 900, 3600`);
      return [settlementCall(env, "setUsageBucket", [value], `Set the usage bucket to ${seconds(value)}`)];
    },
  },
  {
    name: "verifier",
    description: "set the contract a new dispute asks to verify itself (none: disputes wait for a resolver)",
    options: [{ flags: "--address <address|none>", description: "the verifier (the UsageOracle), or none", required: true }],
    async build(values, env) {
      const raw = text(values, "address", "--address");
      const verifier = raw === "none" ? ZeroAddress : account(values, "address", "--address");
      if (verifier !== ZeroAddress && (await env.suite.autoPayLLM.runner!.provider!.getCode(verifier)) === "0x") {
        throw invalid(`--address ${verifier}: no contract there (the verifier is called when a dispute opens)`);
      }
      return [settlementCall(env, "setVerifier", [verifier], verifier === ZeroAddress ? "Remove the dispute verifier" : `Make ${verifier} the dispute verifier`)];
    },
  },
  {
    name: "sequencer-feed",
    description: "set the L2 sequencer-uptime feed that extends dispute windows over outages, and its grace period",
    options: [
      { flags: "--feed <address|none>", description: "Chainlink L2 sequencer-uptime feed, or none", required: true },
      { flags: "--grace <seconds>", description: "grace period after an outage (at most 604800; 0 without a feed)", default: "0" },
    ],
    async build(values, env) {
      const feed = values.feed === "none" ? ZeroAddress : account(values, "feed", "--feed");
      const grace = wholeNumber(values, "grace", "--grace", 0n, feed === ZeroAddress ? 0n : 7n * 86_400n, "seconds");
      const [window, delay] = await Promise.all([env.suite.autoPayLLM.disputeWindow(), env.suite.timelock.getMinDelay()]);
      if (window + grace >= delay) {
        throw invalid(
          `--grace ${grace}: the dispute window (${window} s) plus the grace must stay below the timelock delay (${delay} s); the governor would refuse it`,
        );
      }
      return [settlementCall(env, "setSequencerUptimeFeed", [feed, grace], feed === ZeroAddress ? "Remove the sequencer-uptime feed" : `Use sequencer-uptime feed ${feed} with ${seconds(grace)} of grace`)];
    },
  },
  {
    name: "timelock-delay",
    legacy: "propose-timelock-delay",
    description: "set the timelock delay (must stay above the dispute window)",
    options: [{ flags: "--seconds <n>", description: "delay in seconds", required: true }],
    async build(values, env) {
      return [timelockDelayAction(env.ctx, wholeNumber(values, "seconds", "--seconds", 0n, MAX_UINT64, "seconds"))];
    },
  },
  {
    name: "role",
    legacy: "propose-role",
    description: "grant (or revoke) RELAYER, ARBITER or PAUSER on AutoPayLLM, or SECRETS on the UsageOracle",
    options: [
      { flags: "--role <role>", description: "RELAYER (settles), ARBITER (resolves disputes), PAUSER, or SECRETS (oracle secrets)", required: true },
      { flags: "--account <address>", description: "the account", required: true },
      { flags: "--revoke", description: "revoke instead of grant" },
    ],
    async build(values, env) {
      const role = text(values, "role", "--role").toUpperCase().replace(/_ROLE$/, "");
      const who = account(values, "account", "--account");
      const revoke = values.revoke === true;
      if (role === "SECRETS") {
        const oracle = UsageOracle__factory.connect(oracleAddress(env, "--role SECRETS"), env.suite.autoPayLLM.runner);
        await checkRoleChange(await oracle.hasRole(SECRETS_ROLE, who), revoke, "SECRETS", who);
        const fn = revoke ? "revokeRole" : "grantRole";
        return [oracleCall(env, fn, [SECRETS_ROLE, who], `${revoke ? "Revoke" : "Grant"} SECRETS_ROLE on UsageOracle ${revoke ? "from" : "to"} ${who}`)];
      }
      const action = settlementRoleAction(env.ctx, revoke ? "revoke" : "grant", role, who);
      const id = SETTLEMENT_ROLES[role as keyof typeof SETTLEMENT_ROLES];
      await checkRoleChange(await env.suite.autoPayLLM.hasRole(id, who), revoke, role, who);
      return [action];
    },
  },
  {
    name: "relayer-key",
    description: "rotate the relayer's settlement key: grant RELAYER to the new key and/or revoke the old one, in one proposal",
    options: [
      { flags: "--add <address>", description: "the new settlement key" },
      { flags: "--revoke <address>", description: "the old key to retire" },
    ],
    async build(values, env) {
      if (values.add === undefined && values.revoke === undefined) throw invalid("--add or --revoke: give at least one key");
      const actions: GovernanceAction[] = [];
      const { autoPayLLM } = env.suite;
      if (values.add !== undefined) {
        const key = account(values, "add", "--add");
        await checkRoleChange(await autoPayLLM.hasRole(SETTLEMENT_ROLES.RELAYER, key), false, "RELAYER", key);
        actions.push(settlementRoleAction(env.ctx, "grant", "RELAYER", key));
      }
      if (values.revoke !== undefined) {
        const key = account(values, "revoke", "--revoke");
        await checkRoleChange(await autoPayLLM.hasRole(SETTLEMENT_ROLES.RELAYER, key), true, "RELAYER", key);
        actions.push(settlementRoleAction(env.ctx, "revoke", "RELAYER", key));
      }
      return actions;
    },
  },
  {
    name: "relayer-rotator",
    description:
      "grant the RelayerKeyRotator the power to add and revoke relayer keys without a vote (AutoPayLLM's admin role, " +
      "which its code uses only for RELAYER_ROLE), take that power back, or set its limits",
    options: [
      { flags: "--rotator <address>", description: "the RelayerKeyRotator (default: the deployment's)" },
      { flags: "--grant", description: "grant it the rotation power" },
      { flags: "--revoke", description: "take the rotation power back (every add or revoke through it then fails)" },
      { flags: "--max-keys <n>", description: "most rotator-managed relayer keys live at once (1 to 8)" },
      { flags: "--min-interval <seconds>", description: "least seconds between two key additions (0 to 2592000)" },
    ],
    async build(values, env) {
      const grant = values.grant === true;
      const revoke = values.revoke === true;
      const limits = values.maxKeys !== undefined || values.minInterval !== undefined;
      if (grant && revoke) throw invalid("--grant and --revoke: give one");
      if (!grant && !revoke && !limits) throw invalid("--grant, --revoke or --max-keys/--min-interval: say what to change");
      const rotator = values.rotator !== undefined ? account(values, "rotator", "--rotator") : env.ctx.addresses.relayerKeyRotator;
      if (rotator === undefined) throw invalid("--rotator: this deployment has no RelayerKeyRotator; deploy one and pass its address");
      const { autoPayLLM } = env.suite;
      const contract = RelayerKeyRotator__factory.connect(rotator, autoPayLLM.runner);
      let router: string;
      try {
        router = await contract.router();
      } catch {
        throw invalid(`--rotator ${rotator}: not a RelayerKeyRotator (router() does not answer)`);
      }
      if (router.toLowerCase() !== env.ctx.addresses.autoPayLLM.toLowerCase()) {
        throw invalid(`--rotator ${rotator}: it manages the router ${router}, not this deployment's AutoPayLLM ${env.ctx.addresses.autoPayLLM}`);
      }
      const actions: GovernanceAction[] = [];
      const ADMIN = await autoPayLLM.DEFAULT_ADMIN_ROLE();
      const held = await autoPayLLM.hasRole(ADMIN, rotator);
      if (grant) {
        if (held) throw invalid(`--grant: ${rotator} holds the rotation power already`);
        actions.push(settlementCall(env, "grantRole", [ADMIN, rotator], `Grant the RelayerKeyRotator ${rotator} the rotation power (AutoPayLLM DEFAULT_ADMIN_ROLE, used only for RELAYER_ROLE)`));
      }
      if (revoke) {
        if (!held) throw invalid(`--revoke: ${rotator} holds no rotation power: nothing to take back`);
        actions.push(settlementCall(env, "revokeRole", [ADMIN, rotator], `Take the rotation power back from the RelayerKeyRotator ${rotator}`));
      }
      if (limits) {
        const maxKeys = values.maxKeys !== undefined ? wholeNumber(values, "maxKeys", "--max-keys", 1n, 8n, "keys") : await contract.maxKeys();
        const interval =
          values.minInterval !== undefined ? wholeNumber(values, "minInterval", "--min-interval", 0n, 2_592_000n, "seconds") : await contract.minInterval();
        actions.push({
          target: rotator,
          value: 0n,
          calldata: rotatorInterface.encodeFunctionData("setLimits", [maxKeys, interval]),
          summary: `Let the RelayerKeyRotator keep at most ${maxKeys} relayer keys live, adding one at most every ${seconds(interval)}`,
        });
      }
      return actions;
    },
  },
  {
    name: "resolve-dispute",
    description: "judge a dispute the arbiter did not answer: refund the overbilled tokens' share (0: the charge stands)",
    options: [
      { flags: "--dispute <id>", description: "the dispute id (0x + 64 hex digits, from DisputeOpened)", required: true },
      { flags: "--overbilled <tokens>", description: "tokens billed too many, at most the disputed rows' tokens", required: true },
    ],
    async build(values, env) {
      const disputeId = text(values, "dispute", "--dispute");
      if (!isHexString(disputeId, 32)) throw invalid(`--dispute "${disputeId}": expected 0x followed by 64 hex digits`);
      const overbilled = wholeNumber(values, "overbilled", "--overbilled", 0n, (1n << 128n) - 1n, "tokens");
      const info = await env.suite.autoPayLLM.disputeInfo(disputeId);
      if (info.status !== 1n) {
        const state = ["does not exist", "is open", "is already resolved", "has expired (the charge stood)"][Number(info.status)] ?? "is closed";
        throw invalid(`--dispute ${disputeId}: the dispute ${state}; only an open dispute can be resolved`);
      }
      if (overbilled > info.heldTokens) {
        throw invalid(`--overbilled ${overbilled}: the dispute holds ${info.heldTokens} tokens; refund at most that`);
      }
      const latest = await env.suite.autoPayLLM.runner!.provider!.getBlock("latest");
      const earliest = BigInt(latest!.timestamp) + (await proposalPathSeconds(env));
      if (earliest >= info.governanceDeadline) {
        throw invalid(
          `--dispute ${disputeId}: governance may resolve it until ${new Date(Number(info.governanceDeadline) * 1000).toISOString()}, ` +
            `but a proposal made now executes at the earliest ${new Date(Number(earliest) * 1000).toISOString()}; ` +
            "after its deadline anyone closes it with settleExpiredDispute (the charge stands, the bond goes back)",
        );
      }
      return [
        settlementCall(
          env,
          "resolveDispute",
          [disputeId, overbilled],
          overbilled === 0n
            ? `Resolve dispute ${disputeId}: not overbilled, the charge stands`
            : `Resolve dispute ${disputeId}: ${overbilled} of ${info.heldTokens} tokens overbilled, refund their share`,
        ),
      ];
    },
  },
  {
    name: "oracle-source",
    description: "set the JavaScript source every Chainlink Functions request runs (oracle/functions/provider-usage.js)",
    options: [{ flags: "--file <path>", description: "the source file, e.g. oracle/functions/provider-usage.js", required: true }],
    async build(values, env) {
      const file = text(values, "file", "--file");
      let source: string;
      try {
        source = await readFile(file, "utf8");
      } catch (error) {
        throw invalid(`--file ${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
      }
      if (source.length === 0) throw invalid(`--file ${file}: empty; the oracle needs the request's source`);
      const hash = keccak256(toUtf8Bytes(source));
      return [oracleCall(env, "setSource", [source], `Set the oracle's Functions source to ${file} (${toUtf8Bytes(source).length} bytes, keccak256 ${hash})`)];
    },
  },
  {
    name: "oracle-usage-api",
    description: "set the base URL of the providers' usage API the oracle's source queries ({url}/v1/usage)",
    options: [{ flags: "--url <url>", description: "https://... (1 to 256 bytes; no key in it: the key is a DON secret)", required: true }],
    async build(values, env) {
      const url = text(values, "url", "--url");
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        throw invalid(`--url "${url}": not a URL; write e.g. https://usage.example.com`);
      }
      if (parsed.protocol !== "https:" && !(env.network.local && parsed.protocol === "http:")) {
        throw invalid(`--url ${url}: the DON fetches it over the internet: use https://`);
      }
      if (parsed.username !== "" || parsed.password !== "" || /key|token|secret/i.test(parsed.search)) {
        throw invalid("--url: holds credentials; the URL is public on chain, the API key belongs in the DON secrets (propose oracle-secrets)");
      }
      if (toUtf8Bytes(url).length > 256) throw invalid(`--url: ${toUtf8Bytes(url).length} bytes, at most 256`);
      return [oracleCall(env, "setUsageApi", [url], `Point the oracle at the usage API ${url}`)];
    },
  },
  {
    name: "oracle-functions",
    description: "set the Chainlink Functions subscription that pays for requests, the DON and the callback gas",
    options: [
      { flags: "--subscription <id>", description: "subscription id (the UsageOracle must be one of its consumers)", required: true },
      { flags: "--don <id>", description: 'DON id, e.g. "fun-arbitrum-sepolia-1" (or 0x + 64 hex digits)', required: true },
      { flags: "--callback-gas <n>", description: "fulfilment gas limit (237000 to 300000)", default: "300000" },
    ],
    async build(values, env) {
      const subscription = wholeNumber(values, "subscription", "--subscription", 1n, MAX_UINT64, "(a subscription id)");
      const donText = text(values, "don", "--don");
      let don: string;
      if (isHexString(donText, 32)) don = donText;
      else {
        try {
          don = encodeBytes32String(donText);
        } catch {
          throw invalid(`--don "${donText}": at most 31 bytes, e.g. fun-arbitrum-sepolia-1`);
        }
      }
      const gas = wholeNumber(values, "callbackGas", "--callback-gas", 237_000n, 300_000n, "gas");
      return [oracleCall(env, "setFunctionsConfig", [subscription, don, gas], `Use Functions subscription ${subscription} on DON ${donText}, callback gas ${gas}`)];
    },
  },
  {
    name: "oracle-secrets",
    description: "point the oracle's requests at DON-hosted secrets (the usage API key), as uploaded with the Functions toolkit",
    options: [
      { flags: "--slot <n>", description: "secrets slot id (0 to 255)", required: true },
      { flags: "--version <n>", description: "secrets version (0: send no secrets)", required: true },
    ],
    async build(values, env) {
      const slot = wholeNumber(values, "slot", "--slot", 0n, 255n, "(a slot id)");
      const version = wholeNumber(values, "version", "--version", 0n, MAX_UINT64, "(a version)");
      return [oracleCall(env, "setSecretsReference", [slot, version], version === 0n ? "Send no DON secrets with the oracle's requests" : `Use DON secrets slot ${slot}, version ${version}`)];
    },
  },
  {
    name: "oracle-price-feed",
    description: "set the oracle's USD price feed of the payment token, its heartbeat and accepted answer range",
    options: [
      { flags: "--feed <address>", description: "Chainlink aggregator: USD per whole payment token", required: true },
      { flags: "--heartbeat <seconds>", description: "the feed's heartbeat (60 to 172800)", required: true },
      { flags: "--min-answer <n>", description: "smallest answer accepted, in the feed's units (> 0)", required: true },
      { flags: "--max-answer <n>", description: "largest answer accepted, in the feed's units", required: true },
    ],
    async build(values, env) {
      const feed = account(values, "feed", "--feed");
      const heartbeat = wholeNumber(values, "heartbeat", "--heartbeat", 60n, 172_800n, "seconds");
      const max = (1n << 128n) - 1n;
      const min = wholeNumber(values, "minAnswer", "--min-answer", 1n, max, "(feed units)");
      const top = wholeNumber(values, "maxAnswer", "--max-answer", min, max, "(feed units, at least --min-answer)");
      return [oracleCall(env, "setPriceFeed", [feed, heartbeat, min, top], `Use price feed ${feed} (heartbeat ${seconds(heartbeat)}, answers ${min} to ${top})`)];
    },
  },
  {
    name: "oracle-verification",
    description: "set how the oracle verifies a dispute: request timeout, attempts, tolerance",
    options: [
      { flags: "--request-timeout <seconds>", description: "a request unanswered this long may be retried (300 to 86400)", required: true },
      { flags: "--max-attempts <n>", description: "Functions requests per dispute (1 to 10)", required: true },
      { flags: "--tolerance-bps <n>", description: "an excess of at most this share of the billed tokens is no overcharge (0 to 1000)", required: true },
    ],
    async build(values, env) {
      const timeout = wholeNumber(values, "requestTimeout", "--request-timeout", 300n, 86_400n, "seconds");
      const attempts = wholeNumber(values, "maxAttempts", "--max-attempts", 1n, 10n, "attempts");
      const tolerance = wholeNumber(values, "toleranceBps", "--tolerance-bps", 0n, 1000n, "basis points");
      const arbiter = await env.suite.autoPayLLM.arbiterTimeout();
      if (attempts * timeout >= arbiter) {
        throw invalid(
          `--max-attempts ${attempts} x --request-timeout ${timeout} s must fit in the arbiter's time (${arbiter} s): ` +
            "lower them, or propose longer dispute-timeouts first",
        );
      }
      return [oracleCall(env, "setVerificationParams", [timeout, attempts, tolerance], `Verify disputes with ${attempts} attempts ${seconds(timeout)} apart, tolerance ${tolerance} bps`)];
    },
  },
];

async function checkRoleChange(held: boolean, revoke: boolean, role: string, who: string): Promise<void> {
  if (revoke && !held) throw invalid(`--account ${who} does not hold ${role}_ROLE: nothing to revoke`);
  if (!revoke && held) throw invalid(`--account ${who} already holds ${role}_ROLE`);
}

/** The setting named `name`, or an error listing them all. */
export function settingByName(name: string): Setting {
  const setting = SETTINGS.find((s) => s.name === name || s.legacy === name);
  if (setting === undefined) {
    throw invalid(`unknown setting "${name}": the settings are ${SETTINGS.map((s) => s.name).join(", ")}`);
  }
  return setting;
}

/** Commander's camelCase key of an option's flags: `--max-price <price>` -> `maxPrice`. */
export function optionKey(flags: string): string {
  const long = /--([a-z0-9-]+)/.exec(flags)?.[1] ?? flags;
  return long.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/** Checks the required options are given, then builds the setting's calls. */
export async function buildSetting(setting: Setting, values: SettingValues, env: SettingEnv): Promise<GovernanceAction[]> {
  for (const option of setting.options) {
    const key = optionKey(option.flags);
    if (option.required === true && (values[key] === undefined || values[key] === "")) {
      throw invalid(`${option.flags.split(" ")[0]}: required (${option.description})`);
    }
  }
  return setting.build(values, env);
}
