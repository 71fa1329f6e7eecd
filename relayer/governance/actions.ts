/**
 * The changes governance can make, each built as one call of the timelock (target, value, calldata) with a
 * one-line summary for people, so nobody hand-encodes calldata. Values are checked against the contracts' own
 * limits here, before a proposal is made that could only fail at execution, days later.
 */
import { getAddress, isAddress, toUtf8Bytes, ZeroAddress, type Interface } from "ethers";

import { AutoPayLLM__factory } from "../../typechain-types/factories/AutoPayLLM__factory.js";
import { AgentGovernor__factory } from "../../typechain-types/factories/governance/AgentGovernor__factory.js";
import { AgentTimelock__factory } from "../../typechain-types/factories/governance/AgentTimelock__factory.js";
import { UsageOracle__factory } from "../../typechain-types/factories/oracle/UsageOracle__factory.js";
import {
  SETTLEMENT_ROLES,
  type SettlementRoleName,
  type SuiteAddresses,
  type TokenUnit,
} from "../chain/index.js";
import { formatTokenAmount } from "../config/amount.js";
import { GovernanceError } from "./errors.js";

/** One call the timelock makes when the proposal executes. */
export interface GovernanceAction {
  target: string;
  value: bigint;
  calldata: string;
  /** What changes, for people: `Set the daily budget of model "gpt-4-turbo" to 500 AGPT per UTC day`. */
  summary: string;
}

/** What building an action needs to know about the deployed suite. */
export interface ActionContext {
  addresses: SuiteAddresses;
  /** The payment token's unit: budgets, prices and bonds are in it. */
  paymentUnit: TokenUnit;
}

const settlement: Interface = AutoPayLLM__factory.createInterface();
const timelock: Interface = AgentTimelock__factory.createInterface();
const governor: Interface = AgentGovernor__factory.createInterface();
const oracle: Interface = UsageOracle__factory.createInterface();

/** `AutoPayLLM` limits (contracts/AutoPayLLM.sol). */
export const MAX_NAME_LENGTH = 64;
export const MIN_DISPUTE_WINDOW = 60n;
export const MAX_DISPUTE_WINDOW = 30n * 24n * 3600n;
const UINT128_MAX = (1n << 128n) - 1n;

function invalid(message: string): GovernanceError {
  return new GovernanceError("INVALID_ACTION", message);
}

function checkName(option: string, name: string): void {
  const length = toUtf8Bytes(name).length;
  if (length === 0 || length > MAX_NAME_LENGTH) {
    throw invalid(`${option} "${name}": names are 1 to ${MAX_NAME_LENGTH} bytes`);
  }
}

function checkUint128(option: string, value: bigint): void {
  if (value < 0n || value > UINT128_MAX) {
    throw invalid(`${option}: ${value} token units is out of range (0 to 2^128 - 1)`);
  }
}

function checkAccount(option: string, account: string): string {
  if (!isAddress(account) || getAddress(account) === ZeroAddress) {
    throw invalid(`${option} "${account}": expected a non-zero address (0x followed by 40 hex digits)`);
  }
  return getAddress(account);
}

/** `AutoPayLLM.setModelBudget(model, dailyLimit)`: the model's daily budget, all payers together (0: none). */
export function modelBudgetAction(ctx: ActionContext, model: string, dailyLimit: bigint): GovernanceAction {
  checkName("--model", model);
  checkUint128("--daily-limit", dailyLimit);
  return {
    target: ctx.addresses.autoPayLLM,
    value: 0n,
    calldata: settlement.encodeFunctionData("setModelBudget", [model, dailyLimit]),
    summary:
      dailyLimit === 0n
        ? `Remove the daily budget of model "${model}"`
        : `Set the daily budget of model "${model}" to ${formatTokenAmount(dailyLimit, ctx.paymentUnit)} per UTC day`,
  };
}

/** `AutoPayLLM.setModelPrice(model, maxPricePer1kTokens)`: the price cap; 0 makes the model unbillable. */
export function modelPriceAction(ctx: ActionContext, model: string, maxPricePer1k: bigint): GovernanceAction {
  checkName("--model", model);
  checkUint128("--max-price", maxPricePer1k);
  return {
    target: ctx.addresses.autoPayLLM,
    value: 0n,
    calldata: settlement.encodeFunctionData("setModelPrice", [model, maxPricePer1k]),
    summary:
      maxPricePer1k === 0n
        ? `Stop billing model "${model}" (price cap 0)`
        : `Set the price cap of model "${model}" to ${`${formatTokenAmount(maxPricePer1k, ctx.paymentUnit)}/1k tokens`}`,
  };
}

/**
 * `AutoPayLLM.setDisputeWindow(seconds)` for batches settled from then on. The caller must also check it stays
 * below the timelock delay (`GovernanceClient` does, against the chain).
 */
