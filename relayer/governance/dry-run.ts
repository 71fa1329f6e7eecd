/**
 * The exact calls a proposal makes, for people to check before anything is sent (`--dry-run`): each call's target
 * contract and address, the function's signature, every argument decoded by name, and the calldata itself.
 */
import type { Interface } from "ethers";

import { AutoPayLLM__factory } from "../../typechain-types/factories/AutoPayLLM__factory.js";
import { AgentGovernor__factory } from "../../typechain-types/factories/governance/AgentGovernor__factory.js";
import { AgentTimelock__factory } from "../../typechain-types/factories/governance/AgentTimelock__factory.js";
import { UsageOracle__factory } from "../../typechain-types/factories/oracle/UsageOracle__factory.js";
import { SETTLEMENT_ROLES } from "../chain/index.js";
import { formatTokenAmount } from "../config/amount.js";
import type { ActionContext, GovernanceAction } from "./actions.js";
import { SECRETS_ROLE } from "./settings.js";

const INTERFACES: Record<string, Interface> = {
  AutoPayLLM: AutoPayLLM__factory.createInterface(),
  Timelock: AgentTimelock__factory.createInterface(),
  AgentGovernor: AgentGovernor__factory.createInterface(),
  UsageOracle: UsageOracle__factory.createInterface(),
};

/** Argument names whose values are payment-token amounts (shown in tokens beside the units). */
const AMOUNTS = new Set(["dailyLimit", "maxPricePer1kTokens", "amount"]);

/** The lines `--dry-run` prints for `actions`. */
export function describeActions(ctx: ActionContext, actions: readonly GovernanceAction[]): string[] {
  const labels: Array<[string, string | undefined]> = [
    ["AutoPayLLM", ctx.addresses.autoPayLLM],
    ["Timelock", ctx.addresses.timelock],
    ["AgentGovernor", ctx.addresses.governor],
    ["UsageOracle", ctx.addresses.usageOracle],
  ];
  const roleNames = new Map<string, string>([
    ...Object.entries(SETTLEMENT_ROLES).map(([name, id]): [string, string] => [id, `${name}_ROLE`]),
    [SECRETS_ROLE, "SECRETS_ROLE"],
  ]);
  const lines: string[] = [];
  actions.forEach((action, i) => {
    const label = labels.find(([, address]) => address?.toLowerCase() === action.target.toLowerCase())?.[0];
    const iface = label === undefined ? undefined : INTERFACES[label];
    const parsed = iface?.parseTransaction({ data: action.calldata, value: action.value });
    lines.push(`call ${i + 1}  ${action.summary}`);
    lines.push(`  target    ${label ?? "unknown contract"} ${action.target}${action.value > 0n ? ` (value ${action.value} wei)` : ""}`);
    if (parsed !== null && parsed !== undefined) {
      lines.push(`  function  ${parsed.signature}`);
      parsed.fragment.inputs.forEach((input, k) => {
        const value: unknown = parsed.args[k];
        let shown = typeof value === "string" && input.type === "string" ? JSON.stringify(value.length > 120 ? `${value.slice(0, 117)}...` : value) : String(value);
        if (input.type === "bytes32" && typeof value === "string" && roleNames.has(value)) shown = `${roleNames.get(value)} (${value})`;
        if (typeof value === "bigint" && AMOUNTS.has(input.name)) shown = `${formatTokenAmount(value, ctx.paymentUnit)} (${value} units)`;
        lines.push(`    ${(input.name || `arg${k}`).padEnd(22)} ${input.type.padEnd(8)} ${shown}`);
      });
    }
    lines.push(`  calldata  ${action.calldata}`);
  });
  return lines;
}
