/**
 * Ignition module `AGPTAllocations`: hands the AGPT supply, minted to the deployer, to where the network's
 * parameters say (`AGPTToken.allocations`): listed holders and the treasury, which is the timelock (governance spends
 * it by proposal). What no entry takes stays with the deployer; scripts/deploy.ts refuses, on a public network, to
 * leave it more than `AGPTToken.maxDeployerShare`. AGPT counts votes only once delegated, so the deployer's
 * momentary balance between the mint and these transfers carries no vote.
 *
 * Parameters, for the i-th transfer (i from 0): `to<i>` (address; absent for the timelock) and `amount<i>` (AGPT
 * units).
 */
import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";

import AGPTTokenModule from "./AGPTToken.js";
import type { GovernanceModule } from "./Governance.js";

/** Who receives the i-th transfer: the timelock, or an account named by the parameter `to<i>`. */
export type AllocationTarget = "timelock" | "account";

function build(governance: GovernanceModule, targets: readonly AllocationTarget[]) {
  return buildModule("AGPTAllocations", (m) => {
    const { agpt } = m.useModule(AGPTTokenModule);
    const { timelock } = m.useModule(governance);
    for (const [i, target] of targets.entries()) {
      const to = target === "timelock" ? timelock : m.getParameter<string>(`to${i}`);
      m.call(agpt, "transfer", [to, m.getParameter<bigint>(`amount${i}`)], { id: `allocation${i}` });
    }
    return {};
  });
}

const cache = new Map<string, ReturnType<typeof build>>();
const ids = new WeakMap<GovernanceModule, number>();
let nextId = 0;

/** The allocation module for a governance module and a list of targets (one module object per distinct pair). */
export function agptAllocationsModule(
  governance: GovernanceModule,
  targets: readonly AllocationTarget[],
): ReturnType<typeof build> {
  if (!ids.has(governance)) ids.set(governance, nextId++);
  const key = `${ids.get(governance)}:${targets.join(",")}`;
  let module = cache.get(key);
  if (module === undefined) {
    module = build(governance, targets);
    cache.set(key, module);
  }
  return module;
}