export function disputeWindowAction(ctx: ActionContext, seconds: bigint): GovernanceAction {
  if (seconds < MIN_DISPUTE_WINDOW || seconds > MAX_DISPUTE_WINDOW) {
    throw invalid(`--seconds ${seconds}: the dispute window is ${MIN_DISPUTE_WINDOW} to ${MAX_DISPUTE_WINDOW} seconds`);
  }
  return {
    target: ctx.addresses.autoPayLLM,
    value: 0n,
    calldata: settlement.encodeFunctionData("setDisputeWindow", [seconds]),
    summary: `Set the dispute window to ${seconds} s (${formatDuration(Number(seconds))}) for batches settled from then on`,
  };
}

/** `AutoPayLLM.registerProvider(name, payee)`: a provider id for LiteLLM's provider name, paid to `payee`. */
export function registerProviderAction(ctx: ActionContext, name: string, payee: string): GovernanceAction {
  checkName("--name", name);
  const account = checkAccount("--payee", payee);
  return {
    target: ctx.addresses.autoPayLLM,
    value: 0n,
    calldata: settlement.encodeFunctionData("registerProvider", [name, account]),
    summary: `Register provider "${name}", paid to ${account}`,
  };
}

/** `AutoPayLLM.grantRole` / `revokeRole` for RELAYER, ARBITER or PAUSER. */
export function settlementRoleAction(
  ctx: ActionContext,
  change: "grant" | "revoke",
  role: string,
  account: string,
): GovernanceAction {
  const name = role.toUpperCase().replace(/_ROLE$/, "") as SettlementRoleName;
  const roleId = SETTLEMENT_ROLES[name];
  if (roleId === undefined) {
    throw invalid(`--${change} ${role}: the roles are ${Object.keys(SETTLEMENT_ROLES).join(", ")}`);
  }
  const who = checkAccount("--account", account);
  return {
    target: ctx.addresses.autoPayLLM,
    value: 0n,
    calldata: settlement.encodeFunctionData(change === "grant" ? "grantRole" : "revokeRole", [roleId, who]),
    summary: `${change === "grant" ? "Grant" : "Revoke"} ${name}_ROLE on AutoPayLLM ${change === "grant" ? "to" : "from"} ${who}`,
  };
}

/** `TimelockController.updateDelay(seconds)` (a call of the timelock to itself). */
export function timelockDelayAction(ctx: ActionContext, seconds: bigint): GovernanceAction {
  if (seconds <= 0n) throw invalid(`--seconds ${seconds}: the timelock delay must be positive`);
  return {
    target: ctx.addresses.timelock,
    value: 0n,
    calldata: timelock.encodeFunctionData("updateDelay", [seconds]),
    summary: `Set the timelock delay to ${seconds} s (${formatDuration(Number(seconds))})`,
  };
}

/** A readable form of a stored call (for `status`): `AutoPayLLM.setModelBudget("gpt-4-turbo", 500 AGPT)`. */
export function describeCall(ctx: ActionContext, target: string, calldata: string): string {
  const contracts: Array<[string, string, Interface]> = [
    ["AutoPayLLM", ctx.addresses.autoPayLLM, settlement],
    ["Timelock", ctx.addresses.timelock, timelock],
    ["AgentGovernor", ctx.addresses.governor, governor],
    ...(ctx.addresses.usageOracle === undefined ? [] : [["UsageOracle", ctx.addresses.usageOracle, oracle] as [string, string, Interface]]),
  ];
  const known = contracts.find(([, address]) => address.toLowerCase() === target.toLowerCase());
  if (known === undefined) return `call ${target} with ${calldata.slice(0, 10)}… (${(calldata.length - 2) / 2} bytes)`;
  const [label, , iface] = known;
  const parsed = iface.parseTransaction({ data: calldata });
  if (parsed === null) return `${label}: unknown call ${calldata.slice(0, 10)}`;
  const roleNames = new Map(Object.entries(SETTLEMENT_ROLES).map(([k, v]) => [v, `${k}_ROLE`]));
  const args = parsed.fragment.inputs.map((input, i) => {
    const value: unknown = parsed.args[i];
    if (typeof value === "string") {
      if (input.type === "string" && value.length > 60) return `"${value.slice(0, 57)}..." (${value.length} chars)`;
      return input.type === "bytes32" ? (roleNames.get(value) ?? value) : input.type === "string" ? `"${value}"` : value;
    }
    if (typeof value === "bigint") {
      if (["dailyLimit", "maxPricePer1kTokens", "amount"].includes(input.name)) {
        return formatTokenAmount(value, ctx.paymentUnit);
      }
      return value.toString();
    }
    return String(value);
  });
  return `${label}.${parsed.name}(${args.join(", ")})`;
}

/** Seconds as a short duration: 172800 -> "2d", 3660 -> "1h 1m", 45 -> "45s". */
export function formatDuration(seconds: number): string {
  if (seconds <= 0) return "0s";
  const parts: string[] = [];
  const units: Array<[number, string]> = [
    [86_400, "d"],
    [3_600, "h"],
    [60, "m"],
    [1, "s"],
  ];
  let rest = Math.floor(seconds);
  for (const [size, label] of units) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${label}`);
      rest %= size;
    }
  }
  return parts.slice(0, 2).join(" ");
}
